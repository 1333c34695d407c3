//! Gradual rollout of an entry's new version (DESIGN.md §8, issue #14), the
//! pure part: the strategies, the schedule each one makes (which share of
//! clients gets the new value from when on), and which clients those are.
//!
//! Shares are in basis points (`0..=FULL`, 1 bp = 0.01 %), so a 0.5 %
//! canary is exact. A client gets the new value when its bucket — the
//! first 64 bits of `SHA-256(salt 0x00 key 0x00 client)` scaled to
//! `0..FULL` — is below the current share: raising the share only ever adds
//! clients (a client never flips back), and every replica and SDK instance
//! computes the same answer from the same three strings. A client without
//! an id gets the previous value until the share is full.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ModelError;

/// The whole audience, in basis points.
pub const FULL: u32 = 10_000;

/// The longest interval, bake or canary time: 30 days.
pub const MAX_INTERVAL_SECS: u64 = 30 * 24 * 3600;

/// At most this many steps in one schedule.
pub const MAX_STEPS: usize = 1000;

/// How a deployment moves from the previous value to the new one.
/// Percentages are of clients (`0 < p ≤ 100`, two decimals count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "strategy", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Strategy {
    /// Everyone at once.
    AllAtOnce,
    /// `step` % more every `interval_secs`, starting with `step` %.
    Linear { step: f64, interval_secs: u64 },
    /// `start` %, then × `growth` every `interval_secs`, up to 100 %.
    Exponential {
        start: f64,
        growth: f64,
        interval_secs: u64,
    },
    /// `percent` % for `bake_secs`, then everyone.
    Canary { percent: f64, bake_secs: u64 },
    /// Everyone from `at` (Unix seconds); with `until`, back to the previous
    /// value from then on (a time window).
    Scheduled { at: i64, until: Option<i64> },
}

/// From `at` (Unix seconds) on, `share` basis points get the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at: i64,
    pub share: u32,
}

fn share_of(field: &str, percent: f64) -> Result<u32, ModelError> {
    if !percent.is_finite() || percent <= 0.0 || percent > 100.0 {
        return Err(ModelError::invalid(
            field,
            format!("{percent} is not a percentage in (0, 100]"),
        ));
    }
    let bp = (percent * 100.0).round();
    if bp < 1.0 {
        return Err(ModelError::invalid(field, "at least 0.01 %"));
    }
    // In (0, 100] and rounded: fits.
    Ok(bp as u32)
}

fn interval(field: &str, secs: u64) -> Result<i64, ModelError> {
    if secs == 0 || secs > MAX_INTERVAL_SECS {
        return Err(ModelError::invalid(
            field,
            format!("{secs} s is not between 1 s and 30 days"),
        ));
    }
    // At most 30 days: fits.
    Ok(secs as i64)
}

fn too_many(steps: &[Step]) -> Result<(), ModelError> {
    if steps.len() > MAX_STEPS {
        return Err(ModelError::invalid(
            "strategy",
            format!("more than {MAX_STEPS} steps: take larger steps"),
        ));
    }
    Ok(())
}

/// The steps of `strategy` for a deployment started at `start` (Unix
/// seconds): times never decrease and the last step is the final share
/// (`FULL`, or 0 when a scheduled window ends). Bad input names its field.
pub fn schedule(strategy: &Strategy, start: i64) -> Result<Vec<Step>, ModelError> {
    let steps = match *strategy {
        Strategy::AllAtOnce => vec![Step {
            at: start,
            share: FULL,
        }],
        Strategy::Linear {
            step,
            interval_secs,
        } => {
            let (step, every) = (
                share_of("step", step)?,
                interval("interval", interval_secs)?,
            );
            let n = FULL.div_ceil(step) as usize;
            if n > MAX_STEPS {
                return Err(ModelError::invalid(
                    "step",
                    format!("more than {MAX_STEPS} steps: take larger steps"),
                ));
            }
            (1..=n)
                .map(|k| Step {
                    at: start + (k as i64 - 1) * every,
                    share: (k as u32 * step).min(FULL),
                })
                .collect()
        }
        Strategy::Exponential {
            start: first,
            growth,
            interval_secs,
        } => {
            let mut share = share_of("start", first)?;
            if !growth.is_finite() || growth <= 1.0 || growth > 100.0 {
                return Err(ModelError::invalid(
                    "growth",
                    format!("{growth} is not a growth factor in (1, 100]"),
                ));
            }
            let every = interval("interval", interval_secs)?;
            let mut steps = vec![Step { at: start, share }];
            let mut percent = f64::from(share) / 100.0;
            while share < FULL {
                percent *= growth;
                let rounded = (percent * 100.0).round() as u32;
                if rounded <= share {
                    // Always at least one basis point more, and growing
                    // from there.
                    share += 1;
                    percent = f64::from(share) / 100.0;
                } else {
                    share = rounded.min(FULL);
                }
                steps.push(Step {
                    at: start + steps.len() as i64 * every,
                    share,
                });
                too_many(&steps)?;
            }
            steps
        }
        Strategy::Canary { percent, bake_secs } => {
            let share = share_of("percent", percent)?;
            let bake = interval("bake", bake_secs)?;
            if share == FULL {
                vec![Step { at: start, share }]
            } else {
                vec![
                    Step { at: start, share },
                    Step {
                        at: start + bake,
                        share: FULL,
                    },
                ]
            }
        }
        Strategy::Scheduled { at, until } => {
            let from = at.max(start);
            let mut steps = vec![Step {
                at: from,
                share: FULL,
            }];
            if let Some(until) = until {
                if until <= from {
                    return Err(ModelError::invalid(
                        "until",
                        "the window must end after it begins (and after now)",
                    ));
                }
                steps.push(Step {
                    at: until,
                    share: 0,
                });
            }
            steps
        }
    };
    Ok(steps)
}

/// The share of `steps` at `now`: that of the last step at or before it (0
/// before the first).
pub fn share_at(steps: &[Step], now: i64) -> u32 {
    steps
        .iter()
        .take_while(|s| s.at <= now)
        .last()
        .map_or(0, |s| s.share)
}

/// The bucket of `client` for `key` in the deployment salted `salt`, in
/// `0..FULL`.
pub fn bucket(salt: &str, key: &str, client: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update([0]);
    h.update(client.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // Multiply-shift: uniform over 0..FULL, below FULL by construction.
    ((u128::from(u64::from_be_bytes(first)) * u128::from(FULL)) >> 64) as u32
}

/// Does `client` get the new value of `key` at `share`? Without a client
/// id, only once everyone does.
pub fn gets_new(salt: &str, key: &str, client: Option<&str>, share: u32) -> bool {
    match client {
        _ if share >= FULL => true,
        None => false,
        Some(c) => bucket(salt, key, c) < share,
    }
}

#[cfg(test)]
mod tests {
    use super::Strategy;
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;

    const T0: i64 = 1_800_000_000;
    const MIN: i64 = 60;

    fn shares(steps: &[Step]) -> Vec<(i64, u32)> {
        steps.iter().map(|s| (s.at - T0, s.share)).collect()
    }

    /// Hand-written schedules: (strategy, [(seconds after start, bp)]).
    #[test]
    fn schedules_by_table() {
        let table: Vec<(Strategy, Vec<(i64, u32)>)> = vec![
            (Strategy::AllAtOnce, vec![(0, 10_000)]),
            (
                Strategy::Linear {
                    step: 20.0,
                    interval_secs: 1800,
                },
                vec![
                    (0, 2000),
                    (30 * MIN, 4000),
                    (60 * MIN, 6000),
                    (90 * MIN, 8000),
                    (120 * MIN, 10_000),
                ],
            ),
            (
                // 30 % steps: the last one is capped at 100 %.
                Strategy::Linear {
                    step: 30.0,
                    interval_secs: 60,
                },
                vec![(0, 3000), (60, 6000), (120, 9000), (180, 10_000)],
            ),
            (
                Strategy::Exponential {
                    start: 1.0,
                    growth: 2.0,
                    interval_secs: 600,
                },
                vec![
                    (0, 100),
                    (600, 200),
                    (1200, 400),
                    (1800, 800),
                    (2400, 1600),
                    (3000, 3200),
                    (3600, 6400),
                    (4200, 10_000),
                ],
            ),
            (
                // 10, 15, 22.5, 33.75, 50.625, 75.9375 %, then capped.
                Strategy::Exponential {
                    start: 10.0,
                    growth: 1.5,
                    interval_secs: 60,
                },
                vec![
                    (0, 1000),
                    (60, 1500),
                    (120, 2250),
                    (180, 3375),
                    (240, 5063),
                    (300, 7594),
                    (360, 10_000),
                ],
            ),
            (
                Strategy::Canary {
                    percent: 5.0,
                    bake_secs: 3600,
                },
                vec![(0, 500), (60 * MIN, 10_000)],
            ),
            (
                Strategy::Canary {
                    percent: 0.5,
                    bake_secs: 60,
                },
                vec![(0, 50), (60, 10_000)],
            ),
            (
                Strategy::Scheduled {
                    at: T0 + 7200,
                    until: Some(T0 + 9000),
                },
                vec![(7200, 10_000), (9000, 0)],
            ),
            (
                // A time already past starts now.
                Strategy::Scheduled {
                    at: T0 - 100,
                    until: None,
                },
                vec![(0, 10_000)],
            ),
        ];
        for (strategy, want) in table {
            let got = schedule(&strategy, T0).unwrap();
            assert_eq!(shares(&got), want, "{strategy:?}");
        }
    }

    /// Bad input: (strategy, the field named).
    #[test]
    fn bad_strategies_name_their_field() {
        let table: Vec<(Strategy, &str)> = vec![
            (
                Strategy::Linear {
                    step: 0.0,
                    interval_secs: 60,
                },
                "step",
            ),
            (
                Strategy::Linear {
                    step: 101.0,
                    interval_secs: 60,
                },
                "step",
            ),
            (
                Strategy::Linear {
                    step: f64::NAN,
                    interval_secs: 60,
                },
                "step",
            ),
            (
                Strategy::Linear {
                    step: 0.05,
                    interval_secs: 60,
                },
                "step",
            ),
            (
                Strategy::Linear {
                    step: 10.0,
                    interval_secs: 0,
                },
                "interval",
            ),
            (
                Strategy::Linear {
                    step: 10.0,
                    interval_secs: MAX_INTERVAL_SECS + 1,
                },
                "interval",
            ),
            (
                Strategy::Exponential {
                    start: 1.0,
                    growth: 1.0,
                    interval_secs: 60,
                },
                "growth",
            ),
            (
                Strategy::Exponential {
                    start: 1.0,
                    growth: 0.5,
                    interval_secs: 60,
                },
                "growth",
            ),
            (
                Strategy::Exponential {
                    start: -1.0,
                    growth: 2.0,
                    interval_secs: 60,
                },
                "start",
            ),
            (
                Strategy::Exponential {
                    start: 0.001,
                    growth: 2.0,
                    interval_secs: 60,
                },
                "start",
            ),
            (
                Strategy::Exponential {
                    start: 0.01,
                    growth: 1.000_1,
                    interval_secs: 60,
                },
                "strategy",
            ),
            (
                Strategy::Canary {
                    percent: 5.0,
                    bake_secs: 0,
                },
                "bake",
            ),
            (
                Strategy::Canary {
                    percent: 0.0,
                    bake_secs: 60,
                },
                "percent",
            ),
            (
                Strategy::Scheduled {
                    at: T0 + 60,
                    until: Some(T0 + 60),
                },
                "until",
            ),
            (
                Strategy::Scheduled {
                    at: T0 - 600,
                    until: Some(T0 - 60),
                },
                "until",
            ),
        ];
        for (strategy, field) in table {
            match schedule(&strategy, T0) {
                Err(ModelError::Invalid { field: f, .. }) => assert_eq!(f, field, "{strategy:?}"),
                Ok(s) => panic!("{strategy:?} was accepted: {s:?}"),
            }
        }
    }

    #[test]
    fn share_at_follows_the_steps() {
        let steps = schedule(
            &Strategy::Linear {
                step: 25.0,
                interval_secs: 100,
            },
            T0,
        )
        .unwrap();
        let table = [
            (T0 - 1, 0),
            (T0, 2500),
            (T0 + 99, 2500),
            (T0 + 100, 5000),
            (T0 + 299, 7500),
            (T0 + 300, 10_000),
            (T0 + 10_000, 10_000),
        ];
        for (now, want) in table {
            assert_eq!(share_at(&steps, now), want, "at {}", now - T0);
        }
    }

    /// Buckets computed independently, with Python:
    /// `int.from_bytes(hashlib.sha256(b"dep_1\0feature/checkout\0user-42").digest()[:8], "big") * 10000 >> 64`.
    #[test]
    fn buckets_match_an_independent_computation() {
        let table = [
            ("dep_1", "feature/checkout", "user-42", 3318),
            ("dep_1", "feature/checkout", "user-43", 9301),
            ("dep_2", "feature/checkout", "user-42", 6866),
            ("dep_1", "", "", 903),
        ];
        for (salt, key, client, want) in table {
            assert_eq!(bucket(salt, key, client), want, "{salt} {key} {client}");
        }
    }

    /// The share of 100,000 client ids on the new value is the percentage,
    /// within one percentage point.
    #[test]
    fn shares_of_clients_match_the_percentage() {
        for share in [100, 1000, 2500, 5000, 9000] {
            let on = (0..100_000)
                .filter(|i| {
                    gets_new(
                        "dep_x",
                        "feature/checkout",
                        Some(&format!("user-{i}")),
                        share,
                    )
                })
                .count();
            let want = share as usize * 10;
            assert!(
                on.abs_diff(want) <= 1000,
                "{share} bp: {on} of 100,000 clients"
            );
        }
    }

    #[test]
    fn clients_without_an_id_wait_for_everyone() {
        assert!(!gets_new("s", "k", None, 0));
        assert!(!gets_new("s", "k", None, 9_999));
        assert!(gets_new("s", "k", None, FULL));
        assert!(!gets_new("s", "k", Some("c"), 0));
        assert!(gets_new("s", "k", Some("c"), FULL));
    }

    fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
        prop_oneof![
            Just(Strategy::AllAtOnce),
            (1u32..=10_000, 1u64..=86_400).prop_map(|(bp, i)| Strategy::Linear {
                step: f64::from(bp.max(10)) / 100.0,
                interval_secs: i,
            }),
            (1u32..=10_000, 1.01f64..10.0, 1u64..=86_400).prop_map(|(bp, g, i)| {
                Strategy::Exponential {
                    start: f64::from(bp) / 100.0,
                    growth: g,
                    interval_secs: i,
                }
            }),
            (1u32..=10_000, 1u64..=86_400).prop_map(|(bp, b)| Strategy::Canary {
                percent: f64::from(bp) / 100.0,
                bake_secs: b,
            }),
        ]
    }

    proptest! {
        /// Raising the share only ever moves clients from the previous
        /// value to the new one, never back.
        #[test]
        fn a_client_never_flips_back(
            salt in "[a-z0-9_]{1,12}",
            key in "[a-z/]{1,20}",
            client in ".{0,40}",
            a in 0u32..=FULL,
            b in 0u32..=FULL,
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            if gets_new(&salt, &key, Some(&client), lo) {
                prop_assert!(gets_new(&salt, &key, Some(&client), hi));
            }
            prop_assert!(bucket(&salt, &key, &client) < FULL);
            prop_assert_eq!(bucket(&salt, &key, &client), bucket(&salt, &key, &client));
        }

        /// Every valid schedule: times never go back, shares only rise,
        /// and it ends with everyone.
        #[test]
        fn schedules_rise_to_everyone(s in strategy()) {
            let steps = schedule(&s, T0).unwrap();
            prop_assert!(!steps.is_empty() && steps.len() <= MAX_STEPS);
            prop_assert_eq!(steps[0].at, T0);
            prop_assert_eq!(steps.last().map(|s| s.share), Some(FULL));
            for w in steps.windows(2) {
                prop_assert!(w[0].at < w[1].at, "{:?}", w);
                prop_assert!(w[0].share < w[1].share, "{:?}", w);
            }
        }
    }
}
