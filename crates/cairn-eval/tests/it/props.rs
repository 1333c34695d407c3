//! Property tests of fractional bucketing (bucket = (murmur3(value) * totalWeight) >> 32).

use cairn_eval::fractional::select_bucket;
use cairn_eval::murmur3::murmur3_32;
use cairn_eval::{EvalContext, FlagSet};
use proptest::prelude::*;
use serde_json::{json, Value};

fn split_flag(key: &str, weights: &[u64]) -> FlagSet {
    let variants: serde_json::Map<String, Value> = (0..weights.len())
        .map(|i| (format!("v{i}"), json!(i)))
        .collect();
    let buckets: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!([format!("v{i}"), w]))
        .collect();
    FlagSet::parse(&json!({"flags": {key: {
        "state": "ENABLED", "variants": variants, "defaultVariant": "v0",
        "targeting": {"fractional": buckets}
    }}}))
    .unwrap()
}

fn variant_index(set: &FlagSet, flag: &str, ctx: &EvalContext) -> usize {
    let r = set.evaluate(flag, ctx, 0);
    r.variant.unwrap()[1..].parse().unwrap()
}

/// Deterministic pseudo-random keys (SplitMix64), so the distribution test is reproducible.
fn keys(n: usize, seed: u64) -> impl Iterator<Item = String> {
    let mut s = seed;
    (0..n).map(move |_| {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        format!("user-{:016x}", z ^ (z >> 31))
    })
}

fn weights() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(1u64..1_000, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same (flag, targeting key) always lands in the same variant, whatever else the
    /// context holds and however often or in which compiled copy it is evaluated, and that
    /// variant is the one the bucket formula gives.
    #[test]
    fn bucketing_is_stable_per_flag_and_key(
        flag in "[a-z][a-z0-9-]{0,20}",
        key in any::<String>(),
        noise in any::<String>(),
        w in weights(),
    ) {
        let a = split_flag(&flag, &w);
        let b = split_flag(&flag, &w);
        let plain = EvalContext::new().with_targeting_key(key.clone());
        let mut noisy = EvalContext::new().with_targeting_key(key.clone());
        noisy.insert("email", json!(noise));
        let first = variant_index(&a, &flag, &plain);
        prop_assert_eq!(variant_index(&a, &flag, &plain), first);
        prop_assert_eq!(variant_index(&b, &flag, &noisy), first);
        let hash = murmur3_32(format!("{flag}{key}").as_bytes(), 0);
        prop_assert_eq!(Some(first), select_bucket(hash, &w));
    }

    /// Adding a variant at the end (total T -> T' = T + w) moves keys only towards later
    /// variants, and a key of variant i stays exactly when its new bucket
    /// floor(h * T' / 2^32) is still below i's cumulative weight C_i. (Ranges are contiguous,
    /// so each old range [C_{i-1}/T, C_i/T) of the hash space shrinks to [C_{i-1}/T', C_i/T'):
    /// flagd's scheme is not minimal-movement; see docs/flags-engine.md.)
    #[test]
    fn appending_a_variant_moves_keys_only_forward(
        w in weights(), extra in 1u64..1_000, hash in any::<u32>(),
    ) {
        let old = select_bucket(hash, &w).unwrap();
        let mut w2 = w.clone();
        w2.push(extra);
        let new = select_bucket(hash, &w2).unwrap();
        prop_assert!(new >= old, "moved backwards: {old} -> {new}");
        let c_old: u64 = w[..=old].iter().sum();
        let total2: u64 = w2.iter().sum();
        let new_bucket = (u64::from(hash) * total2) >> 32;
        prop_assert_eq!(new == old, new_bucket < c_old);
    }

    /// Appending a variant of weight 0, or scaling all weights by k, moves no key.
    #[test]
    fn zero_weight_append_and_scaling_move_nobody(
        w in weights(), k in 1u64..1_000, hash in any::<u32>(),
    ) {
        let old = select_bucket(hash, &w);
        let mut w0 = w.clone();
        w0.push(0);
        prop_assert_eq!(select_bucket(hash, &w0), old);
        let scaled: Vec<u64> = w.iter().map(|x| x * k).collect();
        prop_assert_eq!(select_bucket(hash, &scaled), old);
    }

    /// A growing rollout [on p, off T-p] -> [on p', off T-p'] with p' >= p never turns a key
    /// that was "on" off (DESIGN §8: no flip-flopping as the percentage grows).
    #[test]
    fn growing_rollout_keeps_keys_on(
        total in 1u64..1_000_000, a in 0u64..1_000_000, b in 0u64..1_000_000, hash in any::<u32>(),
    ) {
        let (p, p2) = (a.min(b) % (total + 1), a.max(b) % (total + 1));
        let (p, p2) = (p.min(p2), p.max(p2));
        let before = select_bucket(hash, &[p, total - p]);
        let after = select_bucket(hash, &[p2, total - p2]);
        if before == Some(0) {
            prop_assert_eq!(after, Some(0));
        }
    }
}

#[test]
fn distribution_over_100k_keys_is_within_one_point_of_10_30_60() {
    let set = split_flag("dist", &[10, 30, 60]);
    let mut counts = [0usize; 3];
    let n = 100_000;
    for k in keys(n, 42) {
        counts[variant_index(&set, "dist", &EvalContext::new().with_targeting_key(k))] += 1;
    }
    for (i, want) in [10.0, 30.0, 60.0].iter().enumerate() {
        let got = counts[i] as f64 * 100.0 / n as f64;
        assert!(
            (got - want).abs() < 1.0,
            "variant {i}: {got:.2}% (want {want}%), counts {counts:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// For random weights, 100,000 keys spread within one percentage point of each weight.
    #[test]
    fn distribution_follows_random_weights(w in prop::collection::vec(1u64..100, 2..5), seed in any::<u64>()) {
        let set = split_flag("dist-random", &w);
        let total: u64 = w.iter().sum();
        let mut counts = vec![0usize; w.len()];
        let n = 100_000;
        for k in keys(n, seed) {
            counts[variant_index(&set, "dist-random", &EvalContext::new().with_targeting_key(k))] += 1;
        }
        for (i, wi) in w.iter().enumerate() {
            let want = *wi as f64 * 100.0 / total as f64;
            let got = counts[i] as f64 * 100.0 / n as f64;
            prop_assert!((got - want).abs() < 1.0, "variant {}: {:.2}% want {:.2}%", i, got, want);
        }
    }
}
