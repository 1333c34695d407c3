//! `cairn serve`: options (TOML file → environment → flags), storage choice,
//! first-start bootstrap, and the HTTP listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_core::jwt::JwtVerifier;
use cairn_core::keys::MasterKey;
use cairn_core::sink::FileAuditSink;
use cairn_core::{Options, Service};
use cairn_server::ratelimit::{Limiter, Limits};
use cairn_store::Store;
use serde::Deserialize;

/// Options of `cairn serve`. Every option can also come from the TOML file
/// given with `--config` (same names, `-` as `_`) or from `CAIRN_*` variables;
/// flags win over the environment, which wins over the file.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Development mode: also writes the first admin token to DATA_DIR/admin.token (0600).
    #[arg(long, env = "CAIRN_DEV")]
    pub dev: bool,
    /// Directory of the embedded SQLite database (default ./cairn-data).
    #[arg(long, env = "CAIRN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…); replaces the embedded database.
    #[arg(long, env = "CAIRN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address to listen on (default 127.0.0.1:8700).
    #[arg(long, env = "CAIRN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML file with defaults for these options.
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest value in bytes (default 524288).
    #[arg(long, env = "CAIRN_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,
    /// Name of this replica in audit records (default: host name or "cairn").
    #[arg(long, env = "CAIRN_REPLICA")]
    pub replica: Option<String>,
    /// How often a PostgreSQL replica catches up with others' writes, in ms (default 500).
    #[arg(long, env = "CAIRN_SYNC_INTERVAL_MS")]
    pub sync_interval_ms: Option<u64>,
    /// How often the secret-rotation scheduler looks for due secrets, in ms
    /// (default 30000). One replica at a time rotates (a lease in the database).
    #[arg(long, env = "CAIRN_ROTATION_CHECK_MS")]
    pub rotation_check_ms: Option<u64>,
    /// First retry delay after a failed scheduled rotation, in ms; doubles per
    /// failure up to an hour (default 30000).
    #[arg(long, env = "CAIRN_ROTATION_RETRY_MS")]
    pub rotation_retry_ms: Option<u64>,
    /// How long a pending change request waits for its approvals before it
    /// expires, e.g. 14d, 36h, 90m (s, m, h, d, w; default 14d).
    #[arg(long, env = "CAIRN_CHANGE_EXPIRY", value_parser = parse_duration)]
    pub change_expiry: Option<Duration>,
    /// How often the change-request scheduler applies approved requests whose
    /// --apply-at has come and expires stale pending ones, in ms (default 1000).
    /// One replica at a time does it (a lease in the database).
    #[arg(long, env = "CAIRN_CHANGE_CHECK_MS")]
    pub change_check_ms: Option<u64>,
    /// File holding the master key (32 bytes, base64 or hex). `CAIRN_MASTER_KEY`
    /// gives the key itself. Without either, the key is generated into
    /// DATA_DIR/master.key (SQLite only; replicas on PostgreSQL must share one).
    #[arg(long, env = "CAIRN_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// File holding master keys being retired, one per line: secrets still
    /// wrapped under them stay readable until `cairn admin rekey` re-wraps them.
    #[arg(long, env = "CAIRN_PREVIOUS_MASTER_KEY_FILE")]
    pub previous_master_key_file: Option<PathBuf>,
    /// Also append every audit record to this JSON-lines file; if it cannot be
    /// written within 2 s, the change fails (fail closed).
    #[arg(long, env = "CAIRN_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "CAIRN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "CAIRN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Requests per second per principal for every route class not given its
    /// own limit below (0: no limit). Without it: reads unlimited, writes 1000.
    #[arg(long, env = "CAIRN_RATE_LIMIT")]
    pub rate_limit: Option<f64>,
    /// Reads per second per principal: GET/HEAD, OFREP evaluations, watch,
    /// schema validation (0: no limit; default 0, burst 2x).
    #[arg(long, env = "CAIRN_RATE_LIMIT_READS")]
    pub rate_limit_reads: Option<f64>,
    /// Writes per second per principal: every other authenticated request, SDK
    /// reports included (0: no limit; default 1000, burst 2x).
    #[arg(long, env = "CAIRN_RATE_LIMIT_WRITES")]
    pub rate_limit_writes: Option<f64>,
    /// Requests per second per client address (IPv6: per /64), every route
    /// that needs a token, counted before authentication (0: no limit;
    /// default 0, burst 2x). A fleet behind one NAT is one address.
    #[arg(long, env = "CAIRN_IP_RATE_LIMIT")]
    pub ip_rate_limit: Option<f64>,
    /// Failed authentications per second per client address (IPv6: per /64);
    /// spent only by failures, so valid tokens are never refused by it
    /// (default 10, burst 5x; 0: no limit).
    #[arg(long, env = "CAIRN_AUTH_FAILURE_LIMIT")]
    pub auth_failure_limit: Option<f64>,
    /// Accept JWTs issued by this OIDC issuer (with --oidc-audience and a JWKS).
    #[arg(long, env = "CAIRN_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    #[arg(long, env = "CAIRN_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The issuer's JWKS as a file…
    #[arg(long, env = "CAIRN_OIDC_JWKS_FILE")]
    pub oidc_jwks_file: Option<PathBuf>,
    /// …or a URL fetched at start.
    #[arg(long, env = "CAIRN_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// Claim holding roles: `role` or `role:app:env` strings (default cairn_roles).
    #[arg(long, env = "CAIRN_OIDC_ROLES_CLAIM")]
    pub oidc_roles_claim: Option<String>,
    /// Allow webhooks and rotation hooks to call loopback, private, link-local
    /// and other non-public addresses (refused by default, checked after DNS).
    #[arg(long, env = "CAIRN_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
}

/// The TOML file layer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    dev: Option<bool>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    max_value_bytes: Option<usize>,
    replica: Option<String>,
    sync_interval_ms: Option<u64>,
    rotation_check_ms: Option<u64>,
    rotation_retry_ms: Option<u64>,
    change_expiry: Option<String>,
    change_check_ms: Option<u64>,
    master_key_file: Option<PathBuf>,
    previous_master_key_file: Option<PathBuf>,
    audit_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    rate_limit: Option<f64>,
    rate_limit_reads: Option<f64>,
    rate_limit_writes: Option<f64>,
    ip_rate_limit: Option<f64>,
    auth_failure_limit: Option<f64>,
    oidc_issuer: Option<String>,
    oidc_audience: Option<String>,
    oidc_jwks_file: Option<PathBuf>,
    oidc_jwks_url: Option<String>,
    oidc_roles_claim: Option<String>,
    allow_private_targets: Option<bool>,
}

/// Settings after layering.
#[derive(Clone)]
pub struct Settings {
    pub dev: bool,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub listen: SocketAddr,
    pub max_value_bytes: usize,
    pub replica: String,
    pub sync_interval: Duration,
    pub rotation_check: Duration,
    pub rotation_retry: Duration,
    /// A pending change request expires after this long.
    pub change_expiry: Duration,
    /// The change-request scheduler's period.
    pub change_check: Duration,
    pub master_key_file: Option<PathBuf>,
    pub previous_master_key_file: Option<PathBuf>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub audit_file: Option<PathBuf>,
    /// Per principal, per second (0: no limit).
    pub rate_limit_reads: f64,
    pub rate_limit_writes: f64,
    /// Per client address, per second (0: no limit).
    pub ip_rate_limit: f64,
    pub auth_failure_limit: f64,
    pub oidc: Option<Oidc>,
    pub allow_private_targets: bool,
}

/// Where JWTs come from.
#[derive(Debug, Clone)]
pub struct Oidc {
    pub issuer: String,
    pub audience: String,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub roles_claim: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("dev", &self.dev)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|u| redact_url(u)),
            )
            .field("listen", &self.listen)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("replica", &self.replica)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl ServeArgs {
    pub fn settings(&self) -> Result<Settings> {
        let file: FileConfig = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let max_value_bytes = self
            .max_value_bytes
            .or(file.max_value_bytes)
            .unwrap_or(512 * 1024);
        if !(1024..=64 * 1024 * 1024).contains(&max_value_bytes) {
            bail!("max-value-bytes must be between 1024 and 67108864");
        }
        // The generic limit stands in for every class not given its own.
        let rate_limit = self.rate_limit.or(file.rate_limit);
        Ok(Settings {
            dev: self.dev || file.dev.unwrap_or(false),
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("cairn-data")),
            database_url: self.database_url.clone().or(file.database_url),
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8700))),
            max_value_bytes,
            replica: self
                .replica
                .clone()
                .or(file.replica)
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "cairn".into()),
            sync_interval: Duration::from_millis(
                self.sync_interval_ms
                    .or(file.sync_interval_ms)
                    .unwrap_or(500),
            ),
            rotation_check: Duration::from_millis(
                self.rotation_check_ms
                    .or(file.rotation_check_ms)
                    .unwrap_or(30_000)
                    .max(10),
            ),
            rotation_retry: Duration::from_millis(
                self.rotation_retry_ms
                    .or(file.rotation_retry_ms)
                    .unwrap_or(30_000),
            ),
            change_expiry: match (self.change_expiry, &file.change_expiry) {
                (Some(d), _) => d,
                (None, Some(text)) => {
                    parse_duration(text).context("change_expiry in the configuration file")?
                }
                (None, None) => cairn_core::approvals::DEFAULT_EXPIRY,
            },
            change_check: Duration::from_millis(
                self.change_check_ms
                    .or(file.change_check_ms)
                    .unwrap_or(1000)
                    .max(10),
            ),
            master_key_file: self.master_key_file.clone().or(file.master_key_file),
            previous_master_key_file: self
                .previous_master_key_file
                .clone()
                .or(file.previous_master_key_file),
            audit_file: self.audit_file.clone().or(file.audit_file),
            tls: match (
                self.tls_cert.clone().or(file.tls_cert),
                self.tls_key.clone().or(file.tls_key),
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => bail!("TLS needs both --tls-cert and --tls-key"),
            },
            rate_limit_reads: rate(
                "rate-limit-reads",
                self.rate_limit_reads
                    .or(file.rate_limit_reads)
                    .or(rate_limit),
                0.0,
            )?,
            rate_limit_writes: rate(
                "rate-limit-writes",
                self.rate_limit_writes
                    .or(file.rate_limit_writes)
                    .or(rate_limit),
                1000.0,
            )?,
            ip_rate_limit: rate(
                "ip-rate-limit",
                self.ip_rate_limit.or(file.ip_rate_limit),
                0.0,
            )?,
            auth_failure_limit: rate(
                "auth-failure-limit",
                self.auth_failure_limit.or(file.auth_failure_limit),
                10.0,
            )?,
            oidc: match (
                self.oidc_issuer.clone().or(file.oidc_issuer),
                self.oidc_audience.clone().or(file.oidc_audience),
            ) {
                (None, None) => None,
                (Some(issuer), Some(audience)) => {
                    let jwks_file = self.oidc_jwks_file.clone().or(file.oidc_jwks_file);
                    let jwks_url = self.oidc_jwks_url.clone().or(file.oidc_jwks_url);
                    if jwks_file.is_none() == jwks_url.is_none() {
                        bail!("OIDC needs exactly one of --oidc-jwks-file and --oidc-jwks-url");
                    }
                    Some(Oidc {
                        issuer,
                        audience,
                        jwks_file,
                        jwks_url,
                        roles_claim: self
                            .oidc_roles_claim
                            .clone()
                            .or(file.oidc_roles_claim)
                            .unwrap_or_else(|| "cairn_roles".into()),
                    })
                }
                _ => bail!("OIDC needs both --oidc-issuer and --oidc-audience"),
            },
            allow_private_targets: self.allow_private_targets
                || file.allow_private_targets.unwrap_or(false),
        })
    }
}

/// `14d`, `36h`, `90m`, `45s`, `2w` (the CLI's durations, `cli::parse_age`),
/// at least one second.
fn parse_duration(s: &str) -> Result<Duration> {
    let d = crate::cli::parse_age(s)?
        .to_std()
        .map_err(|_| anyhow::anyhow!("bad duration {s:?}: it must not be negative"))?;
    if d < Duration::from_secs(1) {
        bail!("bad duration {s:?}: at least 1s");
    }
    Ok(d)
}

/// A rate per second: `value` or `default`, finite and not negative.
fn rate(name: &str, value: Option<f64>, default: f64) -> Result<f64> {
    let r = value.unwrap_or(default);
    if !r.is_finite() || r < 0.0 {
        bail!("{name} must be a number of requests per second, 0 or more (0: no limit)");
    }
    Ok(r)
}

/// The limits `serve` runs with (see `cairn_server::ratelimit::Limits`).
pub fn limits(s: &Settings) -> Limits {
    fn per_second<K: std::hash::Hash + Eq + Clone>(r: f64, burst: f64) -> Limiter<K> {
        Limiter::new(r, (r * burst).max(1.0))
    }
    Limits {
        per_ip: per_second(s.ip_rate_limit, 2.0),
        reads: per_second(s.rate_limit_reads, 2.0),
        writes: per_second(s.rate_limit_writes, 2.0),
        auth_failures: per_second(s.auth_failure_limit, 5.0),
        ..Limits::defaults()
    }
}

async fn open_store(s: &Settings) -> Result<Arc<dyn Store>> {
    match &s.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = cairn_store_postgres::PostgresStore::connect(url)
                .await
                .with_context(|| format!("connecting to {}", redact_url(url)))?;
            Ok(Arc::new(store))
        }
        Some(url) => bail!(
            "unsupported database URL {} (expected postgres://…)",
            redact_url(url)
        ),
        None => {
            std::fs::create_dir_all(&s.data_dir)
                .with_context(|| format!("creating {}", s.data_dir.display()))?;
            let path = s.data_dir.join("cairn.db");
            let store = cairn_store_sqlite::SqliteStore::open(&path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            Ok(Arc::new(store))
        }
    }
}

/// The master key: `CAIRN_MASTER_KEY`, else `--master-key-file`, else (SQLite
/// only) DATA_DIR/master.key, generated on first start with mode 0600.
fn load_master_key(s: &Settings) -> Result<MasterKey> {
    if let Ok(text) = std::env::var("CAIRN_MASTER_KEY") {
        return MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("CAIRN_MASTER_KEY: {e}"));
    }
    let path = match &s.master_key_file {
        Some(p) => p.clone(),
        None if s.database_url.is_some() => {
            bail!("replicas on PostgreSQL must share a master key: set CAIRN_MASTER_KEY or --master-key-file")
        }
        None => s.data_dir.join("master.key"),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && s.master_key_file.is_none() => {
            std::fs::create_dir_all(&s.data_dir)?;
            let (key, text) = MasterKey::generate();
            write_private_file(&path, &text)?;
            if !s.dev {
                tracing::warn!(path = %path.display(), "generated a master key next to the database; keep it out of database backups");
            }
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!(
            "reading master key {}: {e}",
            path.display()
        )),
    }
}

/// The master keys being retired (`--previous-master-key-file`, one per line).
fn load_previous_master_keys(s: &Settings) -> Result<Vec<MasterKey>> {
    let Some(path) = &s.previous_master_key_file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading previous master keys {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            MasterKey::parse(l)
                .map_err(|e| anyhow::anyhow!("{} key {}: {e}", path.display(), i + 1))
        })
        .collect()
}

async fn load_jwt(s: &Settings) -> Result<Option<Arc<JwtVerifier>>> {
    let Some(o) = &s.oidc else { return Ok(None) };
    let jwks = match (&o.jwks_file, &o.jwks_url) {
        (Some(f), _) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, Some(url)) => {
            reqwest::get(url)
                .await
                .and_then(|r| r.error_for_status())
                .with_context(|| format!("fetching JWKS from {url}"))?
                .text()
                .await?
        }
        (None, None) => bail!("OIDC needs a JWKS"),
    };
    let v = JwtVerifier::new(&o.issuer, &o.audience, &o.roles_claim, &jwks)
        .map_err(|e| anyhow::anyhow!("OIDC: {e}"))?;
    Ok(Some(Arc::new(v)))
}

fn write_token_file(dir: &Path, token: &str) -> Result<PathBuf> {
    let path = dir.join("admin.token");
    write_private_file(&path, token)?;
    Ok(path)
}

/// Write a file readable by its owner only (0600).
fn write_private_file(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let settings = args.settings()?;
    tracing::info!(?settings, "starting cairn");
    let store = open_store(&settings).await?;
    let backend = store.backend();
    let (svc, token) = Service::open(
        store,
        Options {
            max_value_bytes: settings.max_value_bytes,
            replica: settings.replica.clone(),
            master_key: load_master_key(&settings)?,
            previous_master_keys: load_previous_master_keys(&settings)?,
            jwt: load_jwt(&settings).await?,
            audit_sink: match &settings.audit_file {
                Some(p) => Some(Arc::new(
                    FileAuditSink::open(p, Duration::from_secs(2))
                        .with_context(|| format!("opening the audit file {}", p.display()))?,
                )),
                None => None,
            },
            watch_heartbeat: Duration::from_secs(15),
            allow_private_targets: settings.allow_private_targets,
            rotation_retry_base: settings.rotation_retry,
            clock: Arc::new(cairn_core::clock::SystemClock),
            change_expiry: settings.change_expiry,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("loading state: {e}"))?;
    if let Some(token) = token {
        println!(
            "First start: an admin token was created. It is shown only this once:\n\n    {token}\n"
        );
        if settings.dev {
            std::fs::create_dir_all(&settings.data_dir)?;
            let path = write_token_file(&settings.data_dir, &token)?;
            println!("(--dev: also written to {})", path.display());
        }
    }
    svc.spawn_count_flusher(Duration::from_secs(30));
    svc.spawn_rotation_scheduler(settings.rotation_check);
    // Applies approved requests whose apply_at has come and expires stale
    // pending ones, on one replica at a time (the change-scheduler lease).
    svc.spawn_change_scheduler(settings.change_check);
    // Instances silent for 30 days are forgotten (restarts report under new ids).
    svc.spawn_applied_pruner(Duration::from_secs(30 * 86_400));
    svc.spawn_webhook_dispatcher(cairn_core::webhooks::WebhookSettings::default());
    if backend == "postgres" {
        // LISTEN/NOTIFY delivers other replicas' commits fast; the periodic
        // sync is the safety net (the change table is the truth).
        svc.spawn_change_listener().await;
        svc.spawn_sync_loop(settings.sync_interval);
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let tls = match &settings.tls {
        Some((cert, key)) => Some(
            cairn_server::tls::load_config(cert, key).map_err(|e| anyhow::anyhow!("TLS: {e}"))?,
        ),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("cairn listening on {scheme}://{addr} ({backend})");
    tracing::info!(%addr, backend, scheme, "listening");
    let app = cairn_server::router_with(svc.clone(), limits(&settings));
    match tls {
        Some(config) => cairn_server::serve_tls(listener, config, app, shutdown_signal()).await?,
        None => cairn_server::serve(listener, app, shutdown_signal()).await?,
    }
    // Keep what was counted since the last periodic flush.
    if let Err(e) = svc.flags().flush_flag_counts().await {
        tracing::warn!(error = %e, "could not flush flag evaluation counts at shutdown");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

    fn settings_of(args: &[&str]) -> Result<Settings> {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let t = <T as clap::Parser>::try_parse_from(
            std::iter::once("serve").chain(args.iter().copied()),
        )?;
        t.serve.settings()
    }

    fn rates(s: &Settings) -> [f64; 4] {
        [
            s.rate_limit_reads,
            s.rate_limit_writes,
            s.ip_rate_limit,
            s.auth_failure_limit,
        ]
    }

    #[test]
    fn reads_are_unlimited_by_default_and_each_class_can_be_limited() {
        assert_eq!(rates(&settings_of(&[]).unwrap()), [0.0, 1000.0, 0.0, 10.0]);
        // The generic limit applies to every class without its own.
        assert_eq!(
            rates(&settings_of(&["--rate-limit", "5"]).unwrap()),
            [5.0, 5.0, 0.0, 10.0]
        );
        assert_eq!(
            rates(
                &settings_of(&[
                    "--rate-limit",
                    "5",
                    "--rate-limit-reads",
                    "0",
                    "--ip-rate-limit",
                    "300",
                    "--auth-failure-limit",
                    "1",
                ])
                .unwrap()
            ),
            [0.0, 5.0, 300.0, 1.0]
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cairn.toml");
        std::fs::write(&file, "rate_limit_reads = 7.5\nrate_limit_writes = 20\n").unwrap();
        let file = file.to_string_lossy().into_owned();
        assert_eq!(
            rates(&settings_of(&["--config", &file]).unwrap()),
            [7.5, 20.0, 0.0, 10.0]
        );
        assert_eq!(
            rates(&settings_of(&["--config", &file, "--rate-limit-writes", "3"]).unwrap()),
            [7.5, 3.0, 0.0, 10.0],
            "flags win over the file"
        );
        for bad in [
            "--rate-limit-writes=-1",
            "--auth-failure-limit=inf",
            "--ip-rate-limit=NaN",
        ] {
            let e = settings_of(&[bad]).expect_err("refused");
            assert!(e.to_string().contains("0 or more"), "{e}");
        }
    }

    #[test]
    fn change_expiry_and_scheduler_period() {
        const DAY: u64 = 86_400;
        let s = settings_of(&[]).unwrap();
        assert_eq!(s.change_expiry, Duration::from_secs(14 * DAY));
        assert_eq!(s.change_check, Duration::from_secs(1));
        let s = settings_of(&["--change-expiry", "36h", "--change-check-ms", "250"]).unwrap();
        assert_eq!(s.change_expiry, Duration::from_secs(36 * 3600));
        assert_eq!(s.change_check, Duration::from_millis(250));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cairn.toml");
        std::fs::write(&file, "change_expiry = \"2w\"\nchange_check_ms = 5000\n").unwrap();
        let file = file.to_string_lossy().into_owned();
        let s = settings_of(&["--config", &file]).unwrap();
        assert_eq!(s.change_expiry, Duration::from_secs(14 * DAY));
        assert_eq!(s.change_check, Duration::from_secs(5));
        let s = settings_of(&["--config", &file, "--change-expiry", "90m"]).unwrap();
        assert_eq!(s.change_expiry, Duration::from_secs(90 * 60), "flags win");
        for bad in ["0s", "3y", "-1d", "soon"] {
            assert!(
                settings_of(&["--change-expiry", bad]).is_err(),
                "{bad} accepted"
            );
        }
        std::fs::write(&file, "change_expiry = \"forever\"\n").unwrap();
        let e = settings_of(&["--config", &file]).expect_err("refused");
        assert!(format!("{e:#}").contains("change_expiry"), "{e:#}");
    }
}
