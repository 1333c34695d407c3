"""Schemathesis hooks for crates/cairn-server/tests/fuzz/schemathesis.sh.

The fuzzer is one admin token. Every operation stays in the run, destructive
ones included, except that it may not revoke its own token: the stateful phase
lists tokens (GET /v1/tokens) and feeds their ids to DELETE /v1/tokens/{id},
and once its token is revoked every later request is a 401 and tests nothing.
That one request is sent with an id no token has (a 404) instead.
"""

import os

import schemathesis

OWN_TOKEN_ID = os.environ["CAIRN_FUZZ_TOKEN_ID"]


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.method.upper() == "DELETE" and case.operation.path == "/v1/tokens/{id}":
        if str((case.path_parameters or {}).get("id")) == OWN_TOKEN_ID:
            case.path_parameters["id"] = "tok_000000000000"


@schemathesis.hook
def map_query(context, query):
    """A long poll (`index` ahead of the view) answers after `wait`, 30 s by
    default: longer than the request timeout. Keep it at one second; `wait`'s
    parsing is still fuzzed when `index` is absent."""
    op = context.operation
    if op is not None and op.path == "/v1/apps/{app}/envs/{env}/config" and query and "index" in query:
        query["wait"] = "1s"
    return query
