//! Keeping the snapshot current: the first load (server or cache file), the
//! refresh (conditional reads of the view and the flagd document, secrets
//! resolved through the server), the watch loop and the reporter.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::{cache, has_references, report, Flags, Inner, SdkError, ServerState, Snapshot, Source};
use crate::sse::{SseEvent, SseParser};
use crate::{ClientError, Conditional};

/// A resolved view as `GET …/config` answers it.
#[derive(Debug, Deserialize)]
struct ViewBody {
    revision: i64,
    #[serde(default)]
    checksum: String,
    values: Map<String, Value>,
}

fn timed_out(what: &str) -> ClientError {
    ClientError::Transport(format!("{what}: timed out"))
}

/// `request` within `limit`, else a transport error naming `what`.
async fn within<T>(
    limit: Duration,
    what: &str,
    request: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, request)
        .await
        .map_err(|_| timed_out(what))?
}

/// Transport failures and server-side failures (5xx, 429) are worth waiting
/// out; other API errors are answers.
fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Transport(_) => true,
        ClientError::Api { status, .. } => *status >= 500 || *status == 429,
    }
}

impl Inner {
    fn config_path(&self) -> String {
        format!("/v1/apps/{}/envs/{}/config", self.app, self.env)
    }

    fn server_state(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first load: the server within `initial_timeout`, else the cache file.
    pub(crate) async fn start(&self) -> Result<(), SdkError> {
        let first = tokio::time::timeout(self.timing.initial_timeout, self.refresh(true)).await;
        let why = match first {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if !is_transient(&e) => return Err(e.into()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        let cached = self
            .cache_file
            .as_deref()
            .and_then(|p| cache::read(p, &self.app, &self.env));
        let Some(c) = cached else {
            return Err(SdkError::NoConfiguration(why));
        };
        tracing::warn!(reason = %why, revision = c.revision,
            "Cairn server unreachable: starting from the cache file");
        let flags = Arc::new(Flags::compile(&c.flags));
        {
            let mut st = self.server_state();
            st.plain = c.values.clone();
            st.flags_doc = c.flags;
        }
        // Secrets are not in the cache: references stay until the server answers.
        self.publish(Snapshot {
            app: self.app.clone(),
            env: self.env.clone(),
            revision: c.revision,
            checksum: c.checksum,
            source: Source::Cache,
            values: c.values.into_iter().collect(),
            flags,
        });
        Ok(())
    }

    /// Re-read the view and the flagd document (conditionally), resolve
    /// secrets when the values reference any (always when `force_secrets`),
    /// publish and cache what changed. `true` if the snapshot changed.
    pub(crate) async fn refresh(&self, force_secrets: bool) -> Result<bool, ClientError> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let t = self.timing.request_timeout;
        let (config_etag, flags_etag) = {
            let st = self.server_state();
            (st.config_etag.clone(), st.flags_etag.clone())
        };
        let current = self.tx.borrow().clone();
        let from_cache = current.source == Source::Cache;
        // Without an ETag on record (first load, or started from the cache) read in full.
        let config: Conditional<ViewBody> = within(
            t,
            "reading the configuration",
            self.http.get_conditional(
                &self.config_path(),
                &[],
                config_etag.as_deref().filter(|_| !from_cache),
            ),
        )
        .await?;
        let flags: Conditional<Value> = within(
            t,
            "reading the flags",
            self.http.get_conditional(
                &format!("/v1/apps/{}/envs/{}/flagd.json", self.app, self.env),
                &[],
                flags_etag.as_deref().filter(|_| !from_cache),
            ),
        )
        .await?;
        let config_changed = config.body.is_some();
        let flags_changed = flags.body.is_some();
        let mut config_etag = config.etag;
        let (mut revision, mut checksum, mut plain) = match config.body {
            Some(v) => (v.revision, v.checksum, v.values),
            None => (
                current.revision,
                current.checksum.clone(),
                self.server_state().plain.clone(),
            ),
        };
        let references = self.secrets && plain.values().any(has_references);
        let values: Map<String, Value> = if references && (config_changed || force_secrets) {
            // The substituted values must be of the same revision as the
            // plain view (whose checksum is reported): re-read both until they agree.
            let mut attempts = 0;
            loop {
                let resolved = self.with_secrets().await?;
                attempts += 1;
                if resolved.revision == revision || attempts == 3 {
                    break resolved.values;
                }
                let v: ViewBody = within(
                    t,
                    "reading the configuration",
                    self.http.get(&self.config_path(), &[]),
                )
                .await?;
                (revision, checksum, plain) = (v.revision, v.checksum, v.values);
                config_etag = None;
            }
        } else if config_changed || !references {
            plain.clone()
        } else {
            current.values.clone().into_iter().collect()
        };
        let config_changed = config_changed || config_etag.is_none();
        let flag_set = match &flags.body {
            Some(doc) => Arc::new(Flags::compile(doc)),
            None => current.flags.clone(),
        };
        let changed = from_cache
            || revision != current.revision
            || checksum != current.checksum
            || flags_changed
            || values.len() != current.values.len()
            || values.iter().any(|(k, v)| current.values.get(k) != Some(v));
        let cached = {
            let mut st = self.server_state();
            if config_changed {
                st.config_etag = config_etag;
                st.plain = plain;
            }
            if let Some(doc) = flags.body {
                st.flags_etag = flags.etag;
                st.flags_doc = doc;
            }
            (config_changed || flags_changed || from_cache).then(|| {
                cache::Cached::new(
                    &self.app,
                    &self.env,
                    revision,
                    &checksum,
                    st.plain.clone(),
                    st.flags_doc.clone(),
                )
            })
        };
        if changed {
            self.publish(Snapshot {
                app: self.app.clone(),
                env: self.env.clone(),
                revision,
                checksum,
                source: Source::Server,
                values: values.into_iter().collect(),
                flags: flag_set,
            });
        }
        if let (Some(path), Some(c)) = (&self.cache_file, cached) {
            let path = path.clone();
            // Blocking file IO (fsync) off the async threads.
            let _ = tokio::task::spawn_blocking(move || cache::write(&path, &c)).await;
        }
        Ok(changed)
    }

    /// The view with the secrets it references substituted (`GET …/config?secrets=true`).
    async fn with_secrets(&self) -> Result<ViewBody, ClientError> {
        within(
            self.timing.request_timeout,
            "resolving secrets",
            self.http
                .get(&self.config_path(), &[("secrets", Some("true".into()))]),
        )
        .await
    }

    /// Make `snapshot` current: callbacks first, then subscribers are woken
    /// (so a subscriber that sees it knows every callback has run).
    fn publish(&self, snapshot: Snapshot) {
        let callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for f in callbacks {
            f(&snapshot);
        }
        self.tx.send_replace(Arc::new(snapshot));
    }

    /// `POST /v1/report`: this instance's applied state and the counts since
    /// the last report (given back if the report fails).
    pub(crate) async fn report(&self) -> Result<(), ClientError> {
        let current = self.tx.borrow().clone();
        if current.revision < 0 {
            return Ok(());
        }
        let counts = self.counts.take();
        let body = report::ReportBody {
            instance: &self.instance,
            revision: current.revision,
            checksum: &current.checksum,
            evaluations: &counts,
        };
        let body = serde_json::to_value(&body).unwrap_or(Value::Null);
        let sent = within(
            self.timing.request_timeout,
            "reporting",
            self.http
                .send_json::<Value>(crate::HttpMethod::POST, "/v1/report", &[], Some(&body)),
        )
        .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => {
                // Refused for good (a 4xx): the counts would be refused again.
                if is_transient(&e) {
                    self.counts.give_back(counts);
                }
                Err(e)
            }
        }
    }
}

/// Sleep `d` unless told to stop first; `true` = stop.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Start the watch loop and the reporter.
pub(crate) fn spawn(inner: &Arc<Inner>) {
    let stop = inner.stop.subscribe();
    tokio::spawn(follow(inner.clone(), stop));
    if !inner.timing.report_interval.is_zero() {
        let stop = inner.stop.subscribe();
        tokio::spawn(reporter(inner.clone(), stop));
    }
}

async fn reporter(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    while !sleep_or_stop(inner.timing.report_interval, &mut stop).await {
        match inner.report().await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                tracing::warn!(error = %e, "Cairn report failed; will retry");
                failing = true;
            }
            Err(e) => tracing::debug!(error = %e, "Cairn report failed again"),
        }
    }
}

/// Why a stream ended.
enum End {
    Stop,
    Reconnect(String),
}

/// The watch loop: refresh, follow the stream from the snapshot's revision,
/// refresh on every event; on any failure back off and start over.
async fn follow(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut backoff = inner.timing.min_backoff;
    // Say it once per outage (at warn), then quietly (debug) until it recovers.
    let mut failing = false;
    loop {
        let outcome = match inner.refresh(false).await {
            Err(e) => End::Reconnect(e.to_string()),
            Ok(_) => {
                backoff = inner.timing.min_backoff;
                failing = false;
                stream(&inner, &mut stop).await
            }
        };
        inner.online.store(false, Ordering::Relaxed);
        match outcome {
            End::Stop => return,
            End::Reconnect(why) if !failing => {
                tracing::warn!(reason = %why, "Cairn: lost the server; serving the last snapshot, reconnecting");
                failing = true;
            }
            End::Reconnect(why) => {
                tracing::debug!(reason = %why, ?backoff, "Cairn watch: reconnecting");
            }
        }
        if sleep_or_stop(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(inner.timing.max_backoff);
    }
}

async fn stream(inner: &Inner, stop: &mut watch::Receiver<bool>) -> End {
    let since = inner.tx.borrow().revision.max(0).to_string();
    let q = [
        ("app", Some(inner.app.clone())),
        ("env", Some(inner.env.clone())),
    ];
    let opened = tokio::time::timeout(
        inner.timing.request_timeout,
        inner.http.open_stream("/v1/watch", &q, Some(&since)),
    )
    .await;
    let mut resp = match opened {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return End::Reconnect(e.to_string()),
        Err(_) => return End::Reconnect("opening the watch stream timed out".into()),
    };
    inner.online.store(true, Ordering::Relaxed);
    let mut parser = SseParser::new();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut poll = tokio::time::interval(inner.timing.poll_interval);
    poll.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return End::Stop,
            _ = poll.tick() => {
                if let Err(e) = inner.refresh(true).await {
                    return End::Reconnect(e.to_string());
                }
            }
            chunk = tokio::time::timeout(inner.timing.idle_timeout, resp.chunk()) => {
                match chunk {
                    Ok(Ok(Some(bytes))) => parser.feed(&bytes, &mut events),
                    Ok(Ok(None)) => return End::Reconnect("the server closed the stream".into()),
                    Ok(Err(e)) => return End::Reconnect(e.to_string()),
                    Err(_) => return End::Reconnect("no heartbeat".into()),
                }
                if events.drain(..).any(|e| e.event == "change" || e.event == "resync") {
                    if let Err(e) = inner.refresh(false).await {
                        return End::Reconnect(e.to_string());
                    }
                }
            }
        }
    }
}
