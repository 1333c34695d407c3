//! The append-only JSON-lines audit file: every record, as sealed in the
//! database, one JSON document per line, synced to disk before the change
//! commits. A write that fails or takes longer than the timeout fails the
//! change (fail closed).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_store::{AuditRecord, AuditSink};

#[derive(Debug)]
pub struct FileAuditSink {
    path: PathBuf,
    file: Arc<Mutex<File>>,
    timeout: Duration,
}

impl FileAuditSink {
    /// Open (creating, appending) the file at `path`.
    pub fn open(path: &Path, timeout: Duration) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileAuditSink {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(file)),
            timeout,
        })
    }
}

#[async_trait]
impl AuditSink for FileAuditSink {
    async fn write(&self, records: &[AuditRecord]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(|e| e.to_string())?;
            buf.push(b'\n');
        }
        let file = self.file.clone();
        let job = tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&buf)?;
            f.sync_data()
        });
        match tokio::time::timeout(self.timeout, job).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("writing {}: {e}", self.path.display())),
            Ok(Err(e)) => Err(format!("writing {}: {e}", self.path.display())),
            Err(_) => Err(format!(
                "writing {} took longer than {:?}",
                self.path.display(),
                self.timeout
            )),
        }
    }
}
