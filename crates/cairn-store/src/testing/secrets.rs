//! Secrets: sealed versions, policy, delete, rewrap in place, audit without plaintext.

use std::sync::Arc;

use cairn_model::Scope;

use super::commit;
use crate::{AuditFilter, Mutation, SealedSecret, SecretPolicy, Store, StoreError};
use crate::{DeleteSecret, PutSecret, RewrapSecret};

fn sealed(tag: u8) -> SealedSecret {
    SealedSecret {
        kek_id: "kek_a".to_owned(),
        wrapped_key: vec![tag; 60],
        ciphertext: vec![tag, 0, 255, tag],
    }
}

fn put(scope: &Scope, version: i64, tag: u8, expected: Option<i64>) -> Mutation {
    Mutation::PutSecret(PutSecret {
        scope: scope.clone(),
        name: "db/password".to_owned(),
        version,
        sealed: sealed(tag),
        policy: (version == 1).then(|| SecretPolicy {
            rotation_days: Some(30),
            rotation_seconds: None,
            grace_days: 7,
            generator: Some("random:32:alnum".to_owned()),
            hook_secret: None,
        }),
        value_hash: format!("hmac-{tag}"),
        expected_version: expected,
    })
}

pub(super) async fn secrets_versions_delete_and_rewrap(s: Arc<dyn Store>) {
    let scope = Scope::new(Some("shop"), Some("prod"));
    let name = "db/password";
    assert!(s.secrets().await.unwrap().is_empty());
    commit(&*s, vec![put(&scope, 1, 1, Some(0))]).await.unwrap();
    // Creating again conflicts; a wrong version number conflicts.
    let again = commit(&*s, vec![put(&scope, 2, 9, Some(0))]).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    let skip = commit(&*s, vec![put(&scope, 3, 9, None)]).await;
    assert!(matches!(skip, Err(StoreError::Conflict { .. })), "{skip:?}");
    commit(&*s, vec![put(&scope, 2, 2, Some(1))]).await.unwrap();

    let all = s.secrets().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, name);
    assert_eq!(all[0].scope, scope);
    assert_eq!(all[0].current_version, 2);
    // The policy is kept when a rotation passes none.
    assert_eq!(all[0].policy.rotation_days, Some(30));
    assert_eq!(all[0].policy.grace_days, 7);
    assert_eq!(all[0].policy.generator.as_deref(), Some("random:32:alnum"));
    let versions = s.secret_versions(&scope, name).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(versions[0].sealed, sealed(1));
    assert_eq!(versions[1].sealed, sealed(2));
    assert_eq!(versions[1].actor, "test");
    assert!(s.secret_version(&scope, name, 3).await.unwrap().is_none());
    assert!(s
        .secret_version(&Scope::global(), name, 1)
        .await
        .unwrap()
        .is_none());

    // Rewrap in place: the ciphertext stays, the wrapped key and KEK change.
    commit(
        &*s,
        vec![Mutation::RewrapSecret(RewrapSecret {
            scope: scope.clone(),
            name: name.to_owned(),
            version: 1,
            kek_id: "kek_b".to_owned(),
            wrapped_key: vec![42; 60],
        })],
    )
    .await
    .unwrap();
    let v1 = s.secret_version(&scope, name, 1).await.unwrap().unwrap();
    assert_eq!(v1.sealed.kek_id, "kek_b");
    assert_eq!(v1.sealed.wrapped_key, vec![42; 60]);
    assert_eq!(v1.sealed.ciphertext, sealed(1).ciphertext);
    let missing = commit(
        &*s,
        vec![Mutation::RewrapSecret(RewrapSecret {
            scope: scope.clone(),
            name: name.to_owned(),
            version: 7,
            kek_id: "kek_b".to_owned(),
            wrapped_key: vec![42; 60],
        })],
    )
    .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    // Delete hides it from the list; versions stay; re-create continues numbering.
    let delete = || {
        Mutation::DeleteSecret(DeleteSecret {
            scope: scope.clone(),
            name: name.to_owned(),
        })
    };
    commit(&*s, vec![delete()]).await.unwrap();
    assert!(s.secrets().await.unwrap().is_empty());
    let (_, deleted) = s.secret(&scope, name).await.unwrap().unwrap();
    assert!(deleted);
    let twice = commit(&*s, vec![delete()]).await;
    assert!(
        matches!(twice, Err(StoreError::NotFound { .. })),
        "{twice:?}"
    );
    commit(&*s, vec![put(&scope, 3, 3, Some(0))]).await.unwrap();
    let (record, deleted) = s.secret(&scope, name).await.unwrap().unwrap();
    assert!(!deleted);
    assert_eq!(record.current_version, 3);

    // One audit record per mutation, with the keyed hash and never the bytes.
    let audit = s
        .audit(&AuditFilter {
            key: Some(name.to_owned()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "secret.create",
            "secret.rotate",
            "secret.rewrap",
            "secret.delete",
            "secret.create"
        ]
    );
    assert_eq!(audit[0].detail["value_hmac"], "hmac-1");
    assert_eq!(audit[0].app.as_deref(), Some("shop"));
    assert_eq!(audit[1].from_version, Some(1));
    assert_eq!(audit[1].to_version, Some(2));
    // Secrets are not catalog: replicas need not reload apps, tokens and users.
    assert_eq!(s.head().await.unwrap().catalog_revision, 0);
}

/// A sub-day rotation interval and a hook generator round-trip and are kept
/// by a rotation that passes no policy.
pub(super) async fn secret_policy_round_trips(s: Arc<dyn Store>) {
    let scope = Scope::global();
    let policy = SecretPolicy {
        rotation_days: None,
        rotation_seconds: Some(90),
        grace_days: 0,
        generator: Some("hook:https://user:pw@rotate.example.com:8443/db?token=T0K3N".to_owned()),
        hook_secret: Some("hooks/db".to_owned()),
    };
    let mut first = put(&scope, 1, 1, Some(0));
    if let Mutation::PutSecret(PutSecret { policy: p, .. }) = &mut first {
        *p = Some(policy.clone());
    }
    commit(&*s, vec![first]).await.unwrap();
    commit(&*s, vec![put(&scope, 2, 2, Some(1))]).await.unwrap();
    let (record, deleted) = s.secret(&scope, "db/password").await.unwrap().unwrap();
    assert!(!deleted);
    assert_eq!(record.policy, policy);
    assert_eq!(
        record.policy.rotation_interval(),
        Some(chrono::Duration::seconds(90))
    );
    // The audit record names the hook's origin only: no credentials, path or query.
    let audit = s
        .audit(&AuditFilter {
            action: Some("secret.create".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let text = serde_json::to_string(&audit).unwrap();
    assert!(
        text.contains("hook:https://rotate.example.com:8443"),
        "{text}"
    );
    for hidden in ["T0K3N", "user:pw", "8443/db"] {
        assert!(!text.contains(hidden), "{hidden} in {text}");
    }
}

/// One holder at a time; the holder renews; another takes over only after
/// expiry or release.
pub(super) async fn leases_elect_one_holder(s: Arc<dyn Store>) {
    use std::time::Duration;
    let long = Duration::from_secs(60);
    assert!(s.try_lease("rotation", "a", long).await.unwrap());
    assert!(!s.try_lease("rotation", "b", long).await.unwrap());
    // Renewal by the holder; other lease names are independent.
    assert!(s.try_lease("rotation", "a", long).await.unwrap());
    assert!(s.try_lease("other", "b", long).await.unwrap());
    // Releasing someone else's lease does nothing.
    s.release_lease("rotation", "b").await.unwrap();
    assert!(!s.try_lease("rotation", "b", long).await.unwrap());
    s.release_lease("rotation", "a").await.unwrap();
    assert!(s.try_lease("rotation", "b", long).await.unwrap());
    assert!(!s.try_lease("rotation", "a", long).await.unwrap());
    // An expired lease can be taken.
    assert!(s
        .try_lease("short", "a", Duration::from_millis(200))
        .await
        .unwrap());
    assert!(!s.try_lease("short", "b", long).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.try_lease("short", "b", long).await.unwrap());
    assert!(!s.try_lease("short", "a", long).await.unwrap());

    // Many contenders at once: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.try_lease("race", &format!("h{i}"), long).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one contender holds the lease");
}

/// A lease taken for a ttl far beyond any real one (a century, longer than
/// the calendar counts, `Duration::MAX`) is held, not expired at once (nor
/// an error): another holder cannot take it, the holder renews it, and a
/// release frees it.
pub(super) async fn leases_with_huge_ttls_are_held(s: Arc<dyn Store>) {
    use std::time::Duration;
    const YEAR: u64 = 365 * 24 * 60 * 60 + 6 * 60 * 60;
    let ttls = [
        ("century", Duration::from_secs(100 * YEAR)),
        // Past the last instant a timestamp can name (year 262143).
        ("beyond-calendar", Duration::from_secs(300_000 * YEAR)),
        ("max", Duration::MAX),
    ];
    for (name, ttl) in ttls {
        assert!(
            s.try_lease(name, "a", ttl).await.unwrap(),
            "{name}: a free lease is taken"
        );
        assert!(
            !s.try_lease(name, "b", Duration::from_secs(60))
                .await
                .unwrap(),
            "{name}: held, so another holder does not get it"
        );
        assert!(
            !s.try_lease(name, "b", ttl).await.unwrap(),
            "{name}: nor with the same ttl"
        );
        assert!(
            s.try_lease(name, "a", ttl).await.unwrap(),
            "{name}: the holder renews"
        );
        assert!(
            !s.try_lease(name, "b", ttl).await.unwrap(),
            "{name}: still held after the renewal"
        );
        // Someone else's release changes nothing.
        s.release_lease(name, "b").await.unwrap();
        assert!(
            !s.try_lease(name, "b", ttl).await.unwrap(),
            "{name}: another holder's release does not free it"
        );
        s.release_lease(name, "a").await.unwrap();
        assert!(
            s.try_lease(name, "b", Duration::from_secs(60))
                .await
                .unwrap(),
            "{name}: released, so another holder takes it"
        );
        assert!(
            !s.try_lease(name, "a", ttl).await.unwrap(),
            "{name}: now b's"
        );
    }
    // Still held after a while (an expiry saturated to "now" would not be).
    assert!(s.try_lease("late", "a", Duration::MAX).await.unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !s.try_lease("late", "b", Duration::MAX).await.unwrap(),
        "Duration::MAX does not expire"
    );
}
