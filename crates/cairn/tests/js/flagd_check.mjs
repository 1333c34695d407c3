// Evaluate the flagd file that `cairn agent --format flagd` keeps current with
// the published OpenFeature JavaScript server SDK and flagd provider
// (npm: @openfeature/server-sdk, @openfeature/flagd-provider), unmodified,
// in-process with its offline file source; then see a change made in Cairn
// reach the running provider, without restarting it. Run by
// crates/cairn/tests/it/flagd_js.rs, which passes:
//
//   CAIRN_FLAGD_FILE     the file the agent writes
//   CAIRN_EXPECTED_SPLIT a JSON file {targetingKey: variant} computed by cairn-eval
//
// The provider evaluates with flagd-core, flagd's JavaScript reference
// evaluator: every expectation is written by hand, and the fractional split
// is cairn-eval's, compared with flagd-core's.
//
// How the provider sees a change: its file source reads the file once, then
// `fs.watchFile(path)`, which stats the *path* every 5007 ms (Node's default;
// the provider does not expose it) and fires when the stat changes. The
// agent replaces the file by renaming a new one onto the path: a new inode,
// so the next poll sees it and the provider re-reads the whole file. (An
// `fs.watch` on the file would follow the old inode and miss a rename; the
// provider does not use it.)

import { readFileSync } from 'node:fs';
import { OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { FlagdProvider } from '@openfeature/flagd-provider';
import { check, checkTypedEvaluations, env, finish, outcome, step, waitFor, watchdog } from './lib.mjs';

watchdog(90_000);
const FILE = env('CAIRN_FLAGD_FILE');
const split = JSON.parse(readFileSync(env('CAIRN_EXPECTED_SPLIT'), 'utf8'));

const changed = new Set();
OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, (e) => {
  for (const key of e?.flagsChanged ?? []) changed.add(key);
});
await OpenFeature.setProviderAndWait(
  new FlagdProvider({ resolverType: 'in-process', offlineFlagSourcePath: FILE }),
);
const client = OpenFeature.getClient();
const { staff, guest } = await checkTypedEvaluations(client);
check('disabled: the caller\'s default', outcome(await client.getBooleanDetails('oldCheckout', false)),
  { value: false, reason: 'DISABLED' });
check('missing flag', outcome(await client.getBooleanDetails('noSuchFlag', true)),
  { value: true, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
check('type mismatch', outcome(await client.getBooleanDetails('headerColor', false)),
  { value: false, reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });

const mismatched = [];
const seen = {};
for (const [key, variant] of Object.entries(split)) {
  const d = outcome(await client.getStringDetails('checkout', '?', { targetingKey: key }));
  const want = { value: `flow-${variant}`, reason: 'TARGETING_MATCH', variant };
  if (JSON.stringify(d) !== JSON.stringify(want)) mismatched.push({ key, got: d, want });
  seen[d.variant] = (seen[d.variant] ?? 0) + 1;
}
check(`fractional split over ${Object.keys(split).length} keys, flagd-core = cairn-eval`, mismatched, []);
console.log(`     split: ${JSON.stringify(seen)}`);

// The test disables newWelcomeBanner and sets maxItems' default variant to
// five in Cairn; the agent rewrites the file; the running provider follows.
changed.clear();
await step('disable-newWelcomeBanner-and-set-maxItems-five');
const ms = await waitFor('the provider to see both changes', 30_000, 100, async () => {
  const banner = outcome(await client.getBooleanDetails('newWelcomeBanner', false, staff));
  const items = outcome(await client.getNumberDetails('maxItems', 0));
  return { done: banner.reason === 'DISABLED' && items.value === 5, got: { banner, items } };
});
console.log(`     the provider saw the new file after ${ms} ms`);
check('after the change: disabled', outcome(await client.getBooleanDetails('newWelcomeBanner', true, staff)),
  { value: true, reason: 'DISABLED' });
check('after the change: new default variant', outcome(await client.getNumberDetails('maxItems', 0)),
  { value: 5, reason: 'STATIC', variant: 'five' });
check('after the change: the other flags as before', outcome(await client.getStringDetails('headerColor', '?', staff)),
  { value: '#00c', reason: 'TARGETING_MATCH', variant: 'blue' });
check('configuration-changed events name the changed flags',
  ['maxItems', 'newWelcomeBanner'].filter((k) => changed.has(k)), ['maxItems', 'newWelcomeBanner']);

await OpenFeature.close();
finish('flagd in-process provider');
