"""Evaluate Cairn flags with the published OpenFeature Python SDK and its OFREP
provider (PyPI: openfeature-sdk, openfeature-provider-ofrep), unmodified, over
a real socket. Run by crates/cairn/tests/it/ofrep_python.rs, which starts the
server, imports the flags and passes:

  CAIRN_URL            the server, e.g. http://127.0.0.1:PORT
  CAIRN_SDK_TOKEN      an SDK token bound to (shop, prod): no path prefix needed
  CAIRN_ADMIN_TOKEN    an unbound token: needs the /v1/apps/shop/envs/prod prefix
  CAIRN_EXPECTED_SPLIT a JSON file {targetingKey: variant} computed by cairn-eval

Prints one line per check; exits 1 on the first failure.
"""

import json
import os
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

URL = os.environ["CAIRN_URL"]
SDK_TOKEN = os.environ["CAIRN_SDK_TOKEN"]
ADMIN_TOKEN = os.environ["CAIRN_ADMIN_TOKEN"]
checks = 0


def bearer(token):
    return lambda: {"Authorization": f"Bearer {token}"}


def check(what, details, value, reason, variant=None, error_code=None):
    global checks
    got = (details.value, str(details.reason), details.variant, details.error_code)
    want = (value, str(reason), variant, error_code)
    if got != want:
        print(f"FAIL {what}: got {got!r}, want {want!r} ({details.error_message})")
        sys.exit(1)
    checks += 1
    print(f"ok   {what}: {details.value!r} {details.reason} {details.variant}")


api.set_provider(OFREPProvider(URL, headers_factory=bearer(SDK_TOKEN)), "sdk")
api.set_provider(
    OFREPProvider(f"{URL}/v1/apps/shop/envs/prod", headers_factory=bearer(ADMIN_TOKEN)),
    "prefixed",
)
api.set_provider(OFREPProvider(URL, headers_factory=bearer("cairn_000000000000_bad")), "bad")
client = api.get_client("sdk")
staff = EvaluationContext(targeting_key="u-1", attributes={"email": "ann@example.com"})
guest = EvaluationContext(attributes={"email": "bob@elsewhere.org"})  # no targeting key

# Each type of flag.
check("boolean, targeting match", client.get_boolean_details("new-ui", False, staff),
      True, Reason.TARGETING_MATCH, "on")
check("boolean, no match, no targeting key", client.get_boolean_details("new-ui", True, guest),
      False, Reason.DEFAULT, "off")
check("string", client.get_string_details("banner", "?", guest), "hello", Reason.STATIC, "a")
check("integer", client.get_integer_details("max-items", 0), 10, Reason.STATIC, "ten")
check("float", client.get_float_details("discount", 0.0), 0.25, Reason.STATIC, "quarter")
check("object", client.get_object_details("limits", {}, staff), {"max": 9, "burst": [1, 2]},
      Reason.TARGETING_MATCH, "big")

# A fractional split: every key gets the variant cairn-eval computes.
with open(os.environ["CAIRN_EXPECTED_SPLIT"]) as f:
    expected = json.load(f)
seen = {}
for key, variant in expected.items():
    d = client.get_string_details("checkout", "?", EvaluationContext(targeting_key=key))
    if (d.variant, d.value, str(d.reason)) != (variant, f"flow-{variant}", "TARGETING_MATCH"):
        print(f"FAIL fractional split for {key}: got {d!r}, want {variant}")
        sys.exit(1)
    seen[variant] = seen.get(variant, 0) + 1
checks += 1
print(f"ok   fractional split over {len(expected)} keys: {dict(sorted(seen.items()))}")

# A disabled flag: the caller's default (not the flag's default variant `on`), reason DISABLED,
# no variant.
check("disabled", client.get_boolean_details("old-checkout", False), False, Reason.DISABLED, None)
# A missing flag: the caller's default, FLAG_NOT_FOUND.
check("missing flag", client.get_boolean_details("no-such-flag", True), True, Reason.ERROR,
      None, ErrorCode.FLAG_NOT_FOUND)
# The wrong type: the caller's default, TYPE_MISMATCH (checked by the provider).
check("type mismatch", client.get_boolean_details("banner", False), False, Reason.ERROR,
      None, ErrorCode.TYPE_MISMATCH)
# The path prefix, for a token bound to no single view.
check("path prefix", api.get_client("prefixed").get_boolean_details("new-ui", False, staff),
      True, Reason.TARGETING_MATCH, "on")
# A bad token: 401 without a body, the caller's default.
check("unauthorized", api.get_client("bad").get_boolean_details("new-ui", True, staff),
      True, Reason.ERROR, None, ErrorCode.GENERAL)

print(f"all {checks} provider checks ok")
