//! The exhaustive canary search: a secret with a canary value, referenced
//! from configuration; every route of the access matrix requested as every
//! kind of principal, plus the plaintext paths (reveal, `?secrets=true`) as
//! every principal; then every response (status line, headers, body), the
//! stored audit records, the metrics and the raw database files (main, WAL,
//! shared memory) are searched for the canary's bytes. Only an admin's
//! reveal and an admin's or the view's SDK token's `?secrets=true` may
//! carry it.

use axum::http::{Method, StatusCode};
use cairn_server::access::MATRIX;
use serde_json::json;

use crate::access_matrix::{fixture, request};

const SECRET: &str = "SECRET-CANARY-e41c9a77";

fn has(bytes: &[u8]) -> bool {
    bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
}

#[tokio::test]
async fn no_route_gives_a_secret_value_to_anyone_it_should_not() {
    let (t, who) = fixture().await;
    let r = t
        .call(
            Method::POST,
            "/v1/secrets",
            Some(
                json!({"name": "walk/canary", "app": "billing", "env": "staging",
                "value": SECRET, "rotation_days": 30, "grace_days": 7, "message": "canary"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Rotated by hand once: the canary is now the previous version, in grace.
    let r = t
        .call(
            Method::POST,
            "/v1/secret-rotate/walk/canary?app=billing&env=staging",
            Some(json!({"value": format!("{SECRET}-v2"), "message": "rotate"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.set(
        "dsn",
        "app=billing&env=staging",
        json!({"password": {"$secret": "walk/canary"}}),
    )
    .await;

    // The plaintext paths, as every principal, besides the whole matrix.
    let plaintext_paths = [
        "/v1/secrets/walk/canary?app=billing&env=staging&reveal=true",
        "/v1/secrets/walk/canary?app=billing&env=staging&reveal=true&version=1",
        "/v1/apps/billing/envs/staging/config?secrets=true",
    ];
    let mut searched = 0;
    let mut allowed_hits = 0;
    let mut hits = Vec::new();
    let mut search = |label: &str, uri: &str, resp: &crate::harness::Resp| {
        let found = has(&resp.raw)
            || resp
                .headers
                .iter()
                .any(|(n, v)| has(n.as_str().as_bytes()) || has(v.as_bytes()));
        let may = match label {
            "admin" => uri.contains("reveal=true") || uri.contains("secrets=true"),
            "sdk" => uri.contains("secrets=true"),
            _ => false,
        };
        if may {
            allowed_hits += usize::from(found);
        } else {
            searched += 1;
            if found {
                hits.push(format!("{} {uri} as {label}", resp.status));
            }
        }
    };
    for (method, path, _) in MATRIX {
        for w in &who {
            let (uri, body, _) = request(&t, method, path).await;
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let body = body.map(|b| axum::body::Body::from(serde_json::to_vec(&b).unwrap()));
            let r = t.raw(m, &uri, w.token.as_deref(), body, &[]).await;
            search(w.label, &uri, &r);
        }
    }
    for uri in plaintext_paths {
        for w in &who {
            let r = t.raw(Method::GET, uri, w.token.as_deref(), None, &[]).await;
            search(w.label, uri, &r);
        }
    }
    // The allowed reads did return plaintext: admin reveal (current and
    // previous version), admin and SDK `?secrets=true`.
    assert!(
        allowed_hits >= 3,
        "{allowed_hits} allowed reads carried the value"
    );

    // Stored audit records (every secret.read among them), the metrics, the files.
    let audit = t
        .svc
        .store()
        .audit(&cairn_store::AuditFilter::default())
        .await
        .unwrap();
    assert!(audit.iter().any(|r| r.action == "secret.read"));
    let mut places = vec![
        (
            "audit records".to_owned(),
            serde_json::to_vec(&audit).unwrap(),
        ),
        ("metrics".to_owned(), t.svc.render_metrics().into_bytes()),
    ];
    for suffix in ["", "-wal", "-shm"] {
        let mut path = t.db_path().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            places.push((format!("cairn.db{suffix}"), bytes));
        }
    }
    assert!(places.len() >= 4, "the database and its WAL exist");
    for (what, bytes) in &places {
        searched += 1;
        if has(bytes) {
            hits.push(what.clone());
        }
    }
    assert!(hits.is_empty(), "the canary leaked to: {hits:#?}");
    let cells = (MATRIX.len() + plaintext_paths.len()) * who.len();
    assert!(
        searched + allowed_hits >= cells,
        "searched {searched} places"
    );
}
