//! The OpenFeature provider: values, variants, reasons and error codes as
//! OpenFeature expects, through the provider and through the OpenFeature API.

use std::time::Duration;

use cairn_client::openfeature::CairnProvider;
use cairn_client::sdk::CairnClient;
use cairn_client::HttpMethod;
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature};
use serde_json::json;

use crate::harness::{any_port, wait_connected, wait_for, Admin, Data, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_returns_value_variant_and_reason() {
    let data = Data::new();
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    admin.app("shop").await;
    let flags = json!({
        "new-ui": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on"]},
            "metadata": {"owner": "team-web", "rank": 3}},
        "color": {"state": "ENABLED", "variants": {"r": "red", "g": "green"}, "defaultVariant": "g"},
        "limit": {"state": "ENABLED", "variants": {"low": 10, "high": 1000}, "defaultVariant": "low",
            "targeting": {"fractional": [["low", 50], ["high", 50]]}},
        "ratio": {"state": "ENABLED", "variants": {"a": 0.25, "b": 0.75}, "defaultVariant": "b"},
        "layout": {"state": "ENABLED", "variants": {"v1": {"cols": 2, "dense": true}}, "defaultVariant": "v1"},
        "retired": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
        "no-default": {"state": "ENABLED", "variants": {"on": true, "off": false},
            "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", null]}}
    });
    let entries: Vec<_> = flags
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| json!({"app": "shop", "key": k, "kind": "flag", "value": v}))
        .collect();
    admin
        .send(HttpMethod::POST, "/v1/changes", json!({"entries": entries}))
        .await;
    let token = admin.sdk_token("shop", "prod").await;
    let sdk = CairnClient::builder(&server.url(), "shop", "prod")
        .token(token)
        .report_interval(Duration::ZERO)
        .initial_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let p = CairnProvider::new(sdk.clone());
    wait_connected(&sdk).await;
    assert_eq!(p.status(), ProviderStatus::Ready);
    assert_eq!(p.metadata().name, "cairn");
    let ann = EvaluationContext::default()
        .with_targeting_key("u1")
        .with_custom_field("email", "ann@example.com");
    let bob = EvaluationContext::default()
        .with_targeting_key("u2")
        .with_custom_field("email", "bob@other.org");

    let r = p.resolve_bool_value("new-ui", &ann).await.unwrap();
    assert_eq!(
        (r.value, r.variant.as_deref(), r.reason),
        (true, Some("on"), Some(EvaluationReason::TargetingMatch))
    );
    let meta = r.flag_metadata.unwrap();
    assert_eq!(
        meta.values["owner"],
        open_feature::FlagMetadataValue::String("team-web".into())
    );
    assert_eq!(meta.values["rank"], open_feature::FlagMetadataValue::Int(3));
    // Nothing invented: only the flag's own metadata.
    assert!(!meta.values.contains_key("flagSetId"), "{meta:?}");
    let r = p.resolve_bool_value("new-ui", &bob).await.unwrap();
    assert_eq!(
        (r.value, r.variant.as_deref(), r.reason),
        (false, Some("off"), Some(EvaluationReason::Default))
    );

    let r = p.resolve_string_value("color", &bob).await.unwrap();
    assert_eq!(
        (r.value.as_str(), r.variant.as_deref(), r.reason),
        ("green", Some("g"), Some(EvaluationReason::Static))
    );
    // Fractional: the same variant as local SDK evaluation, which equals the server's.
    let r = p.resolve_int_value("limit", &ann).await.unwrap();
    let local = sdk.evaluate_int("limit", &cairn_client::openfeature::context(&ann), -1);
    assert_eq!((r.value, r.variant), (local.value, local.variant));
    assert_eq!(r.reason, Some(EvaluationReason::TargetingMatch));
    let r = p.resolve_float_value("ratio", &ann).await.unwrap();
    assert_eq!(r.value, 0.75);
    let r = p.resolve_struct_value("layout", &ann).await.unwrap();
    assert_eq!(r.value.fields["cols"], open_feature::Value::Int(2));
    assert_eq!(r.value.fields["dense"], open_feature::Value::Bool(true));
    // Disabled: no value, so the caller's default applies (DESIGN.md §4).
    let e = p.resolve_bool_value("retired", &ann).await.unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::General("DISABLED".into()));

    // Errors: the codes OpenFeature defines.
    let e = p.resolve_bool_value("nope", &ann).await.unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::FlagNotFound);
    let e = p.resolve_bool_value("color", &ann).await.unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = p.resolve_int_value("ratio", &ann).await.unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = p.resolve_struct_value("new-ui", &ann).await.unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    // No value (no default variant, rule returned null): the caller's default applies.
    let e = p.resolve_bool_value("no-default", &ann).await.unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::General("DEFAULT".into()));
    let pro = EvaluationContext::default().with_custom_field("plan", "pro");
    let r = p.resolve_bool_value("no-default", &pro).await.unwrap();
    assert_eq!((r.value, r.variant.as_deref()), (true, Some("on")));

    // Through the OpenFeature API, as an application uses it.
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(p).await;
    let client = api.create_client();
    drop(api);
    assert!(client
        .get_bool_value("new-ui", Some(&ann), None)
        .await
        .unwrap());
    let d = client
        .get_string_details("color", Some(&bob), None)
        .await
        .unwrap();
    assert_eq!(
        (d.value.as_str(), d.variant.as_deref()),
        ("green", Some("g"))
    );
    assert!(!client
        .get_bool_value("no-default", Some(&ann), None)
        .await
        .unwrap_or(false));
    assert!(client
        .get_bool_value("no-default", Some(&ann), None)
        .await
        .unwrap_or(true));
    // A flag change reaches the provider through the SDK's watch.
    admin
        .put("shop", None, "color", "flag", json!({"state": "ENABLED", "variants": {"r": "red", "g": "green"}, "defaultVariant": "r"}))
        .await;
    wait_for(&sdk, 10, "color defaulting to r", |s| {
        s.flags().evaluate("color", &Default::default(), 0).variant == Some("r")
    })
    .await;
    assert_eq!(
        client
            .get_string_value("color", Some(&bob), None)
            .await
            .unwrap(),
        "red"
    );
}
