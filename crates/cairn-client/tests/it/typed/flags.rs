//! Flag reads, typed: the flagd document, the list, staleness, lint, and
//! OFREP single and bulk evaluation.

use std::borrow::Cow;

use cairn_client::cairn_api::{
    FlagsQuery, OfrepFailure, OfrepItem, OfrepRequest, OfrepSuccess, SetEntryBody, StaleQuery,
};
use cairn_client::At;
use cairn_model::{EntryKind, MergeMode};
use serde_json::{json, Value};

use super::{code, field};
use crate::harness::{any_port, Admin, Data, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_flag_reads_round_trip() {
    let data = Data::new();
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    let c = &admin.0;
    admin.app("shop").await;
    let prod = At {
        app: Some("shop"),
        env: Some("prod"),
    };
    let flag = |value| SetEntryBody {
        value,
        kind: EntryKind::Flag,
        merge: MergeMode::Replace,
        message: String::new(),
        expected_version: None,
        apply_at: None,
    };
    let banner = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
        "defaultVariant": "off", "metadata": {"owner": "growth"},
        "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}});
    let dark = json!({"state": "DISABLED", "variants": {"a": 1}, "defaultVariant": "a"});
    // `gld` names no variant: stored with a warning, an error when chosen.
    let typo = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "gld", "off"]}});
    for (key, def) in [("banner", &banner), ("dark", &dark), ("typo", &typo)] {
        c.put_entry(prod, key, &flag(def.clone())).await.unwrap();
    }

    // The flagd document holds the three definitions as written.
    let doc = c.flagd_document("shop", "prod").await.unwrap();
    assert_eq!(
        doc["flags"],
        json!({"banner": banner, "dark": dark, "typo": typo})
    );
    let err = c.flagd_document("shop", "nowhere").await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // The flag list, before any evaluation.
    let both = FlagsQuery {
        app: Some("shop".into()),
        env: Some("prod".into()),
    };
    let listed = c.flags(&both).await.unwrap();
    let rows: Vec<(&Value, &Value, &Value, &Value, &Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                &f["key"],
                &f["state"],
                &f["version"],
                &f["scope"],
                &f["evaluations"],
            )
        })
        .collect();
    let at = json!({"app": "shop", "env": "prod"});
    let (one, zero) = (json!(1), json!(0));
    assert_eq!(
        rows,
        [
            (&json!("banner"), &json!("ENABLED"), &one, &at, &zero),
            (&json!("dark"), &json!("DISABLED"), &one, &at, &zero),
            (&json!("typo"), &json!("ENABLED"), &one, &at, &zero)
        ]
    );
    assert_eq!(listed[0]["owner"], "growth");

    // Staleness: every flag is older than 0 days, none older than 1; 36501 is too many.
    let stale = |days| StaleQuery {
        app: Some("shop".into()),
        env: Some("prod".into()),
        days: Some(days),
    };
    let keys = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        keys(&c.stale_flags(&stale(0)).await.unwrap()),
        ["banner", "dark", "typo"]
    );
    assert_eq!(c.stale_flags(&stale(1)).await.unwrap(), json!([]));
    let err = c.stale_flags(&stale(36_501)).await.unwrap_err();
    assert_eq!((err.status(), field(&err)), (Some(400), Some("days")));

    // The lint of (shop, prod): the typo's warning, no flag that fails to compile.
    let lint = c.lint_flags(&both).await.unwrap();
    assert_eq!(
        lint,
        json!([{"app": "shop", "env": "prod", "errors": [], "warnings": [{
            "entry": "shop/prod:typo", "scope": {"app": "shop", "env": "prod"}, "key": "typo",
            "pointer": "/targeting/if/1", "code": "unknown-variant",
            "message": "targeting can return `gld`, which is not a variant of this flag"}]}])
    );

    // OFREP, one flag: a match, the default, a disabled flag, an unknown one.
    let gold = OfrepRequest {
        context: Some(json!({"tier": "gold"})),
    };
    let success = |key: &'static str,
                   value: Option<Value>,
                   reason: &'static str,
                   variant: Option<&'static str>,
                   metadata: Value| OfrepSuccess {
        key: Cow::Borrowed(key),
        value: value.map(Cow::Owned),
        reason: Cow::Borrowed(reason),
        variant: variant.map(Cow::Borrowed),
        metadata: match metadata {
            Value::Object(m) => Cow::Owned(m),
            other => panic!("metadata must be an object, not {other}"),
        },
    };
    let owner = json!({"owner": "growth"});
    let got = c
        .evaluate_flag("shop", "prod", "banner", &gold)
        .await
        .unwrap();
    assert_eq!(
        got,
        success(
            "banner",
            Some(json!(true)),
            "TARGETING_MATCH",
            Some("on"),
            owner.clone()
        )
    );
    let got = c
        .evaluate_flag("shop", "prod", "banner", &OfrepRequest::default())
        .await
        .unwrap();
    assert_eq!(
        got,
        success(
            "banner",
            Some(json!(false)),
            "TARGETING_MATCH",
            Some("off"),
            owner.clone()
        )
    );
    let got = c
        .evaluate_flag("shop", "prod", "dark", &gold)
        .await
        .unwrap();
    assert_eq!(got, success("dark", None, "DISABLED", None, json!({})));
    let err = c
        .evaluate_flag("shop", "prod", "nope", &gold)
        .await
        .unwrap_err();
    assert_eq!((err.status(), code(&err)), (Some(404), "FLAG_NOT_FOUND"));
    let err = c
        .evaluate_flag("shop", "prod", "typo", &gold)
        .await
        .unwrap_err();
    assert_eq!((err.status(), code(&err)), (Some(400), "GENERAL"));

    // OFREP, every flag at once: successes and the failure, in key order.
    let bulk = c.evaluate_flags("shop", "prod", &gold).await.unwrap();
    assert_eq!(
        bulk.flags,
        [
            OfrepItem::Success(success(
                "banner",
                Some(json!(true)),
                "TARGETING_MATCH",
                Some("on"),
                owner
            )),
            OfrepItem::Success(success("dark", None, "DISABLED", None, json!({}))),
            OfrepItem::Failure(OfrepFailure {
                key: Some(Cow::Borrowed("typo")),
                error_code: Cow::Borrowed("GENERAL"),
                error_details: Cow::Borrowed(
                    "targeting returned `gld`, which is not a variant of this flag"
                ),
            }),
        ]
    );
    // Evaluations were counted: banner three times (two single, one bulk).
    let listed = c.flags(&both).await.unwrap();
    assert_eq!(listed[0]["evaluations"], 3, "{listed}");
    server.stop();
}
