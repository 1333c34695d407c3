// Evaluate Cairn flags with the published OpenFeature JavaScript server SDK
// and its OFREP provider (npm: @openfeature/server-sdk,
// @openfeature/ofrep-provider), unmodified, over a real socket; bulk
// evaluation and its ETag through @openfeature/ofrep-core's OFREPApi (the
// server provider evaluates one flag at a time). Run by
// crates/cairn/tests/it/ofrep_js.rs, which starts the server, imports the
// flags (tests/it/js.rs: flagd_document) and passes:
//
//   CAIRN_URL          the server, e.g. http://127.0.0.1:PORT
//   CAIRN_SDK_TOKEN    an SDK token bound to (shop, prod): no path prefix needed
//   CAIRN_ADMIN_TOKEN  an unbound token: needs the /v1/apps/shop/envs/prod prefix
//
// Every expectation is written by hand from the document and DESIGN §4.

import { readFileSync } from 'node:fs';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OFREPApi } from '@openfeature/ofrep-core';
import { check, checkTypedEvaluations, env, finish, outcome, step, watchdog } from './lib.mjs';

watchdog(60_000);
const BASE = env('CAIRN_URL');
const SDK_TOKEN = env('CAIRN_SDK_TOKEN');
const ADMIN_TOKEN = env('CAIRN_ADMIN_TOKEN');
const PREFIX = `${BASE}/v1/apps/shop/envs/prod`;
const bearer = (token) => [['Authorization', `Bearer ${token}`]];

await OpenFeature.setProviderAndWait('sdk', new OFREPProvider({ baseUrl: BASE, headers: bearer(SDK_TOKEN) }));
await OpenFeature.setProviderAndWait('prefixed', new OFREPProvider({ baseUrl: PREFIX, headers: bearer(ADMIN_TOKEN) }));
await OpenFeature.setProviderAndWait('bad', new OFREPProvider({ baseUrl: BASE, headers: bearer('cairn_000000000000_bad') }));
const client = OpenFeature.getClient('sdk');
const { staff, guest } = await checkTypedEvaluations(client);

// Errors: the caller's default.
check('missing flag', outcome(await client.getBooleanDetails('noSuchFlag', true)),
  { value: true, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
check('type mismatch (checked by the provider)', outcome(await client.getBooleanDetails('headerColor', false)),
  { value: false, reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });
check('unauthorized (401, no body)', outcome(await OpenFeature.getClient('bad').getBooleanDetails('newWelcomeBanner', true, staff)),
  { value: true, reason: 'ERROR', errorCode: 'GENERAL' });
check('path prefix, unbound token', outcome(await OpenFeature.getClient('prefixed').getBooleanDetails('newWelcomeBanner', false, staff)),
  { value: true, reason: 'TARGETING_MATCH', variant: 'on' });

// A disabled flag (DESIGN §4): 200 `{key, reason: DISABLED}` with no value,
// so the application gets the caller's default (false; the flag's default
// variant is true).
const raw = await fetch(`${BASE}/ofrep/v1/evaluate/flags/oldCheckout`, {
  method: 'POST',
  headers: [...bearer(SDK_TOKEN), ['Content-Type', 'application/json']],
  body: JSON.stringify({ context: {} }),
});
const body = await raw.json();
check('disabled, on the wire', { status: raw.status, key: body.key, reason: body.reason, hasValue: 'value' in body },
  { status: 200, key: 'oldCheckout', reason: 'DISABLED', hasValue: false });
// Providers from 0.2.2 on ("OFREP code default") turn a success without a
// value into the caller's default with the answer's reason. Older ones (the
// registry may serve only 0.1.3) see no `value`, call the answer malformed
// and give the caller's default as a GENERAL error: the caller's default
// either way, the reason depends on the provider.
const providerVersion = JSON.parse(
  readFileSync(new URL('./node_modules/@openfeature/ofrep-provider/package.json', import.meta.url)),
).version;
const [maj, min, patch] = providerVersion.split('.').map(Number);
const codeDefaults = maj > 0 || min > 2 || (min === 2 && patch >= 2);
if (!codeDefaults) {
  console.log(`note @openfeature/ofrep-provider ${providerVersion} predates OFREP code defaults (0.2.2): DISABLED arrives as a GENERAL error`);
}
check('disabled, the caller\'s default', outcome(await client.getBooleanDetails('oldCheckout', false)),
  codeDefaults ? { value: false, reason: 'DISABLED' } : { value: false, reason: 'ERROR', errorCode: 'GENERAL' });

// Bulk evaluation with its ETag.
const api = new OFREPApi(BASE);
const bulk = (context, etag) =>
  api.postBulkEvaluateFlags({ context }, { headers: [...bearer(SDK_TOKEN), ...(etag ? [['If-None-Match', etag]] : [])] });
const items = (result) =>
  Object.fromEntries(result.value.flags.map(({ key, value, reason, variant }) => [key, { value, reason, variant }]));
const first = await bulk(staff);
const etag = first.httpResponse.headers.get('ETag');
check('bulk, status and ETag', { status: first.httpStatus, etag: typeof etag === 'string' && etag.length > 2 },
  { status: 200, etag: true });
const staffItems = {
  newWelcomeBanner: { value: true, reason: 'TARGETING_MATCH', variant: 'on' },
  headerColor: { value: '#00c', reason: 'TARGETING_MATCH', variant: 'blue' },
  maxItems: { value: 10, reason: 'STATIC', variant: 'ten' },
  discount: { value: 0.25, reason: 'STATIC', variant: 'quarter' },
  limits: { value: { max: 9, burst: [1, 2] }, reason: 'TARGETING_MATCH', variant: 'big' },
};
const got = items(first);
check('bulk, every flag listed', Object.keys(got).sort(),
  ['checkout', 'discount', 'headerColor', 'limits', 'maxItems', 'newWelcomeBanner', 'oldCheckout']);
for (const [key, want] of Object.entries(staffItems)) check(`bulk, ${key}`, got[key], want);
check('bulk, disabled flag', { reason: got['oldCheckout'].reason, hasValue: got['oldCheckout'].value !== undefined },
  { reason: 'DISABLED', hasValue: false });
check('bulk, If-None-Match', (await bulk(staff, etag)).httpStatus, 304);
const other = await bulk(guest, etag);
check('bulk, another context, another ETag',
  { status: other.httpStatus, differs: other.httpResponse.headers.get('ETag') !== etag },
  { status: 200, differs: true });

// A change in Cairn (the test runs `cairn flag set maxItems …` with
// defaultVariant five): the old ETag no longer matches.
await step('set-maxItems-five');
const after = await bulk(staff, etag);
check('bulk after a change, old ETag', { status: after.httpStatus, differs: after.httpResponse.headers.get('ETag') !== etag },
  { status: 200, differs: true });
check('bulk after a change, maxItems', items(after)['maxItems'], { value: 5, reason: 'STATIC', variant: 'five' });
check('provider after a change', outcome(await client.getNumberDetails('maxItems', 0)),
  { value: 5, reason: 'STATIC', variant: 'five' });

await OpenFeature.close();
finish('OFREP provider');
