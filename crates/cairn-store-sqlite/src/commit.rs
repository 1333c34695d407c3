//! `Store::commit`: one IMMEDIATE transaction on the single writer connection.

use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::{
    chain, Applied, AuditContext, AuditEvent, AuditKey, AuditRecord, Binding, Commit, Committed,
    Mutation, NewWebhook, SealedSecret, SecretPolicy, StoreError, StoreResult, TokenRecord,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{SqliteConnection, SqlitePool};

use crate::rows::{err, now, to_json_text};

/// What the audit record of one mutation says besides the commit context.
#[derive(Default)]
struct AuditFacts {
    app: Option<String>,
    env: Option<String>,
    key: Option<String>,
    from_version: Option<i64>,
    to_version: Option<i64>,
    detail: Value,
}

/// The commit being written.
struct Ctx<'a> {
    revision: Option<i64>,
    at: DateTime<Utc>,
    context: &'a AuditContext,
}

pub(crate) async fn commit(pool: &SqlitePool, commit: Commit) -> StoreResult<Committed> {
    if commit.mutations.is_empty() {
        return Err(StoreError::Backend(
            "refusing to commit an empty change set".into(),
        ));
    }
    // IMMEDIATE takes the database write lock up front; the writer pool has
    // one connection, so commits of this process queue on it.
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(err("begin commit"))?;
    let mut written = Vec::new();
    let applied = match apply_all(&mut tx, &commit, &mut written).await {
        Ok(c) => match &commit.sink {
            Some(sink) => sink
                .write(&written)
                .await
                .map(|()| c)
                .map_err(|e| StoreError::Unavailable(format!("audit sink: {e}"))),
            None => Ok(c),
        },
        Err(e) => Err(e),
    };
    match applied {
        Ok(committed) => {
            tx.commit().await.map_err(err("commit"))?;
            Ok(committed)
        }
        Err(e) => {
            // If the rollback itself fails the connection is closed, which
            // rolls back too; the original error is the one worth reporting.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn apply_all(
    conn: &mut SqliteConnection,
    commit: &Commit,
    written: &mut Vec<AuditRecord>,
) -> StoreResult<Committed> {
    let revision: i64 =
        sqlx::query_scalar("UPDATE meta SET head = head + 1 WHERE id = 1 RETURNING head")
            .fetch_one(&mut *conn)
            .await
            .map_err(err("allocate revision"))?;
    if let Some(guard) = &commit.guard {
        check_guard(conn, guard).await?;
    }
    let ctx = Ctx {
        revision: Some(revision),
        at: now(),
        context: &commit.context,
    };
    let mut chain = Chain::read(conn, commit.seal).await?;
    let mut applied = Vec::with_capacity(commit.mutations.len());
    let mut catalog = false;
    for (position, (action, mutation)) in commit.mutations.iter().enumerate() {
        let (one, facts) = apply(conn, &ctx, position as i64, mutation).await?;
        let action = action.as_deref().unwrap_or(mutation.default_action());
        chain.append(conn, &ctx, action, facts).await?;
        catalog |= mutation.is_catalog();
        applied.push(one);
    }
    chain.write_head(conn).await?;
    *written = std::mem::take(&mut chain.written);
    if catalog {
        sqlx::query("UPDATE meta SET catalog_revision = $1 WHERE id = 1")
            .bind(revision)
            .execute(&mut *conn)
            .await
            .map_err(err("bump catalog revision"))?;
    }
    Ok(Committed {
        revision,
        at: ctx.at,
        applied,
    })
}

// ----------------------------------------------------------------------
// Dialect, then the shared body
// ----------------------------------------------------------------------

type Conn = SqliteConnection;

/// Timestamps are microseconds since the epoch (`rows::micros`).
fn ts_param(t: &DateTime<Utc>) -> i64 {
    crate::rows::micros(t)
}

fn opt_ts_param(t: Option<&DateTime<Utc>>) -> Option<i64> {
    t.map(crate::rows::micros)
}

include!("../../cairn-store/sql/commit_shared.rs");
include!("../../cairn-store/sql/webhooks_commit_shared.rs");
