//! Applied state reported by SDK instances (telemetry: no revision, no audit).
//! The queries are shared with the other backend (`sql/applied_shared.rs`).

use cairn_store::{AppliedState, StoreError, StoreResult};
use chrono::{DateTime, Utc};

use crate::rows::{self, err};

type Pool = sqlx::SqlitePool;

fn ts_param(t: &DateTime<Utc>) -> i64 {
    crate::rows::micros(t)
}

include!("../../cairn-store/sql/applied_shared.rs");
