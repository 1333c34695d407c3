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
