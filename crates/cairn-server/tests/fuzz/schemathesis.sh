#!/usr/bin/env bash
# API fuzzing: schemathesis against docs/openapi.json and the real binary.
#
#   crates/cairn-server/tests/fuzz/schemathesis.sh [extra schemathesis args]
#
# Starts `target/debug/cairn serve --dev` (built by `cargo test`; CAIRN_BIN
# overrides) on SQLite in a temporary directory, on 127.0.0.1 and a free port,
# with its rate limits off, and runs `schemathesis run` with every check
# (`--checks all`, none excluded; schemathesis.toml lets positive_data_acceptance
# accept 400/422 and says why) through every phase (coverage, fuzzing,
# stateful), as the server's admin. hooks.py keeps the fuzzer from revoking
# its own token and caps long polls at 1 s. Exits non-zero on any server
# error or conformance failure, or if the token stopped working.
# FUZZ_SEED (default 1), FUZZ_MAX_EXAMPLES (20 per operation) and
# FUZZ_MAX_TIME (240 s) adjust the run; further arguments go to schemathesis.
# Needs schemathesis (pinned in .ci/run): python3 -m pip install schemathesis==4.32.5
set -euo pipefail
cd "$(dirname "$0")/../../../.."

bin=${CAIRN_BIN:-target/debug/cairn}
[ -x "$bin" ] || { echo "fuzz: $bin not found (build it: cargo build -p cairn)"; exit 1; }
if ! command -v schemathesis >/dev/null; then
  # CI (.ci/run installs it) fails; elsewhere, say how to get it and skip.
  if [ "${CI:-}" = true ]; then echo "fuzz: schemathesis not found"; exit 1; fi
  echo "fuzz: skipped, schemathesis missing (python3 -m pip install schemathesis==4.32.5)"
  exit 0
fi

tmp=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# Limits off: the fuzzer is one principal sending bursts; 429 stays documented.
"$bin" serve --dev --data-dir "$tmp/data" --listen "127.0.0.1:$port" \
  --rate-limit-reads 0 --rate-limit-writes 0 --ip-rate-limit 0 --auth-failure-limit 0 \
  >"$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && [ -s "$tmp/data/admin.token" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log"; echo "fuzz: server exited"; exit 1; }
  sleep 0.1
done
token=$(cat "$tmp/data/admin.token")
# hooks.py keeps the fuzzer from revoking its own token (DELETE /v1/tokens/{id}).
id=${token#cairn_}
export CAIRN_FUZZ_TOKEN_ID="tok_${id%%_*}"
export PYTHONDONTWRITEBYTECODE=1 SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$PWD/crates/cairn-server/tests/fuzz${PYTHONPATH:+:$PYTHONPATH}"

status=0
fuzz=$PWD/crates/cairn-server/tests/fuzz doc=$PWD/docs/openapi.json
# From the temporary directory: schemathesis keeps a cache in ./.schemathesis.
(cd "$tmp" && schemathesis --config-file "$fuzz/schemathesis.toml" \
  run "$doc" --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --workers 1 --max-examples "${FUZZ_MAX_EXAMPLES:-20}" --seed "${FUZZ_SEED:-1}" \
  --max-time "${FUZZ_MAX_TIME:-240}" --request-timeout 10 \
  "$@") || status=$?

# The run meant something only if the fuzzer stayed authenticated throughout.
if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/v1/apps")" != 200 ]; then
  echo "fuzz: the fuzzer's admin token no longer works after the run"
  status=1
fi
if [ "$status" != 0 ]; then
  echo "fuzz: schemathesis failed (exit $status); end of the server log:"
  grep -v '^ *at \|^ *[0-9]*: ' "$tmp/server.log" | tail -40
  [ -z "${FUZZ_LOG:-}" ] || cp "$tmp/server.log" "$FUZZ_LOG"
fi
exit "$status"
