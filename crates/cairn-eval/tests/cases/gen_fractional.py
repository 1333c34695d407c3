#!/usr/bin/env python3
"""Regenerates fractional.json: the expected buckets are computed here, independently of the
Rust code, with Python's `mmh3` package (pip install mmh3; 5.3.1 was used):
    hash = mmh3.hash(bucketing_value.encode("utf-8"), 0, signed=False)
    bucket = (hash * total_weight) >> 32
    variant = first whose cumulative weight > bucket
The default bucketing value is flagKey + targetingKey."""
import json, mmh3

def pick(value, buckets):
    h = mmh3.hash(value.encode("utf-8"), 0, signed=False)
    total = sum(w for _, w in buckets)
    b = (h * total) >> 32
    acc = 0
    for name, w in buckets:
        acc += w
        if b < acc:
            return name, h, b
    raise AssertionError("no bucket")

def find_key(prefix, flag, buckets, want):
    """Brute-forces a targeting key that lands in variant `want` (for rare buckets)."""
    for i in range(10_000_000):
        k = f"{prefix}{i}"
        if pick(flag + k, buckets)[0] == want:
            return k
    raise AssertionError("not found")

flags, tests = {}, []
def flag(key, targeting, variants, default):
    flags[key] = {"state": "ENABLED", "variants": variants, "defaultVariant": default, "targeting": targeting}

def expect(name, key, ctx, value_of, variant, bv, h, b):
    tests.append({"name": name, "flag": key, "context": ctx,
                  "note": f"bucketing value {bv!r}: murmur3 {h}, bucket {b}",
                  "expected": {"value": value_of[variant], "variant": variant, "reason": "TARGETING_MATCH"}})

colors = {"red": "#f00", "blue": "#00f", "green": "#0f0", "grey": "#888"}
W = [("red", 50), ("blue", 20), ("green", 30)]
flag("color-split", {"fractional": [[n, w] for n, w in W]}, colors, "grey")
for tk in ["user-1", "user-2", "user-3", "", "🚀émoji-用户", "ünïcödé@example.com", "x" * 300, "a b\tc\n"]:
    v, h, b = pick("color-split" + tk, W)
    expect(f"default bucketing, targetingKey {tk[:20]!r}", "color-split", {"targetingKey": tk}, colors, v, "color-split" + tk, h, b)
tests.append({"name": "no targetingKey and no bucketing expression: the rule yields null, default variant",
              "flag": "color-split", "context": {"email": "a@b.c"},
              "expected": {"value": "#888", "variant": "grey", "reason": "DEFAULT"}})
tests.append({"name": "non-string targetingKey: no bucketing value, default variant",
              "flag": "color-split", "context": {"targetingKey": 42},
              "expected": {"value": "#888", "variant": "grey", "reason": "DEFAULT"}})

ab = {"a": "A", "b": "B", "c": "C"}
flag("weights-one", {"fractional": [["a", 1]]}, ab, "c")
for tk in ["k1", "k2", ""]:
    tests.append({"name": f"a single bucket of weight 1 takes everyone ({tk!r})", "flag": "weights-one",
                  "context": {"targetingKey": tk}, "expected": {"value": "A", "variant": "a", "reason": "TARGETING_MATCH"}})
flag("weights-omitted", {"fractional": [["a"], ["b"]]}, ab, "c")
for tk in ["alice", "bob", "carol", "dave"]:
    v, h, b = pick("weights-omitted" + tk, [("a", 1), ("b", 1)])
    expect(f"omitted weights count 1 ({tk})", "weights-omitted", {"targetingKey": tk}, ab, v, "weights-omitted" + tk, h, b)
flag("weights-zero", {"fractional": [["a", 0], ["b", 3]]}, ab, "c")
for tk in ["p", "q"]:
    tests.append({"name": f"weight 0 never selected ({tk})", "flag": "weights-zero", "context": {"targetingKey": tk},
                  "expected": {"value": "B", "variant": "b", "reason": "TARGETING_MATCH"}})

big = [("a", 1), ("b", 999_999)]
flag("one-in-a-million", {"fractional": [[n, w] for n, w in big]}, ab, "c")
rare = find_key("rare-", "one-in-a-million", big, "a")
for tk in [rare, "common-0", "common-1"]:
    v, h, b = pick("one-in-a-million" + tk, big)
    expect(f"total weight 1,000,000 ({tk})", "one-in-a-million", {"targetingKey": tk}, ab, v, "one-in-a-million" + tk, h, b)
mx = [("a", 1_073_741_823), ("b", 1_073_741_824)]
flag("max-total", {"fractional": [[n, w] for n, w in mx]}, ab, "c")
for tk in ["m1", "m2", "m3", "m4"]:
    v, h, b = pick("max-total" + tk, mx)
    expect(f"total weight i32::MAX ({tk})", "max-total", {"targetingKey": tk}, ab, v, "max-total" + tk, h, b)

# Hash edge vectors (keys from flagd-testbed, whose murmur3 values are 0, 1, 2^31-1, 2^31, 2^32-1).
lu = {"lower": "lower", "upper": "upper"}
flag("hash-edge", {"fractional": [{"var": "targetingKey"}, ["lower", 50], ["upper", 50]]}, lu, "lower")
for tk in ["ejOoVL", "bY9fO-", "SI7p-", "6LvT0", "ceQdGm"]:
    v, h, b = pick(tk, [("lower", 50), ("upper", 50)])
    expect(f"hash edge {tk}", "hash-edge", {"targetingKey": tk}, lu, v, tk, h, b)

# Custom bucketing expressions.
flag("by-email", {"fractional": [{"var": "email"}, ["red", 25], ["blue", 25], ["green", 50]]}, colors, "grey")
for email in ["ada@example.com", "bob@example.org", "carol@example.net"]:
    v, h, b = pick(email, [("red", 25), ("blue", 25), ("green", 50)])
    expect(f"bucketing by email {email}", "by-email", {"email": email, "targetingKey": "ignored"}, colors, v, email, h, b)
tests.append({"name": "bucketing expression null falls back to flagKey+targetingKey", "flag": "by-email",
              "context": {"targetingKey": "tk-9"}, "expected": dict(zip(["value", "variant"], [colors[pick("by-emailtk-9", [("red", 25), ("blue", 25), ("green", 50)])[0]], pick("by-emailtk-9", [("red", 25), ("blue", 25), ("green", 50)])[0]]), reason="TARGETING_MATCH")})
tests.append({"name": "bucketing expression that is a number: no bucketing value, default", "flag": "by-email",
              "context": {"email": 12345, "targetingKey": "tk"}, "expected": {"value": "#888", "variant": "grey", "reason": "DEFAULT"}})

suits = {"clubs": "clubs", "diamonds": "diamonds", "hearts": "hearts", "spades": "spades", "wild": "wild"}
S = [("clubs", 25), ("diamonds", 25), ("hearts", 25), ("spades", 25)]
flag("fractional-flag", {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]}] + [[n, w] for n, w in S]}, suits, "wild")
for n in ["jack", "queen", "ten", "nine", "3"]:
    v, h, b = pick("fractional-flag" + n, S)
    expect(f"cat($flagd.flagKey, user.name) = {n} (flagd-testbed v2 vector)", "fractional-flag", {"user": {"name": n}}, suits, v, "fractional-flag" + n, h, b)
flag("shared-seed-flag", {"fractional": [{"cat": ["shared-seed", {"var": "user.name"}]}] + [[n, w] for n, w in S]}, suits, "wild")
for n in ["seven", "eight", "nine", "two"]:
    v, h, b = pick("shared-seed" + n, S)
    expect(f"constant seed bucketing {n} (flagd-testbed v2 vector)", "shared-seed-flag", {"user": {"name": n}}, suits, v, "shared-seed" + n, h, b)

# Nested fractional and computed variant names / weights.
tiers = {"premium": "premium", "standard": "standard", "fallback": "fallback", "off": "off"}
flag("nested", {"if": [{"==": [{"var": "plan"}, "free"]}, "off",
                       {"fractional": [{"var": "targetingKey"}, ["premium", 10], ["standard", 90]]}]}, tiers, "fallback")
tests.append({"name": "nested fractional: the if branch before it", "flag": "nested", "context": {"plan": "free", "targetingKey": "u1"},
              "expected": {"value": "off", "variant": "off", "reason": "TARGETING_MATCH"}})
for tk in ["u1", "u2", "u3"]:
    v, h, b = pick(tk, [("premium", 10), ("standard", 90)])
    expect(f"nested fractional in the else branch ({tk})", "nested", {"plan": "pro", "targetingKey": tk}, tiers, v, tk, h, b)
flag("computed-variant", {"fractional": [{"var": "targetingKey"},
        [{"if": [{"==": [{"var": "tier"}, "premium"]}, "premium", "standard"]}, 50], ["standard", 50]]}, tiers, "fallback")
for tk, tier in [("jon@company.com", "premium"), ("jon@company.com", "basic"), ("user1", "premium")]:
    v, h, b = pick(tk, [("first", 50), ("standard", 50)])
    want = ("premium" if tier == "premium" else "standard") if v == "first" else "standard"
    tests.append({"name": f"computed variant name ({tk}, {tier})", "flag": "computed-variant", "context": {"targetingKey": tk, "tier": tier},
                  "note": f"murmur3 {h}, bucket {b} -> bucket {v}",
                  "expected": {"value": want, "variant": want, "reason": "TARGETING_MATCH"}})
flag("computed-weight", {"fractional": [{"var": "targetingKey"},
        ["premium", {"if": [{"==": [{"var": "tier"}, "premium"]}, 100, 0]}], ["standard", 10]]}, tiers, "fallback")
for tk, tier in [("jon@company.com", "premium"), ("jon@company.com", "basic"), ("user1", "premium"), ("user1", "basic")]:
    w = [("premium", 100 if tier == "premium" else 0), ("standard", 10)]
    v, h, b = pick(tk, w)
    expect(f"computed weight ({tk}, {tier})", "computed-weight", {"targetingKey": tk, "tier": tier}, tiers, v, tk, h, b)
cond = {"big": "hundreds", "small": "ones", "fallback": "zero"}
flag("fractional-as-condition", {"if": [{"fractional": [[False, 0], [True, 100]]}, "big", "small"]}, cond, "fallback")
tests.append({"name": "fractional over booleans as an if condition", "flag": "fractional-as-condition",
              "context": {"targetingKey": "some-targeting-key"}, "expected": {"value": "hundreds", "variant": "big", "reason": "TARGETING_MATCH"}})

doc = {"description": "fractional: MurmurHash3 x86 32 (seed 0) of the UTF-8 bucketing value, bucket = (hash * totalWeight) >> 32 (flagd v2 bucketing).",
       "notes": "Generated by gen_fractional.py; every expected variant was computed with Python's mmh3 package, independently of the Rust implementation. Vectors named 'flagd-testbed' reproduce the published flagd-testbed v2 expectations.",
       "document": {"flags": flags}, "tests": tests}
with open("fractional.json", "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(len(tests), "tests")
