//! A commit's guard is checked against committed state, under the commit's
//! lock: a change committed after the plan's basis that touches what the
//! plan read refuses it (`StoreError::Stale`, nothing written); a change to
//! anything else does not.

use std::sync::Arc;

use cairn_model::{checksum, EntryKind, MergeMode, Scope};
use serde_json::{json, Value};

use super::entries::observe;
use super::{commit, ctx, put, TEST_AUDIT_KEY};
use crate::{Commit, Guard, Mutation, Read, SealedSecret, Store, StoreError};
use crate::{CreateEnv, PutEntry, PutSchema, PutSecret};

fn segment(scope: &Scope, key: &str, value: Value) -> Mutation {
    Mutation::PutEntry(PutEntry {
        scope: scope.clone(),
        key: key.into(),
        kind: EntryKind::Segment,
        merge: MergeMode::Replace,
        checksum: checksum(&value),
        value: Some(value),
        expected_version: None,
    })
}

async fn guarded(s: &dyn Store, guard: Guard, m: Mutation) -> Result<i64, StoreError> {
    s.commit(Commit {
        context: ctx("test", "guarded change"),
        mutations: vec![(None, m)],
        seal: Some(TEST_AUDIT_KEY),
        sink: None,
        guard: Some(guard),
    })
    .await
    .map(|c| c.revision)
}

pub(super) async fn a_stale_plan_is_refused(s: Arc<dyn Store>) {
    let shop = Scope::new(Some("shop"), None);
    let shop_prod = Scope::new(Some("shop"), Some("prod"));
    let basis = commit(&*s, vec![put(&shop_prod, "db/url", json!("a"))])
        .await
        .unwrap()
        .revision;
    // Committed after the basis: one change of each kind a plan can read.
    commit(&*s, vec![put(&shop_prod, "db/url", json!("b"))])
        .await
        .unwrap();
    commit(
        &*s,
        vec![Mutation::PutSchema(PutSchema {
            app: Some("shop".into()),
            pattern: "db/*".into(),
            schema: json!({"type": "string"}),
        })],
    )
    .await
    .unwrap();
    commit(
        &*s,
        vec![Mutation::CreateEnv(CreateEnv {
            name: "qa".into(),
            description: String::new(),
            protected: false,
            required_approvals: 0,
            auto_approve: true,
            strict_flags: true,
            approvers: Vec::new(),
        })],
    )
    .await
    .unwrap();
    commit(
        &*s,
        vec![Mutation::PutSecret(PutSecret {
            scope: Scope::global(),
            name: "db/pw".into(),
            version: 1,
            sealed: SealedSecret {
                kek_id: "k".into(),
                wrapped_key: vec![1; 8],
                ciphertext: vec![2; 8],
            },
            policy: None,
            value_hash: "h".into(),
            expected_version: Some(0),
        })],
    )
    .await
    .unwrap();
    commit(&*s, vec![segment(&shop, "beta", json!({"in": [1, [1]]}))])
        .await
        .unwrap();

    // (read, refused?) — by hand from the changes above.
    #[rustfmt::skip]
    let rows: Vec<(Read, bool)> = vec![
        (Read::Entry { scope: shop_prod.clone(), key: "db/url".into() }, true),
        (Read::Entry { scope: shop.clone(), key: "db/url".into() }, false),
        (Read::SchemasFor { app: Some("shop".into()), key: "db/host".into() }, true),
        (Read::SchemasFor { app: Some("shop".into()), key: "web/host".into() }, false),
        (Read::SchemasFor { app: Some("other".into()), key: "db/host".into() }, false),
        (Read::Environments, true),
        (Read::Environment { name: "qa".into() }, true),
        (Read::Environment { name: "prod".into() }, false),
        (Read::Secret { name: "db/pw".into(), from: shop_prod.clone() }, true),
        (Read::Secret { name: "db/user".into(), from: shop_prod.clone() }, false),
        (Read::Secrets, true),
        (Read::VisibleFrom { kind: EntryKind::Segment, at: shop_prod.clone() }, true),
        (Read::VisibleFrom { kind: EntryKind::Segment, at: Scope::new(Some("other"), None) }, false),
        (Read::Seeing { kind: Some(EntryKind::Flag), layer: Scope::global() }, false),
        (Read::Seeing { kind: None, layer: Scope::global() }, true),
        (Read::Overlapping { kind: EntryKind::Segment, scope: Scope::new(None, Some("prod")) }, true),
        (Read::Matching { app: None, pattern: "db/*".into() }, true),
        (Read::Matching { app: None, pattern: "web/*".into() }, false),
    ];
    for (read, refused) in rows {
        let before = observe(&*s).await;
        let guard = Guard {
            basis,
            reads: vec![read.clone()],
        };
        let got = guarded(&*s, guard, put(&Scope::global(), "unrelated", json!(1))).await;
        if refused {
            assert!(
                matches!(got, Err(StoreError::Stale { .. })),
                "{read:?}: {got:?}"
            );
            assert_eq!(
                observe(&*s).await,
                before,
                "{read:?}: a refused commit wrote something"
            );
        } else {
            assert!(got.is_ok(), "{read:?}: {got:?}");
        }
    }
    // At the head, nothing has moved since: every read holds.
    let head = s.head().await.unwrap().revision;
    let all = Guard {
        basis: head,
        reads: vec![
            Read::Entry {
                scope: shop_prod.clone(),
                key: "db/url".into(),
            },
            Read::Environments,
            Read::Secrets,
        ],
    };
    let at = guarded(&*s, all, put(&Scope::global(), "unrelated", json!(2))).await;
    assert_eq!(at.unwrap(), head + 1);

    // Entries moved since this basis, the catalog did not (its last change,
    // the environment above, is older): schema and environment reads hold,
    // an entry read of what moved does not.
    let basis = s.head().await.unwrap().revision;
    commit(&*s, vec![put(&shop_prod, "db/url", json!("c"))])
        .await
        .unwrap();
    let catalog_reads = Guard {
        basis,
        reads: vec![
            Read::SchemasFor {
                app: Some("shop".into()),
                key: "db/host".into(),
            },
            Read::Environments,
        ],
    };
    let held = guarded(
        &*s,
        catalog_reads,
        put(&Scope::global(), "unrelated", json!(3)),
    )
    .await;
    assert_eq!(held.unwrap(), basis + 2);
    let entry_read = Guard {
        basis,
        reads: vec![Read::Entry {
            scope: shop_prod.clone(),
            key: "db/url".into(),
        }],
    };
    let moved = guarded(
        &*s,
        entry_read,
        put(&Scope::global(), "unrelated", json!(4)),
    )
    .await;
    assert!(matches!(moved, Err(StoreError::Stale { .. })), "{moved:?}");
}
