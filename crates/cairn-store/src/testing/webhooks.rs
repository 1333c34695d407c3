//! Webhook subscriptions and the delivery queue.

use std::sync::Arc;

use chrono::{Duration, SubsecRound, Utc};

use super::{ctx, put};
use crate::{
    AuditFilter, Commit, DeliveryAttempt, DeliveryOutcome, DeliveryStatus, Mutation, NewDelivery,
    NewWebhook, SealedSecret, Store, StoreError,
};
use crate::{DeleteWebhook, RewrapWebhook};
use cairn_model::Scope;

fn hook(id: &str) -> NewWebhook {
    NewWebhook {
        id: id.into(),
        url: "https://hooks.example.com/cairn/t0ken?x=1".into(),
        events: vec!["config.changed".into(), "flag.changed".into()],
        app: Some("billing".into()),
        env: None,
        description: "ci".into(),
        sealed_secret: SealedSecret {
            kek_id: "kek1".into(),
            wrapped_key: vec![1, 2, 3, 0, 255],
            ciphertext: vec![9, 8, 7],
        },
    }
}

fn commit(m: Mutation) -> Commit {
    Commit {
        context: ctx("token:tok_test (admin)", "webhooks"),
        mutations: vec![(None, m)],
        seal: None,
        sink: None,
        guard: None,
    }
}

fn delivery(id: &str, webhook: &str, seq: i64) -> NewDelivery {
    NewDelivery {
        id: id.into(),
        webhook_id: webhook.into(),
        audit_seq: seq,
        event: "config.changed".into(),
        payload: format!("{{\"seq\":{seq}}}"),
        created_at: Utc::now().trunc_subsecs(6) - Duration::seconds(5),
    }
}

fn attempt(status: Option<u16>, error: Option<&str>) -> DeliveryAttempt {
    DeliveryAttempt {
        at: Utc::now().trunc_subsecs(6),
        status,
        error: error.map(str::to_owned),
        duration_ms: 12,
    }
}

/// Subscriptions are created and deleted by commits with their audit record;
/// the cursor moves only by compare-and-set; claims lease rows; attempts are
/// logged; deleting a subscription cancels its pending deliveries.
pub(super) async fn webhooks_subscriptions_and_delivery_queue(s: Arc<dyn Store>) {
    s.commit(commit(put(&Scope::global(), "a", serde_json::json!(1))))
        .await
        .unwrap();
    assert!(s.webhooks().await.unwrap().is_empty());
    s.commit(commit(Mutation::CreateWebhook(hook("wh_1"))))
        .await
        .unwrap();
    let audit = s.audit(&AuditFilter::default()).await.unwrap();
    let created = audit.last().unwrap();
    assert_eq!(created.action, "webhook.create");
    assert_eq!(created.key.as_deref(), Some("wh_1"));
    assert_eq!(created.app.as_deref(), Some("billing"));
    // The audit record names the target's origin only, never its path or query.
    assert_eq!(created.detail["target"], "https://hooks.example.com");
    assert!(!created.detail.to_string().contains("t0ken"));

    let hooks = s.webhooks().await.unwrap();
    assert_eq!(hooks.len(), 1);
    let w = &hooks[0];
    assert_eq!(w.url, hook("wh_1").url);
    assert_eq!(w.events, hook("wh_1").events);
    assert_eq!(
        (w.app.as_deref(), w.env.as_deref()),
        (Some("billing"), None)
    );
    assert_eq!(w.sealed_secret, hook("wh_1").sealed_secret);
    assert_eq!(w.created_seq, created.seq);
    assert!(w.deleted_at.is_none() && w.deleted_seq.is_none());
    assert!(!w.live_at(created.seq) && w.live_at(created.seq + 1));
    assert_eq!(s.webhook("wh_1").await.unwrap().as_ref(), Some(w));
    assert_eq!(s.webhook("wh_nope").await.unwrap(), None);

    // Rekey: only the wrapped data key and its KEK id change.
    s.commit(commit(Mutation::RewrapWebhook(RewrapWebhook {
        id: "wh_1".into(),
        kek_id: "kek2".into(),
        wrapped_key: vec![4, 5, 6],
    })))
    .await
    .unwrap();
    let rewrapped = s.webhook("wh_1").await.unwrap().unwrap();
    assert_eq!(
        rewrapped.sealed_secret,
        SealedSecret {
            kek_id: "kek2".into(),
            wrapped_key: vec![4, 5, 6],
            ciphertext: vec![9, 8, 7],
        }
    );
    assert_eq!(rewrapped.created_seq, w.created_seq);
    let audit = s.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.last().unwrap().action, "webhook.rewrap");
    assert_eq!(audit.last().unwrap().detail["from_kek_id"], "kek1");
    assert!(matches!(
        s.commit(commit(Mutation::RewrapWebhook(RewrapWebhook {
            id: "wh_nope".into(),
            kek_id: "k".into(),
            wrapped_key: vec![],
        })))
        .await,
        Err(StoreError::NotFound { .. })
    ));

    // A taken id: AlreadyExists, nothing written (not even audit).
    let before = s.audit(&AuditFilter::default()).await.unwrap().len();
    match s
        .commit(commit(Mutation::CreateWebhook(hook("wh_1"))))
        .await
    {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        s.audit(&AuditFilter::default()).await.unwrap().len(),
        before
    );

    // The cursor moves by compare-and-set only.
    let c0 = s.webhook_cursor().await.unwrap();
    assert!(s
        .enqueue_webhook_deliveries(c0, c0 + 2, &[delivery("dlv_1", "wh_1", c0 + 2)])
        .await
        .unwrap());
    assert_eq!(s.webhook_cursor().await.unwrap(), c0 + 2);
    assert!(!s
        .enqueue_webhook_deliveries(c0, c0 + 3, &[delivery("dlv_x", "wh_1", c0 + 3)])
        .await
        .unwrap());
    assert_eq!(s.webhook_cursor().await.unwrap(), c0 + 2);
    // The same (webhook, audit record) twice: skipped, not an error.
    assert!(s
        .enqueue_webhook_deliveries(c0 + 2, c0 + 3, &[delivery("dlv_dup", "wh_1", c0 + 2)])
        .await
        .unwrap());
    let log = s.webhook_deliveries("wh_1", 100).await.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].id, "dlv_1");
    assert_eq!(log[0].status, DeliveryStatus::Pending);
    assert_eq!(log[0].payload, format!("{{\"seq\":{}}}", c0 + 2));
    assert_eq!(log[0].attempts, 0);

    // Claims lease rows: a second claim before the lease ends gets nothing.
    let now = Utc::now().trunc_subsecs(6);
    let lease = now + Duration::seconds(30);
    let claimed = s.claim_webhook_deliveries(now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, "dlv_1");
    assert!(s
        .claim_webhook_deliveries(now, lease, 10)
        .await
        .unwrap()
        .is_empty());
    // A worker that died: due again once the lease is over.
    let again = s
        .claim_webhook_deliveries(
            lease + Duration::seconds(1),
            lease + Duration::seconds(60),
            10,
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);

    // Attempts: a failure to retry, then a success.
    let first = attempt(Some(500), Some("HTTP 500"));
    let retry_at = now + Duration::seconds(2);
    s.record_webhook_attempt("dlv_1", &first, &DeliveryOutcome::Retry(retry_at))
        .await
        .unwrap();
    let d = &s.webhook_deliveries("wh_1", 10).await.unwrap()[0];
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Pending, 1, Some(retry_at))
    );
    assert_eq!(d.attempt_log, vec![first.clone()]);
    assert_eq!(d.last_attempt_at, Some(first.at));
    let second = attempt(Some(204), None);
    s.record_webhook_attempt("dlv_1", &second, &DeliveryOutcome::Delivered)
        .await
        .unwrap();
    let d = &s.webhook_deliveries("wh_1", 10).await.unwrap()[0];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Delivered, 2));
    assert_eq!(d.attempt_log, vec![first, second.clone()]);
    assert_eq!(d.delivered_at, Some(second.at));
    assert_eq!(d.next_attempt_at, None);
    let far = now + Duration::days(1);
    assert!(s
        .claim_webhook_deliveries(far, far, 10)
        .await
        .unwrap()
        .is_empty());
    // A finished delivery is left as is.
    s.record_webhook_attempt(
        "dlv_1",
        &attempt(None, Some("late")),
        &DeliveryOutcome::Failed,
    )
    .await
    .unwrap();
    assert_eq!(
        s.webhook_deliveries("wh_1", 10).await.unwrap()[0].status,
        DeliveryStatus::Delivered
    );
    assert!(matches!(
        s.record_webhook_attempt("dlv_nope", &attempt(None, None), &DeliveryOutcome::Failed)
            .await,
        Err(StoreError::NotFound { .. })
    ));

    // Deleting cancels pending deliveries and keeps the log.
    let c = s.webhook_cursor().await.unwrap();
    assert!(s
        .enqueue_webhook_deliveries(c, c + 1, &[delivery("dlv_2", "wh_1", c + 1)])
        .await
        .unwrap());
    s.commit(commit(Mutation::DeleteWebhook(DeleteWebhook {
        id: "wh_1".into(),
    })))
    .await
    .unwrap();
    let deleted = s.audit(&AuditFilter::default()).await.unwrap();
    let deleted = deleted.last().unwrap();
    assert_eq!(deleted.action, "webhook.delete");
    let w = s.webhook("wh_1").await.unwrap().unwrap();
    assert_eq!(w.deleted_seq, Some(deleted.seq));
    assert!(w.deleted_at.is_some());
    assert!(!w.live_at(deleted.seq) && !w.live_at(deleted.seq + 1));
    let log = s.webhook_deliveries("wh_1", 10).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|d| (d.id.as_str(), d.status))
            .collect::<Vec<_>>(),
        vec![
            ("dlv_2", DeliveryStatus::Cancelled),
            ("dlv_1", DeliveryStatus::Delivered)
        ]
    );
    assert_eq!(s.webhook_deliveries("wh_1", 1).await.unwrap().len(), 1);
    assert!(s
        .claim_webhook_deliveries(far, far, 10)
        .await
        .unwrap()
        .is_empty());
    match s
        .commit(commit(Mutation::DeleteWebhook(DeleteWebhook {
            id: "wh_1".into(),
        })))
        .await
    {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Pruning removes finished deliveries older than the limit, never pending ones.
    let c = s.webhook_cursor().await.unwrap();
    assert!(s
        .enqueue_webhook_deliveries(c, c + 1, &[delivery("dlv_3", "wh_1", c + 1)])
        .await
        .unwrap());
    let old = Utc::now() - Duration::seconds(60);
    assert_eq!(s.prune_webhook_deliveries(old).await.unwrap(), 0);
    let pruned = s
        .prune_webhook_deliveries(Utc::now() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(pruned, 2, "dlv_1 (delivered) and dlv_2 (cancelled)");
    let left = s.webhook_deliveries("wh_1", 10).await.unwrap();
    assert_eq!(
        left.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec!["dlv_3"]
    );

    // Still listed (deleted subscriptions stay for the dispatcher and the log).
    assert_eq!(s.webhooks().await.unwrap().len(), 1);

    // An odd URL form is never guessed at: cut strictly, or a placeholder.
    for (id, url, shown) in [
        (
            "wh_bs",
            "https://hooks.example.com\\t0ken",
            "https://hooks.example.com",
        ),
        (
            "wh_odd",
            "https:hooks.example.com/t0ken?next=https://x",
            "<redacted>",
        ),
    ] {
        let webhook = NewWebhook {
            url: url.into(),
            ..hook(id)
        };
        s.commit(commit(Mutation::CreateWebhook(webhook)))
            .await
            .unwrap();
        let audit = s.audit(&AuditFilter::default()).await.unwrap();
        let created = audit.last().unwrap();
        assert_eq!(created.detail["target"], shown, "{url}");
        assert!(!created.detail.to_string().contains("t0ken"), "{url}");
    }
}
