//! Applied state reported by SDK instances.

use std::sync::Arc;

use chrono::{SubsecRound, TimeZone, Utc};

use crate::{AppliedState, Store};

fn state(app: &str, env: &str, instance: &str, revision: i64, secs: i64) -> AppliedState {
    AppliedState {
        app: app.into(),
        env: env.into(),
        instance: instance.into(),
        revision,
        checksum: format!("sha256:{revision:064}"),
        reported_at: Utc
            .timestamp_opt(secs, 123_456_000)
            .single()
            .unwrap()
            .trunc_subsecs(6),
    }
}

/// A report replaces the instance's previous one; lists are per (app, env), by instance.
pub(super) async fn applied_state_per_instance(s: Arc<dyn Store>) {
    assert!(s.applied("billing", "prod").await.unwrap().is_empty());
    s.put_applied(&state("billing", "prod", "web-2", 3, 100))
        .await
        .unwrap();
    s.put_applied(&state("billing", "prod", "web-1", 3, 100))
        .await
        .unwrap();
    s.put_applied(&state("billing", "dev", "web-1", 1, 100))
        .await
        .unwrap();
    // web-1 applies a newer revision: its row is replaced, not added.
    s.put_applied(&state("billing", "prod", "web-1", 7, 200))
        .await
        .unwrap();
    assert_eq!(
        s.applied("billing", "prod").await.unwrap(),
        vec![
            state("billing", "prod", "web-1", 7, 200),
            state("billing", "prod", "web-2", 3, 100)
        ]
    );
    assert_eq!(
        s.applied("billing", "dev").await.unwrap(),
        vec![state("billing", "dev", "web-1", 1, 100)]
    );
    assert!(s.applied("payments", "prod").await.unwrap().is_empty());
    // Telemetry is not a change: no revision is used.
    assert_eq!(s.head().await.unwrap().revision, 0);
    // Pruning forgets instances silent since before the cut, only those.
    let cut = Utc.timestamp_opt(150, 0).single().unwrap();
    assert_eq!(s.prune_applied(cut).await.unwrap(), 2);
    assert_eq!(
        s.applied("billing", "prod").await.unwrap(),
        vec![state("billing", "prod", "web-1", 7, 200)]
    );
    assert!(s.applied("billing", "dev").await.unwrap().is_empty());
    assert_eq!(s.prune_applied(cut).await.unwrap(), 0);
}
