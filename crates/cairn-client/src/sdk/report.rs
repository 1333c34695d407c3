//! Evaluation counts kept in memory between reports, and the report body
//! (`POST /v1/report`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

/// Evaluations per (flag, variant) since the last successful report.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// flag → variant (`""`: none) → count.
    by: Mutex<HashMap<String, HashMap<String, u64>>>,
}

/// The largest count the server takes in one entry (`MAX_REPORT_COUNT`).
pub const MAX_COUNT: u64 = 1_000_000_000;

/// The server takes at most this many counts per report.
const MAX_PER_REPORT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Count {
    pub flag: String,
    pub variant: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReportBody<'a> {
    pub instance: &'a str,
    pub revision: i64,
    pub checksum: &'a str,
    pub evaluations: &'a [Count],
}

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, u64>>> {
        self.by.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one evaluation (`None`: no variant).
    pub fn record(&self, flag: &str, variant: Option<&str>) {
        let variant = variant.unwrap_or("");
        let mut by = self.lock();
        // No allocation once the (flag, variant) has been seen.
        if let Some(n) = by.get_mut(flag).and_then(|m| m.get_mut(variant)) {
            *n += 1;
            return;
        }
        *by.entry(flag.to_owned())
            .or_default()
            .entry(variant.to_owned())
            .or_default() += 1;
    }

    /// Take up to one report's worth of counts.
    pub fn take(&self) -> Vec<Count> {
        let mut out = Vec::new();
        self.lock().retain(|flag, variants| {
            variants.retain(|variant, left| {
                if out.len() == MAX_PER_REPORT {
                    return true;
                }
                // The server takes at most MAX_COUNT per entry: the rest
                // waits for the next report rather than failing this one.
                let count = (*left).min(MAX_COUNT);
                *left -= count;
                out.push(Count {
                    flag: flag.clone(),
                    variant: variant.clone(),
                    count,
                });
                *left > 0
            });
            !variants.is_empty()
        });
        out
    }

    /// Give back counts whose report failed (they go with the next one).
    pub fn give_back(&self, counts: Vec<Count>) {
        let mut by = self.lock();
        for c in counts {
            *by.entry(c.flag).or_default().entry(c.variant).or_default() += c.count;
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.lock().values().all(|m| m.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_counts_are_sent_in_parts() {
        let c = Counts::default();
        c.give_back(vec![Count {
            flag: "f".into(),
            variant: "on".into(),
            count: 2 * MAX_COUNT + 5,
        }]);
        let sent: Vec<u64> = (0..4).flat_map(|_| c.take()).map(|x| x.count).collect();
        assert_eq!(sent, vec![MAX_COUNT, MAX_COUNT, 5]);
        assert!(c.take().is_empty());
    }

    #[test]
    fn counts_are_taken_once_and_given_back_on_failure() {
        let c = Counts::default();
        c.record("f", Some("on"));
        c.record("f", Some("on"));
        c.record("f", None);
        let mut taken = c.take();
        taken.sort_by(|a, b| a.variant.cmp(&b.variant));
        assert_eq!(
            taken,
            vec![
                Count {
                    flag: "f".into(),
                    variant: "".into(),
                    count: 1
                },
                Count {
                    flag: "f".into(),
                    variant: "on".into(),
                    count: 2
                },
            ]
        );
        assert!(c.is_empty());
        c.record("f", Some("on"));
        c.give_back(taken);
        let mut again = c.take();
        again.sort_by(|a, b| a.variant.cmp(&b.variant));
        assert_eq!(again[1].count, 3);
    }
}
