//! Change notification per resolved view, for watch streams and long polls.
//!
//! A view that somebody watches has a `Slot`: a `watch` channel carrying the
//! view's revision, the last view it announced, and a short log of the
//! events it produced (one per committed revision that moved the view).
//! `Hub::apply` applies synced entry versions revision by revision and, after
//! each revision, fires only the slots whose view that revision touched. A
//! write to another app's environment wakes nobody here.
//!
//! Slots are created on demand by the first watcher and dropped at the next
//! sync once their last receiver is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use cairn_model::{Revision, Scope};
use cairn_store::EntryVersion;
use serde::Serialize;
use tokio::sync::watch;

use crate::kernel::state::{ResolvedView, State};
use crate::Result;

/// How many events each watched view keeps for streams that fall behind.
const LOG_LEN: usize = 256;

/// One committed revision that changed a resolved view.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ViewEvent {
    /// The view's revision after the change (the SSE `id`).
    pub revision: Revision,
    /// The view's revision before it.
    #[serde(skip)]
    pub previous: Revision,
    /// Checksum of the view's values after the change.
    pub checksum: String,
    /// Keys whose resolved value changed (added, changed or removed).
    pub keys: Vec<String>,
    /// The JSON of this event, made once however many streams send it.
    #[serde(skip)]
    #[schema(ignore)]
    json: std::sync::OnceLock<String>,
}

impl ViewEvent {
    /// The event that takes a client from `old` (values at `previous`) to `new`.
    pub fn between(
        previous: Revision,
        old: Option<&std::collections::BTreeMap<String, serde_json::Value>>,
        new: &ResolvedView,
    ) -> ViewEvent {
        let keys = match old {
            Some(old) => changed_keys(old, &new.values),
            None => new.values.keys().cloned().collect(),
        };
        ViewEvent {
            revision: new.revision,
            previous,
            checksum: new.checksum.clone(),
            keys,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The event as JSON (`{revision, checksum, keys}`), serialized on first use.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(self).unwrap_or_default())
    }
}

/// Keys present in either map whose values differ, in key order.
pub fn changed_keys(
    old: &std::collections::BTreeMap<String, serde_json::Value>,
    new: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let mut keys: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys
}

struct Slot {
    tx: watch::Sender<Revision>,
    last: Arc<ResolvedView>,
    log: VecDeque<Arc<ViewEvent>>,
}

/// The watched views of one replica.
#[derive(Default)]
pub(crate) struct Hub {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl Hub {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribe to `view`'s (app, env). Call with the state read lock held
    /// (the view comes from it), so no sync can slip in between.
    fn subscribe(&self, view: &Arc<ResolvedView>) -> watch::Receiver<Revision> {
        let mut slots = self.slots();
        let slot = slots
            .entry((view.app.clone(), view.env.clone()))
            .or_insert_with(|| Slot {
                tx: watch::channel(view.revision).0,
                last: view.clone(),
                log: VecDeque::new(),
            });
        slot.tx.subscribe()
    }

    /// The events after `after`, if the log covers them without a gap.
    fn events_after(&self, app: &str, env: &str, after: Revision) -> Option<Vec<Arc<ViewEvent>>> {
        let slots = self.slots();
        let slot = slots.get(&(app.to_owned(), env.to_owned()))?;
        if after >= slot.last.revision {
            return Some(Vec::new());
        }
        let start = slot.log.iter().position(|e| e.previous == after)?;
        Some(slot.log.iter().skip(start).cloned().collect())
    }

    /// Apply synced versions (in revision order) to `st`, firing the watched
    /// views each revision touched.
    pub(crate) fn apply(&self, st: &mut State, versions: Vec<EntryVersion>) {
        let mut slots = self.slots();
        slots.retain(|_, s| s.tx.receiver_count() > 0);
        if slots.is_empty() {
            drop(slots);
            st.apply_entries(versions);
            return;
        }
        let mut group: Vec<EntryVersion> = Vec::new();
        let mut versions = versions.into_iter().peekable();
        while let Some(v) = versions.next() {
            let revision = v.revision;
            group.push(v);
            if versions.peek().is_some_and(|n| n.revision == revision) {
                continue;
            }
            let scopes: Vec<Scope> = group.iter().map(|v| v.scope.clone()).collect();
            st.apply_entries(std::mem::take(&mut group));
            for ((app, env), slot) in slots.iter_mut() {
                if !scopes.iter().any(|s| s.affects(app, env)) {
                    continue;
                }
                let Ok(view) = st.view(app, env) else {
                    continue;
                };
                if view.revision <= slot.last.revision {
                    continue;
                }
                let event = ViewEvent::between(slot.last.revision, Some(&slot.last.values), &view);
                if slot.log.len() == LOG_LEN {
                    slot.log.pop_front();
                }
                slot.log.push_back(Arc::new(event));
                slot.last = view;
                slot.tx.send_replace(slot.last.revision);
            }
        }
    }
}

impl super::Kernel {
    /// The current view of (app, env) and a receiver that moves whenever a
    /// committed revision changes it (no access check: see
    /// `config::Config::watch_view`). Subscribed under the state read lock,
    /// so no sync slips in between.
    pub(crate) fn watch(
        &self,
        app: &str,
        env: &str,
    ) -> Result<(Arc<ResolvedView>, watch::Receiver<Revision>)> {
        let st = self.read();
        let view = st.view(app, env)?;
        let rx = self.hub.subscribe(&view);
        Ok((view, rx))
    }

    /// The events of (app, env) after revision `after`, if this replica still
    /// holds all of them (it keeps the last few per watched view).
    pub(crate) fn view_events_after(
        &self,
        app: &str,
        env: &str,
        after: Revision,
    ) -> Option<Vec<Arc<ViewEvent>>> {
        self.hub.events_after(app, env, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn changed_keys_lists_added_changed_and_removed() {
        let old: BTreeMap<String, serde_json::Value> = [
            ("a".into(), json!(1)),
            ("b".into(), json!(2)),
            ("c".into(), json!(3)),
        ]
        .into();
        let new: BTreeMap<String, serde_json::Value> = [
            ("a".into(), json!(1)),
            ("b".into(), json!(5)),
            ("d".into(), json!(4)),
        ]
        .into();
        assert_eq!(changed_keys(&old, &new), vec!["b", "c", "d"]);
        assert!(changed_keys(&new, &new).is_empty());
    }
}
