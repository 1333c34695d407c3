// Shared by the drivers: one printed line per check, a watchdog that bounds
// the whole run, bounded waits, and the step protocol with the Rust test.
//
// Protocol: a driver prints `STEP name` when it needs the test to change
// something in Cairn, then reads one line from stdin (`go`) before going on.
// Every check prints `ok …` or `FAIL …` and the run goes on; `finish`
// ends with `all N … checks ok` (exit 0) or `N of M … checks failed`
// (exit 1). `fail` ends the run at once (a broken protocol, a timeout).

import { isDeepStrictEqual } from 'node:util';
import { createInterface } from 'node:readline';

let passed = 0;
let failed = 0;

export function fail(what) {
  console.log(`FAIL ${what}`);
  process.exit(1);
}

/** Compare `got` with the hand-written `want` (deep, strict). */
export function check(what, got, want) {
  if (isDeepStrictEqual(got, want)) {
    passed += 1;
    console.log(`ok   ${what}: ${JSON.stringify(got)}`);
  } else {
    failed += 1;
    console.log(`FAIL ${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

/** Print the summary line and exit (0 only if every check passed). */
export function finish(what) {
  if (failed > 0) {
    console.log(`${failed} of ${passed + failed} ${what} checks failed`);
    process.exit(1);
  }
  console.log(`all ${passed} ${what} checks ok`);
  process.exit(0);
}

/** The parts of an OpenFeature evaluation result that the checks compare. */
export function outcome(details) {
  const o = { value: details.value, reason: details.reason };
  if (details.variant !== undefined) o.variant = details.variant;
  if (details.errorCode !== undefined) o.errorCode = details.errorCode;
  return o;
}

/** Exit 3 if the run is still going after `ms` (the driver is bounded in time). */
export function watchdog(ms) {
  const t = setTimeout(() => {
    console.log(`FAIL watchdog: the driver was still running after ${ms} ms`);
    process.exit(3);
  }, ms);
  t.unref();
}

/**
 * Poll `probe` (async, returns `{ done, got }`) every `everyMs` until it is
 * done; fail with the last `got` after `timeoutMs`. Returns the elapsed ms.
 */
export async function waitFor(what, timeoutMs, everyMs, probe) {
  const start = Date.now();
  for (;;) {
    const { done, got } = await probe();
    if (done) return Date.now() - start;
    if (Date.now() - start > timeoutMs) {
      fail(`${what}: not seen within ${timeoutMs} ms (last: ${JSON.stringify(got)})`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Ask the test to do `name`, and wait for its `go`. */
export async function step(name) {
  console.log(`STEP ${name}`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'go') fail(`step ${name}: expected "go" on stdin, got ${JSON.stringify(value)}`);
}

/** Required environment variable. */
export function env(name) {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`);
  return v;
}

/** The evaluations both providers must answer alike for the flag document the tests
 * import (`crates/cairn/tests/it/js.rs`): each type, a rule yielding null, metadata. */
export async function checkTypedEvaluations(client) {
  const staff = { targetingKey: 'u-1', email: 'ann@example.com', version: '2.1.0' };
  const guest = { email: 'bob@elsewhere.org', version: '1.4.0' }; // no targeting key

  // Each type.
  check('boolean, targeting match', outcome(await client.getBooleanDetails('newWelcomeBanner', false, staff)),
    { value: true, reason: 'TARGETING_MATCH', variant: 'on' });
  check('boolean, rule yields null, no targeting key', outcome(await client.getBooleanDetails('newWelcomeBanner', true, guest)),
    { value: false, reason: 'DEFAULT', variant: 'off' });
  check('string, sem_ver match', outcome(await client.getStringDetails('headerColor', '?', staff)),
    { value: '#00c', reason: 'TARGETING_MATCH', variant: 'blue' });
  check('string, sem_ver below', outcome(await client.getStringDetails('headerColor', '?', guest)),
    { value: '#c00', reason: 'DEFAULT', variant: 'red' });
  check('number, integer', outcome(await client.getNumberDetails('maxItems', 0)),
    { value: 10, reason: 'STATIC', variant: 'ten' });
  check('number, float', outcome(await client.getNumberDetails('discount', 0)),
    { value: 0.25, reason: 'STATIC', variant: 'quarter' });
  check('object, targeting match', outcome(await client.getObjectDetails('limits', {}, staff)),
    { value: { max: 9, burst: [1, 2] }, reason: 'TARGETING_MATCH', variant: 'big' });
  check('object, else branch', outcome(await client.getObjectDetails('limits', {}, guest)),
    { value: { max: 1 }, reason: 'TARGETING_MATCH', variant: 'small' });
  // Metadata: the flag's own over the document's.
  check('metadata', (await client.getBooleanDetails('newWelcomeBanner', false, staff)).flagMetadata,
    { description: 'the welcome banner', owner: 'team-web' });
  return { staff, guest };
}
