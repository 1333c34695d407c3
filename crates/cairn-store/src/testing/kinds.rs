//! One (scope, key) holds one kind at a time, checked inside the commit
//! against committed state (so two writers racing cannot break it).

use std::sync::Arc;

use cairn_model::{checksum, EntryKind, MergeMode, Scope};
use serde_json::{json, Value};

use super::entries::observe;
use super::{commit, delete, put};
use crate::PutEntry;
use crate::{Mutation, Store, StoreError};

fn put_kind(scope: &Scope, key: &str, kind: EntryKind, value: Value) -> Mutation {
    Mutation::PutEntry(PutEntry {
        scope: scope.clone(),
        key: key.into(),
        kind,
        merge: MergeMode::Replace,
        checksum: checksum(&value),
        value: Some(value),
        expected_version: None,
    })
}

fn flag() -> Value {
    json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"})
}

pub async fn one_kind_per_key(s: Arc<dyn Store>) {
    let g = Scope::global();
    commit(&*s, vec![put(&g, "shared", json!({"a": 1}))])
        .await
        .unwrap();
    let before = observe(&*s).await;
    // A flag over a live config entry: refused, nothing written.
    let err = commit(&*s, vec![put_kind(&g, "shared", EntryKind::Flag, flag())])
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::KindConflict {
                current: "config",
                requested: "flag",
                version: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        observe(&*s).await,
        before,
        "a refused kind change wrote something"
    );
    // A delete named with another kind removes the config entry as a config entry.
    let mut del = delete(&g, "shared", None);
    if let Mutation::PutEntry(PutEntry { kind, .. }) = &mut del {
        *kind = EntryKind::Flag;
    }
    commit(&*s, vec![del]).await.unwrap();
    let history = s.entry_history(&g, "shared").await.unwrap();
    assert_eq!(history[1].kind, EntryKind::Config, "{history:?}");
    assert!(history[1].is_tombstone());
    // Once deleted, the key may hold another kind.
    commit(&*s, vec![put_kind(&g, "shared", EntryKind::Flag, flag())])
        .await
        .unwrap();
    // The flag-set metadata entry lives at the empty key.
    commit(
        &*s,
        vec![put_kind(&g, "", EntryKind::FlagSet, json!({"team": "web"}))],
    )
    .await
    .unwrap();
    let at = s.entry_history(&g, "").await.unwrap();
    assert_eq!((at.len(), at[0].kind), (1, EntryKind::FlagSet));

    // Two writers race for a new key with different kinds: exactly one kind
    // wins, the other is refused (or, if it ran first, the first is refused).
    for round in 0..20 {
        let key = format!("race-{round}");
        let (a, b) = tokio::join!(
            {
                let s = s.clone();
                let k = key.clone();
                tokio::spawn(
                    async move { commit(&*s, vec![put(&Scope::global(), &k, json!(1))]).await },
                )
            },
            {
                let s = s.clone();
                let k = key.clone();
                tokio::spawn(async move {
                    commit(
                        &*s,
                        vec![put_kind(&Scope::global(), &k, EntryKind::Flag, flag())],
                    )
                    .await
                })
            }
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.is_ok() != b.is_ok(), "round {round}: {a:?} / {b:?}");
        let refused = a.as_ref().err().or(b.as_ref().err()).unwrap();
        assert!(
            matches!(refused, StoreError::KindConflict { .. }),
            "{refused:?}"
        );
        let history = s.entry_history(&g, &key).await.unwrap();
        assert_eq!(history.len(), 1, "round {round}: {history:?}");
    }
}
