//! Flag evaluation in process: cairn-eval against Unleash's Rust engine (unleash-yggdrasil)
//! on an equivalent toggle, in the same run.
//!
//! The flag has three targeting rules and a fractional split as the last `else`:
//!   email ends_with "@example.com" -> "on"; appVersion >= 2.1.0 -> "beta";
//!   country in ["de", "fr"] -> "eu"; otherwise fractional 10/90 on/off by targetingKey.
//! The Unleash toggle has the same rules as four flexibleRollout strategies with constraints
//! (STR_ENDS_WITH; SEMVER_LT inverted, i.e. >=; IN) and strategy variants, the last one a
//! 100/900 on/off split; `get_variant` returns the first matching strategy's variant, as the
//! flagd `if` chain does. The context matches no rule, so every rule and the split run.
//!
//! Run: `cargo bench -p cairn-eval --bench eval -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::print_stdout)]

use std::hint::black_box;

use cairn_eval::{EvalContext, FlagSet};
use criterion::{criterion_group, Criterion};
use serde_json::{json, Value};
use unleash_yggdrasil::{ClientFeatures, Context, EngineState, UpdateMessage};

const FLAG: &str = "checkout-redesign";
const NOW: i64 = 1_767_225_600;

fn flagd_document() -> Value {
    json!({
        "flags": {
            FLAG: {
                "state": "ENABLED",
                "variants": {"on": "new-checkout", "off": "old-checkout", "beta": "beta-checkout", "eu": "eu-checkout"},
                "defaultVariant": "off",
                "targeting": {"if": [
                    {"ends_with": [{"var": "email"}, "@example.com"]}, "on",
                    {"sem_ver": [{"var": "appVersion"}, ">=", "2.1.0"]}, "beta",
                    {"in": [{"var": "country"}, ["de", "fr"]]}, "eu",
                    {"fractional": [["on", 10], ["off", 90]]}
                ]}
            }
        }
    })
}

fn unleash_features() -> ClientFeatures {
    let strategy = |constraints: Value, variants: Value| {
        json!({
            "name": "flexibleRollout",
            "parameters": {"rollout": "100", "stickiness": "default", "groupId": FLAG},
            "constraints": constraints,
            "variants": variants
        })
    };
    let variant = |name: &str, weight: u32| json!({"name": name, "weight": weight, "weightType": "variable", "stickiness": "default"});
    serde_json::from_value(json!({
        "version": 2,
        "features": [{
            "name": FLAG,
            "enabled": true,
            "type": "release",
            "strategies": [
                strategy(json!([{"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@example.com"]}]), json!([variant("on", 1000)])),
                strategy(json!([{"contextName": "appVersion", "operator": "SEMVER_LT", "value": "2.1.0", "inverted": true}]), json!([variant("beta", 1000)])),
                strategy(json!([{"contextName": "country", "operator": "IN", "values": ["de", "fr"]}]), json!([variant("eu", 1000)])),
                strategy(json!([]), json!([variant("on", 100), variant("off", 900)]))
            ]
        }]
    }))
    .expect("valid Unleash client features")
}

struct Subject {
    email: &'static str,
    app_version: &'static str,
    country: &'static str,
}

fn cairn_context(s: &Subject) -> EvalContext {
    EvalContext::from_value(json!({
        "targetingKey": "5c3d8535-f81a-4478-a6d3-afaa4d51199e",
        "email": s.email,
        "appVersion": s.app_version,
        "country": s.country,
        "plan": "pro",
        "company": "Initech",
        "locale": "en-US"
    }))
    .expect("object")
}

fn unleash_context(s: &Subject) -> Context {
    let properties = [
        ("email", s.email),
        ("appVersion", s.app_version),
        ("country", s.country),
        ("plan", "pro"),
        ("company", "Initech"),
        ("locale", "en-US"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Context {
        user_id: Some("5c3d8535-f81a-4478-a6d3-afaa4d51199e".into()),
        properties: Some(properties),
        ..Context::default()
    }
}

/// The realistic case: no rule matches, so all three rules and the split are evaluated.
const MISS: Subject = Subject {
    email: "jane.doe@gmail.com",
    app_version: "2.0.3",
    country: "us",
};

fn setup() -> (FlagSet, EngineState) {
    let set = FlagSet::parse(&flagd_document()).expect("flag compiles");
    let engine = EngineState::default();
    let warnings = engine.take_state(UpdateMessage::FullResponse(unleash_features()));
    assert!(
        warnings.as_ref().is_none_or(|w| w.is_empty()),
        "unleash warnings: {warnings:?}"
    );
    // The two engines agree on every rule branch (the split hashes differ by design).
    for (s, want) in [
        (
            Subject {
                email: "a@example.com",
                app_version: "1.0.0",
                country: "us",
            },
            "on",
        ),
        (
            Subject {
                email: "a@gmail.com",
                app_version: "2.1.0",
                country: "us",
            },
            "beta",
        ),
        (
            Subject {
                email: "a@gmail.com",
                app_version: "2.0.9",
                country: "fr",
            },
            "eu",
        ),
    ] {
        let ours = set.evaluate(FLAG, &cairn_context(&s), NOW);
        let theirs = engine.get_variant(FLAG, &unleash_context(&s), &None);
        assert_eq!(ours.variant, Some(want));
        assert_eq!(theirs.name, want);
    }
    let split = engine
        .get_variant(FLAG, &unleash_context(&MISS), &None)
        .name;
    assert!(
        split == "on" || split == "off",
        "unleash split gave {split}"
    );
    (set, engine)
}

fn bench(c: &mut Criterion) {
    let (set, engine) = setup();
    let ctx = cairn_context(&MISS);
    let uctx = unleash_context(&MISS);
    let mut g = c.benchmark_group("three_rules_and_split");
    g.bench_function("cairn-eval FlagSet::evaluate", |b| {
        b.iter(|| black_box(set.evaluate(black_box(FLAG), black_box(&ctx), NOW).variant))
    });
    g.bench_function("unleash-yggdrasil get_variant", |b| {
        b.iter(|| black_box(engine.get_variant(black_box(FLAG), black_box(&uctx), &None)))
    });
    g.bench_function("unleash-yggdrasil is_enabled", |b| {
        b.iter(|| black_box(engine.is_enabled(black_box(FLAG), black_box(&uctx), &None)))
    });
    g.finish();
    let hit = cairn_context(&Subject {
        email: "ada@example.com",
        app_version: "2.0.3",
        country: "us",
    });
    c.bench_function("cairn-eval first rule matches", |b| {
        b.iter(|| black_box(set.evaluate(black_box(FLAG), black_box(&hit), NOW).variant))
    });
}

criterion_group!(benches, bench);

/// Reads criterion's point estimates (its reported time, i.e. the slope of the linear fit,
/// and the median, ns) of one benchmark from its output directory.
fn estimates_ns(id: &str) -> Option<(f64, f64)> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
    let path = format!("{target}/criterion/three_rules_and_split/{id}/new/estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some((
        v["slope"]["point_estimate"]
            .as_f64()
            .or_else(|| v["mean"]["point_estimate"].as_f64())?,
        v["median"]["point_estimate"].as_f64()?,
    ))
}

/// Nanoseconds per call, the minimum over `batches` batches of `per_batch` calls: the cost
/// on one undisturbed core, robust to preemption on a shared machine.
fn min_batch_ns(batches: usize, per_batch: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..batches {
        let t = std::time::Instant::now();
        for _ in 0..per_batch {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    best
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        let (set, engine) = setup();
        let ctx = cairn_context(&MISS);
        let uctx = unleash_context(&MISS);
        let o = min_batch_ns(2000, 500, || {
            black_box(set.evaluate(black_box(FLAG), black_box(&ctx), NOW).variant);
        });
        let t = min_batch_ns(500, 100, || {
            black_box(engine.get_variant(black_box(FLAG), black_box(&uctx), &None));
        });
        println!("\nminimum over batches (one undisturbed core):");
        println!("  cairn-eval                     {o:8.1} ns");
        println!(
            "  unleash-yggdrasil get_variant  {t:8.1} ns  ({:.1}x cairn-eval)",
            t / o
        );
    }
    let ours = estimates_ns("cairn-eval FlagSet__evaluate");
    let theirs = estimates_ns("unleash-yggdrasil get_variant");
    let enabled = estimates_ns("unleash-yggdrasil is_enabled");
    if let (Some(o), Some(t)) = (ours, theirs) {
        println!("\nthree rules + fractional split, per evaluation (criterion time / median):");
        println!(
            "  cairn-eval                     {:8.1} / {:8.1} ns",
            o.0, o.1
        );
        println!(
            "  unleash-yggdrasil get_variant  {:8.1} / {:8.1} ns  ({:.1}x / {:.1}x cairn-eval)",
            t.0,
            t.1,
            t.0 / o.0,
            t.1 / o.1
        );
        if let Some(e) = enabled {
            println!(
                "  unleash-yggdrasil is_enabled   {:8.1} / {:8.1} ns  ({:.1}x / {:.1}x cairn-eval)",
                e.0,
                e.1,
                e.0 / o.0,
                e.1 / o.1
            );
        }
    }
}
