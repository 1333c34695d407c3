//! Webhooks, typed: a subscription, the real dispatcher's delivery to a
//! receiver on 127.0.0.1, the delivery log, unsubscribing.

use std::time::{Duration, Instant};

use cairn_client::cairn_api::{
    AuditQuery, CreateAppBody, DeliveriesQuery, DeliveryStatus, WebhookDeleted,
};
use cairn_core::webhooks::WebhookSettings;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{any_port, Admin, Data, TestServer};

/// A webhook receiver on 127.0.0.1 answering every request `204 No Content`.
async fn receiver() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The head, then as many body bytes as it announces.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let _ = sock
                            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_webhook_calls_round_trip_with_a_real_delivery() {
    let mut data = Data::new();
    data.opts.allow_private_targets = true;
    data.webhooks = Some(WebhookSettings {
        poll: Duration::from_millis(50),
        ..WebhookSettings::default()
    });
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    let c = &admin.0;
    let (url, receiving) = receiver().await;

    let created = c
        .create_webhook(&json!({
            "url": url, "events": ["app.created"], "secret": "whsec-0123456789-abcdef",
            "description": "typed",
        }))
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{created}");
    for (k, want) in [
        ("url", json!(url)),
        ("events", json!(["app.created"])),
        ("app", Value::Null),
        ("env", Value::Null),
        ("description", json!("typed")),
    ] {
        assert_eq!(created[k], want, "{k} of {created}");
    }
    assert!(created.get("secret").is_none(), "{created}");
    assert!(created.get("deleted_at").is_none(), "{created}");
    assert_eq!(c.webhooks().await.unwrap(), json!([created.clone()]));
    assert_eq!(c.webhook(&id).await.unwrap(), created);

    // An event it subscribes to: the dispatcher delivers it once.
    let app = c
        .create_app(&CreateAppBody {
            name: "shop".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    let recorded = c
        .audit(&AuditQuery {
            action: Some("app.create".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(recorded.records.len(), 1);
    assert_eq!(recorded.records[0].revision, Some(app.revision));
    let deadline = Instant::now() + Duration::from_secs(20);
    let everything = DeliveriesQuery::default();
    let deliveries = loop {
        let ds = c.deliveries(&id, &everything).await.unwrap();
        if ds.iter().any(|d| d.status == DeliveryStatus::Delivered) {
            break ds;
        }
        assert!(Instant::now() < deadline, "never delivered: {ds:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let d = &deliveries[0];
    assert!(d.id.starts_with("dlv_"), "{d:?}");
    assert_eq!(
        (
            d.webhook_id.as_str(),
            d.event.as_str(),
            d.audit_seq,
            d.attempts
        ),
        (id.as_str(), "app.created", recorded.records[0].seq, 1)
    );
    let tries: Vec<(Option<u16>, Option<&str>)> = d
        .attempt_log
        .iter()
        .map(|a| (a.status, a.error.as_deref()))
        .collect();
    assert_eq!(tries, [(Some(204), None)]);
    assert!(d.delivered_at.is_some(), "{d:?}");
    let limited = c
        .deliveries(&id, &DeliveriesQuery { limit: Some(1) })
        .await
        .unwrap();
    assert_eq!(limited, deliveries);

    // Unsubscribed: no longer listed, still readable with `deleted_at`.
    let deleted = c.delete_webhook(&id).await.unwrap();
    assert_eq!(deleted, WebhookDeleted { id: id.clone() });
    assert_eq!(c.webhooks().await.unwrap(), json!([]));
    let gone = c.webhook(&id).await.unwrap();
    assert!(gone["deleted_at"].is_string(), "{gone}");
    let err = c.delete_webhook("wh_nosuch").await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    let err = c
        .create_webhook(&json!({"url": url, "events": ["no.such"], "secret": "0123456789abcdef"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    receiving.abort();
    server.stop();
}
