//! Real-time delivery: the watch stream (Server-Sent Events), the long-poll
//! wait of a resolved view, and the stale marking of reads.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use cairn_core::{Error, Principal, ResolvedView, Service, ViewEvent};
use cairn_model::Revision;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{Caller, Q};
use crate::problem::{ApiResult, Problem};

/// The longest a long poll may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    pub app: String,
    pub env: String,
    /// Resume after this revision (the `Last-Event-ID` header wins if both are given).
    pub since: Option<Revision>,
}

/// One Server-Sent Event of `/v1/watch`, as schemathesis and OpenAPI 3.2's
/// `itemSchema` see it (heartbeats are comments, not events).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the wire shape; events are built by `change_event` / `resync_event`
pub struct WatchEvent {
    /// The view's revision after the event.
    id: String,
    /// `change` or `resync`.
    #[schema(pattern = "^(change|resync)$")]
    event: String,
    /// JSON: a `ViewEvent` for `change`; `{revision, checksum}` for `resync`.
    data: String,
}

/// Stream the changes of the resolved configuration of (app, env) as
/// Server-Sent Events.
///
/// One `change` event per committed revision that changes the view: `id` is
/// the view's revision, data `{revision, checksum, keys}` (the keys whose
/// resolved value changed). A client that sends `Last-Event-ID` (or `since`)
/// behind the current revision first gets the events it missed (or, if this
/// replica no longer holds them, one event bringing it to the current
/// state). A `resync` event (data `{revision, checksum}`) means the asked-for
/// revision is no longer retained: re-read the whole view. Comments are sent
/// as heartbeats.
#[utoipa::path(get, path = "/v1/watch", params(WatchQuery, ("Last-Event-ID" = Option<String>, Header)), tag = "watch",
    responses((status = 200, content_type = "text/event-stream", body = WatchEvent), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn watch(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Q(q): Q<WatchQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let since = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<Revision>().ok())
                .ok_or_else(|| Error::invalid("Last-Event-ID", "must be a revision number"))?,
        ),
        None => q.since,
    };
    let (view, rx) = svc.config().watch_view(&c.who, &q.app, &q.env)?;
    let mut pending = VecDeque::new();
    if let Some(since) = since {
        if since < svc.compacted_revision() || since > svc.revision() {
            pending.push_back(resync_event(&view));
        } else if since < view.revision {
            match svc.config().view_events_after(&q.app, &q.env, since) {
                Some(events) => pending.extend(
                    events
                        .iter()
                        .filter(|e| e.revision <= view.revision)
                        .map(|e| change_event(e)),
                ),
                None => pending.push_back(change_event(
                    &svc.config().catch_up_event(&c.who, &view, since).await,
                )),
            }
        }
    }
    let heartbeat = svc.options().watch_heartbeat;
    let watcher = Watcher {
        svc,
        who: c.who,
        rx,
        last: view,
        pending,
    };
    let stream = futures::stream::unfold(watcher, |mut w| async move {
        let event = w.next().await?;
        Some((Ok(event), w))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// The state of one open stream: small on purpose (a receiver, the last view
/// sent — shared with the state's cache — and the events not yet sent).
struct Watcher {
    svc: Arc<Service>,
    who: Principal,
    rx: watch::Receiver<Revision>,
    last: Arc<ResolvedView>,
    pending: VecDeque<Event>,
}

impl Watcher {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            // The sender lives as long as a receiver does; an error means the
            // service is gone.
            self.rx.changed().await.ok()?;
            // Access is checked again on every wake (a revoked token ends the stream).
            let current = self
                .svc
                .config()
                .resolve(&self.who, &self.last.app, &self.last.env)
                .ok()?;
            if current.revision <= self.last.revision {
                continue;
            }
            let from = self.last.revision;
            match self
                .svc
                .config()
                .view_events_after(&current.app, &current.env, from)
            {
                Some(events) => self.pending.extend(
                    events
                        .iter()
                        .filter(|e| e.revision <= current.revision)
                        .map(|e| change_event(e)),
                ),
                None => self.pending.push_back(change_event(&ViewEvent::between(
                    from,
                    Some(&self.last.values),
                    &current,
                ))),
            }
            self.last = current;
        }
    }
}

fn change_event(e: &ViewEvent) -> Event {
    Event::default()
        .id(e.revision.to_string())
        .event("change")
        .data(e.json())
}

fn resync_event(view: &ResolvedView) -> Event {
    Event::default()
        .id(view.revision.to_string())
        .event("resync")
        .data(serde_json::json!({"revision": view.revision, "checksum": view.checksum}).to_string())
}

/// Parse a long-poll `wait` like `30s`, `500ms`, `2m` or plain seconds, capped at [`MAX_WAIT`].
pub fn parse_wait(s: &str) -> Result<Duration, Error> {
    let bad = || Error::invalid("wait", "a duration like 30s, 500ms or 2m (at most 5m)");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    Ok(d.min(MAX_WAIT))
}

/// Long poll: the view of (app, env) once its revision passes `index`, or the
/// current view after `wait`.
pub async fn wait_view(
    svc: &Service,
    who: &Principal,
    app: &str,
    env: &str,
    index: Revision,
    wait: Duration,
) -> Result<Arc<ResolvedView>, Error> {
    let (view, mut rx) = svc.config().watch_view(who, app, env)?;
    if view.revision > index {
        return Ok(view);
    }
    let _ = tokio::time::timeout(wait, rx.wait_for(|r| *r > index)).await;
    svc.config().resolve(who, app, env)
}

/// Mark GET answers `Cairn-Stale: true` (with `Cairn-Revision`) while this
/// replica's last sync with the database failed: they come from memory that
/// may be behind.
pub async fn mark_stale(State(svc): State<Arc<Service>>, req: Request, next: Next) -> Response {
    let get = req.method() == Method::GET;
    let mut resp = next.run(req).await;
    if get && svc.is_stale() {
        let h = resp.headers_mut();
        h.insert(
            HeaderName::from_static("cairn-stale"),
            HeaderValue::from_static("true"),
        );
        if let Ok(v) = HeaderValue::from_str(&svc.revision().to_string()) {
            h.insert(HeaderName::from_static("cairn-revision"), v);
        }
    }
    resp
}
