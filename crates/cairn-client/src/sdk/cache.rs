//! The last-known-good cache file: the unresolved view and the flagd
//! document the SDK last applied, so an application can start with them
//! while the server is unreachable. Secrets are never written here: the
//! cached values keep their `{"$secret": …}` references.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The cache format version this SDK writes and reads.
const FORMAT: u32 = 1;

/// What the cache file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cached {
    pub format: u32,
    pub app: String,
    pub env: String,
    pub revision: i64,
    pub checksum: String,
    /// Resolved values *without* secret substitution.
    pub values: serde_json::Map<String, Value>,
    /// The flagd document.
    pub flags: Value,
}

impl Cached {
    pub fn new(
        app: &str,
        env: &str,
        revision: i64,
        checksum: &str,
        values: serde_json::Map<String, Value>,
        flags: Value,
    ) -> Self {
        Cached {
            format: FORMAT,
            app: app.to_owned(),
            env: env.to_owned(),
            revision,
            checksum: checksum.to_owned(),
            values,
            flags,
        }
    }
}

/// Read the cache for (app, env): `None` when absent, unreadable, of
/// another format or of another view (logged, never fatal).
pub(crate) fn read(path: &Path, app: &str, env: &str) -> Option<Cached> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the cache file");
            return None;
        }
    };
    match serde_json::from_slice::<Cached>(&bytes) {
        Ok(c) if c.format == FORMAT && c.app == app && c.env == env => Some(c),
        Ok(c) => {
            tracing::warn!(path = %path.display(), app = %c.app, env = %c.env, format = c.format,
                "the cache file is of another view or format; ignored");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the cache file is not valid; ignored");
            None
        }
    }
}

/// Write `bytes` to `path` so that a reader (or a crash) sees the old or the
/// new content, never a mix: a 0600 temp file in the same directory, fsync,
/// rename over `path`, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the cache path must name a file"))?
        .to_string_lossy();
    // A fresh name, created exclusively: a file or symlink planted at the
    // temp path (a shared directory) makes the write fail, never followed.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut created = false;
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        created = true;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() && created {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write the cache file (errors are logged: a cache is a convenience).
pub(crate) fn write(path: &Path, cached: &Cached) {
    let result = serde_json::to_vec(cached)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_atomic(path, &bytes));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the cache file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_atomic_mode_0600_and_view_check() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cairn.cache.json");
        let mut values = serde_json::Map::new();
        values.insert("db".into(), json!({"pool": 5}));
        let c = Cached::new("shop", "prod", 7, "sha256:x", values, json!({"flags": {}}));
        write(&p, &c);
        let mut c2 = c.clone();
        c2.revision = 8;
        write(&p, &c2);
        assert_eq!(read(&p, "shop", "prod"), Some(c2));
        assert_eq!(read(&p, "shop", "dev"), None);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        std::fs::write(&p, b"{not json").unwrap();
        assert_eq!(read(&p, "shop", "prod"), None);
        assert_eq!(read(&dir.path().join("absent"), "shop", "prod"), None);
    }
}
