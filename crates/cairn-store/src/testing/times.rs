//! Times the caller sets: stored at microsecond precision (finer digits cut
//! off, never rounded), and times before 1970 compared and filtered as times.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{commit, put, token};
use crate::CreateToken;
use crate::{
    AppliedState, AuditFilter, DeliveryAttempt, DeliveryOutcome, DeliveryStatus, FlagCount,
    Mutation, NewDelivery, NewWebhook, SealedSecret, Store, TokenRecord,
};
use cairn_model::Scope;

/// An RFC 3339 time, written out by hand.
fn t(s: &str) -> DateTime<Utc> {
    s.parse()
        .unwrap_or_else(|e| panic!("bad time {s} in the suite: {e}"))
}

fn tok(id: &str, hash: char, created: &str, expires: Option<&str>) -> TokenRecord {
    TokenRecord {
        created_at: t(created),
        expires_at: expires.map(t),
        ..token(id, &hash.to_string().repeat(64))
    }
}

async fn create_tokens(s: &dyn Store, tokens: &[TokenRecord]) {
    let mutations = tokens
        .iter()
        .map(|token| {
            Mutation::CreateToken(CreateToken {
                token: token.clone(),
                bootstrap: false,
            })
        })
        .collect();
    commit(s, mutations).await.unwrap();
}

/// Every token, by id (`Store::tokens` documents no order).
async fn tokens_by_id(s: &dyn Store) -> Vec<TokenRecord> {
    let mut all = s.tokens().await.unwrap();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

fn applied(instance: &str, reported_at: &str) -> AppliedState {
    AppliedState {
        app: "billing".into(),
        env: "prod".into(),
        instance: instance.into(),
        revision: 1,
        checksum: format!("sha256:{:064}", 1),
        reported_at: t(reported_at),
    }
}

fn count(key: &str, n: i64, last_at: Option<&str>) -> FlagCount {
    FlagCount {
        app: "billing".into(),
        env: "prod".into(),
        key: key.into(),
        variant: "on".into(),
        count: n,
        last_at: last_at.map(t),
    }
}

async fn flag_counts_by_key(s: &dyn Store) -> Vec<FlagCount> {
    let mut all = s.flag_counts().await.unwrap();
    all.sort_by(|a, b| (&a.key, &a.variant).cmp(&(&b.key, &b.variant)));
    all
}

/// Subscribes webhook `id` (deliveries reference one).
async fn webhook(s: &dyn Store, id: &str) {
    let webhook = NewWebhook {
        id: id.into(),
        url: "https://hooks.example.com/cairn".into(),
        events: vec!["config.changed".into()],
        app: None,
        env: None,
        description: String::new(),
        sealed_secret: SealedSecret {
            kek_id: "kek1".into(),
            wrapped_key: vec![1],
            ciphertext: vec![2],
        },
    };
    commit(s, vec![Mutation::CreateWebhook(webhook)])
        .await
        .unwrap();
}

/// Enqueues one delivery per `(id, created_at)`, for audit records after the cursor.
async fn enqueue(s: &dyn Store, webhook_id: &str, deliveries: &[(&str, &str)]) {
    let from = s.webhook_cursor().await.unwrap();
    let new: Vec<NewDelivery> = deliveries
        .iter()
        .zip(1..)
        .map(|(&(id, created_at), n)| NewDelivery {
            id: id.into(),
            webhook_id: webhook_id.into(),
            audit_seq: from + n,
            event: "config.changed".into(),
            payload: "{}".into(),
            created_at: t(created_at),
        })
        .collect();
    let to = from + i64::try_from(new.len()).unwrap();
    assert!(s.enqueue_webhook_deliveries(from, to, &new).await.unwrap());
}

fn attempt(at: &str, status: u16) -> DeliveryAttempt {
    DeliveryAttempt {
        at: t(at),
        status: Some(status),
        error: None,
        duration_ms: 3,
    }
}

/// Caller-set times with nanoseconds read back cut to the microsecond, not
/// rounded: `.123456789` is `.123456`, `.999999999` is `.999999` of the same
/// second, and before 1970 too (`1969-12-31T23:59:59.999999999` is
/// `…59.999999`, not 1970).
pub(super) async fn times_are_truncated_to_microseconds(s: Arc<dyn Store>) {
    // Tokens: created_at and expires_at are the caller's.
    create_tokens(
        &*s,
        &[
            tok(
                "tok_a",
                'a',
                "2026-01-02T03:04:05.123456789Z",
                Some("2026-12-31T23:59:59.999999999Z"),
            ),
            tok(
                "tok_b",
                'b',
                "2026-01-02T03:04:05.000000999Z",
                Some("2026-01-02T03:04:05.000001500Z"),
            ),
            tok(
                "tok_c",
                'c',
                "1969-12-31T23:59:59.999999999Z",
                Some("1969-12-31T23:59:59.000000001Z"),
            ),
        ],
    )
    .await;
    let want = vec![
        tok(
            "tok_a",
            'a',
            "2026-01-02T03:04:05.123456Z",
            Some("2026-12-31T23:59:59.999999Z"),
        ),
        tok(
            "tok_b",
            'b',
            "2026-01-02T03:04:05Z",
            Some("2026-01-02T03:04:05.000001Z"),
        ),
        tok(
            "tok_c",
            'c',
            "1969-12-31T23:59:59.999999Z",
            Some("1969-12-31T23:59:59Z"),
        ),
    ];
    assert_eq!(tokens_by_id(&*s).await, want);
    for w in &want {
        assert_eq!(
            s.token_by_hash(&w.hash).await.unwrap().as_ref(),
            Some(w),
            "{}",
            w.id
        );
    }

    // Flag evaluation counts: last_at.
    s.add_flag_counts(&[
        count("f", 1, Some("2026-01-02T03:04:05.123456789Z")),
        count("g", 1, Some("2026-12-31T23:59:59.999999999Z")),
    ])
    .await
    .unwrap();
    assert_eq!(
        flag_counts_by_key(&*s).await,
        vec![
            count("f", 1, Some("2026-01-02T03:04:05.123456Z")),
            count("g", 1, Some("2026-12-31T23:59:59.999999Z")),
        ]
    );

    // Applied state: reported_at.
    s.put_applied(&applied("web-1", "2026-12-31T23:59:59.999999999Z"))
        .await
        .unwrap();
    s.put_applied(&applied("web-2", "1969-12-31T23:59:59.999999999Z"))
        .await
        .unwrap();
    assert_eq!(
        s.applied("billing", "prod").await.unwrap(),
        vec![
            applied("web-1", "2026-12-31T23:59:59.999999Z"),
            applied("web-2", "1969-12-31T23:59:59.999999Z"),
        ]
    );

    // Webhook deliveries: created_at, the claim's lease, every attempt (its
    // time in the log too, so the log agrees with last_attempt_at).
    webhook(&*s, "wh_1").await;
    enqueue(&*s, "wh_1", &[("dlv_1", "2026-01-02T03:04:05.123456789Z")]).await;
    let claimed = s
        .claim_webhook_deliveries(
            t("2026-01-02T03:04:05.123456789Z"),
            t("2026-01-02T03:04:06.987654321Z"),
            10,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].created_at, t("2026-01-02T03:04:05.123456Z"));
    assert_eq!(
        claimed[0].next_attempt_at,
        Some(t("2026-01-02T03:04:06.987654Z"))
    );
    s.record_webhook_attempt(
        "dlv_1",
        &attempt("2026-01-02T03:04:07.555555555Z", 500),
        &DeliveryOutcome::Retry(t("2026-01-02T03:04:08.777777777Z")),
    )
    .await
    .unwrap();
    let d = &s.webhook_deliveries("wh_1", 10).await.unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at, Some(t("2026-01-02T03:04:08.777777Z")));
    assert_eq!(d.last_attempt_at, Some(t("2026-01-02T03:04:07.555555Z")));
    assert_eq!(
        d.attempt_log,
        vec![attempt("2026-01-02T03:04:07.555555Z", 500)]
    );
    s.record_webhook_attempt(
        "dlv_1",
        &attempt("2026-01-02T03:04:08.999999999Z", 204),
        &DeliveryOutcome::Delivered,
    )
    .await
    .unwrap();
    let d = &s.webhook_deliveries("wh_1", 10).await.unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.created_at, t("2026-01-02T03:04:05.123456Z"));
    assert_eq!(d.last_attempt_at, Some(t("2026-01-02T03:04:08.999999Z")));
    assert_eq!(d.delivered_at, Some(t("2026-01-02T03:04:08.999999Z")));
    assert_eq!(
        d.attempt_log,
        vec![
            attempt("2026-01-02T03:04:07.555555Z", 500),
            attempt("2026-01-02T03:04:08.999999Z", 204),
        ]
    );
}

/// Times before 1970 (negative since the epoch) round-trip exactly and are
/// compared as times: a later time is later whatever its sign or size, in
/// "keep the latest" and in every `before`/`now` cut the store applies.
pub(super) async fn times_before_1970_sort_and_filter(s: Arc<dyn Store>) {
    // Tokens on both sides of the epoch, expiring in 1969 (and before).
    let tokens = vec![
        tok(
            "tok_1600",
            '1',
            "1600-02-29T12:00:00.000001Z",
            Some("1601-01-01T00:00:00Z"),
        ),
        // Before what 32-bit seconds count (1901-12-13T20:45:52Z).
        tok(
            "tok_1901",
            '2',
            "1901-12-13T20:45:51.999999Z",
            Some("1969-01-01T00:00:00.5Z"),
        ),
        tok(
            "tok_moon",
            '3',
            "1969-07-20T20:17:40Z",
            Some("1969-07-21T02:56:15.123456Z"),
        ),
        tok(
            "tok_eve",
            '4',
            "1969-12-31T23:59:59.999999Z",
            Some("1969-12-31T23:59:59.999999Z"),
        ),
        tok("tok_epoch", '5', "1970-01-01T00:00:00Z", None),
        tok(
            "tok_later",
            '6',
            "1970-01-01T00:00:00.000001Z",
            Some("1969-12-31T00:00:00Z"),
        ),
        tok(
            "tok_now",
            '7',
            "2026-01-02T03:04:05.123456Z",
            Some("1969-06-30T23:59:59.999999Z"),
        ),
    ];
    create_tokens(&*s, &tokens).await;
    // `Store::tokens` documents no order: compared as a set.
    let mut want = tokens.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(tokens_by_id(&*s).await, want);
    for w in &tokens {
        assert_eq!(
            s.token_by_hash(&w.hash).await.unwrap().as_ref(),
            Some(w),
            "{}",
            w.id
        );
    }
    assert_eq!(
        s.token_by_hash(&"3".repeat(64))
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(t("1969-07-21T02:56:15.123456Z")),
        "a 1969 expiry reads back exactly"
    );

    // Flag counts keep the later last_at, on either side of 1970.
    s.add_flag_counts(&[
        count("f", 1, Some("1969-12-31T23:59:59Z")),
        count("g", 1, Some("1960-01-01T00:00:00Z")),
        count("h", 1, Some("1960-01-01T00:00:00Z")),
        count("i", 1, Some("1970-01-01T00:00:00Z")),
    ])
    .await
    .unwrap();
    s.add_flag_counts(&[
        count("f", 1, Some("1969-07-20T20:17:40Z")),
        count("g", 1, Some("1969-12-31T23:59:59.999999Z")),
        count("h", 1, Some("1950-01-01T00:00:00Z")),
        count("i", 1, Some("1969-12-31T23:59:59.999999Z")),
    ])
    .await
    .unwrap();
    assert_eq!(
        flag_counts_by_key(&*s).await,
        vec![
            count("f", 2, Some("1969-12-31T23:59:59Z")),
            count("g", 2, Some("1969-12-31T23:59:59.999999Z")),
            count("h", 2, Some("1960-01-01T00:00:00Z")),
            count("i", 2, Some("1970-01-01T00:00:00Z")),
        ]
    );
    s.add_flag_counts(&[
        count("f", 1, Some("1970-01-01T00:00:00.000001Z")),
        count("h", 1, None),
    ])
    .await
    .unwrap();
    let all = flag_counts_by_key(&*s).await;
    assert_eq!(all[0], count("f", 3, Some("1970-01-01T00:00:00.000001Z")));
    assert_eq!(all[2], count("h", 3, Some("1960-01-01T00:00:00Z")));

    // Applied state: pruning cuts at `before` (exclusive) across 1970.
    for (instance, at) in [
        ("i1960", "1960-01-01T00:00:00Z"),
        ("i1969", "1969-12-31T23:59:59.999999Z"),
        ("i1970", "1970-01-01T00:00:00Z"),
        ("i2026", "2026-01-02T03:04:05Z"),
    ] {
        s.put_applied(&applied(instance, at)).await.unwrap();
    }
    assert_eq!(s.prune_applied(t("1950-01-01T00:00:00Z")).await.unwrap(), 0);
    assert_eq!(s.prune_applied(t("1960-01-01T00:00:00Z")).await.unwrap(), 0);
    assert_eq!(
        s.prune_applied(t("1960-01-01T00:00:00.000001Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.applied("billing", "prod").await.unwrap(),
        vec![
            applied("i1969", "1969-12-31T23:59:59.999999Z"),
            applied("i1970", "1970-01-01T00:00:00Z"),
            applied("i2026", "2026-01-02T03:04:05Z"),
        ]
    );
    assert_eq!(s.prune_applied(t("1970-01-01T00:00:00Z")).await.unwrap(), 1);
    assert_eq!(
        s.applied("billing", "prod").await.unwrap(),
        vec![
            applied("i1970", "1970-01-01T00:00:00Z"),
            applied("i2026", "2026-01-02T03:04:05Z"),
        ]
    );

    // Webhook deliveries due before 1970: claims take what is due at `now`,
    // pruning cuts at `before`.
    webhook(&*s, "wh_1").await;
    enqueue(
        &*s,
        "wh_1",
        &[
            ("dlv_1969", "1969-12-31T23:59:59.999999Z"),
            ("dlv_1900", "1900-01-01T00:00:00Z"),
        ],
    )
    .await;
    let far = t("2100-01-01T00:00:00Z");
    let ids = |claimed: Vec<crate::DeliveryRecord>| {
        claimed.into_iter().map(|d| d.id).collect::<Vec<String>>()
    };
    assert_eq!(
        ids(s
            .claim_webhook_deliveries(t("1899-12-31T23:59:59.999999Z"), far, 10)
            .await
            .unwrap()),
        Vec::<String>::new(),
        "nothing is due before 1900"
    );
    assert_eq!(
        ids(s
            .claim_webhook_deliveries(t("1969-12-31T23:59:59.999998Z"), far, 10)
            .await
            .unwrap()),
        vec!["dlv_1900"]
    );
    let claimed = s
        .claim_webhook_deliveries(t("1970-01-01T00:00:00Z"), far, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].id, "dlv_1969");
    assert_eq!(claimed[0].created_at, t("1969-12-31T23:59:59.999999Z"));
    s.record_webhook_attempt(
        "dlv_1900",
        &attempt("1900-01-01T00:00:01Z", 410),
        &DeliveryOutcome::Failed,
    )
    .await
    .unwrap();
    let d = s.webhook_deliveries("wh_1", 10).await.unwrap();
    let d1900 = d.iter().find(|d| d.id == "dlv_1900").unwrap();
    assert_eq!(d1900.status, DeliveryStatus::Failed);
    assert_eq!(d1900.created_at, t("1900-01-01T00:00:00Z"));
    assert_eq!(d1900.last_attempt_at, Some(t("1900-01-01T00:00:01Z")));
    assert_eq!(
        s.prune_webhook_deliveries(t("1900-01-01T00:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.prune_webhook_deliveries(t("1969-12-31T23:59:59Z"))
            .await
            .unwrap(),
        1,
        "the failed 1900 delivery"
    );
    let left = s.webhook_deliveries("wh_1", 10).await.unwrap();
    assert_eq!(ids(left), vec!["dlv_1969"]);

    // Audit records are timed by the store's clock (now), so none can be
    // placed before 1970; bounds before 1970 still cut on the right side.
    commit(&*s, vec![put(&Scope::global(), "k", serde_json::json!(1))])
        .await
        .unwrap();
    let n = s.audit(&AuditFilter::default()).await.unwrap().len();
    assert!(n > 0);
    let count_between = |since: Option<&str>, until: Option<&str>| {
        let s = s.clone();
        let filter = AuditFilter {
            since: since.map(t),
            until: until.map(t),
            ..AuditFilter::default()
        };
        async move { s.audit(&filter).await.unwrap().len() }
    };
    assert_eq!(
        count_between(Some("1969-12-31T23:59:59.999999Z"), None).await,
        n
    );
    assert_eq!(count_between(Some("1600-01-01T00:00:00Z"), None).await, n);
    assert_eq!(
        count_between(None, Some("1969-12-31T23:59:59.999999Z")).await,
        0
    );
    assert_eq!(
        count_between(Some("1600-01-01T00:00:00Z"), Some("1970-01-01T00:00:00Z")).await,
        0
    );
    assert_eq!(
        count_between(Some("1969-01-01T00:00:00Z"), Some("2100-01-01T00:00:00Z")).await,
        n
    );
}
