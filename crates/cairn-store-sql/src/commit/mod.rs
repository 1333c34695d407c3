//! `Store::commit`: in one writing transaction, the dialect allocates the
//! revision (the lock that serializes committers), the guard is checked,
//! then every mutation's checks and writes, one audit record per mutation
//! sealed into the chain, and the audit sink before the transaction commits.
//! `Store::append_audit` extends the same chain under the same lock.

mod catalog;
mod chain;
mod changes;
mod entries;
mod guard;
mod identity;
mod secrets;
mod webhooks;

use std::sync::Arc;

use cairn_model::Revision;
use cairn_store::{
    Applied, AuditContext, AuditEvent, AuditKey, AuditRecord, AuditSink, Commit, Committed,
    Mutation, StoreError, StoreResult,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Database, Transaction};

use crate::dialect::{Conn, Dialect};
use crate::query::query;

use chain::Chain;

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

/// A change being written: the transaction's connection (holding the lock
/// that allocates revisions), and what every row and audit record it writes
/// says about the change.
struct Tx<'a, D: Dialect> {
    conn: &'a mut Conn<D>,
    /// `None` for audit records that are not changes.
    revision: Option<Revision>,
    at: DateTime<Utc>,
    context: &'a AuditContext,
}

impl<D: Dialect> Tx<'_, D> {
    /// The revision rows are stamped with (0 outside a commit).
    fn revision(&self) -> i64 {
        self.revision.unwrap_or(0)
    }
}

fn no_versions() -> Applied {
    Applied {
        from_version: None,
        to_version: None,
    }
}

/// Begins a writing transaction on `dialect`'s writer pool.
pub(crate) async fn begin_write<D: Dialect>(
    dialect: &D,
    what: &'static str,
) -> StoreResult<Transaction<'static, D::Db>> {
    dialect
        .writer()
        .begin_with(D::BEGIN_WRITE)
        .await
        .map_err(D::err(what))
}

/// Writes `records` to the sink, if any, before the transaction commits:
/// fail closed.
async fn write_sink(sink: Option<&Arc<dyn AuditSink>>, records: &[AuditRecord]) -> StoreResult<()> {
    match sink {
        Some(sink) => sink
            .write(records)
            .await
            .map_err(|e| StoreError::Unavailable(format!("audit sink: {e}"))),
        None => Ok(()),
    }
}

/// Commits `tx` if `result` is a success, else rolls it back and returns the error.
async fn finish<DB: Database, T>(
    tx: Transaction<'static, DB>,
    result: StoreResult<T>,
    map_err: impl FnOnce(sqlx::Error) -> StoreError,
) -> StoreResult<T> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(map_err)?;
            Ok(value)
        }
        Err(e) => {
            // If the rollback itself fails the connection is closed, which
            // rolls back too; the original error is the one worth reporting.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

pub(crate) async fn commit<D: Dialect>(dialect: &D, commit: Commit) -> StoreResult<Committed> {
    if commit.mutations.is_empty() {
        return Err(StoreError::Backend(
            "refusing to commit an empty change set".into(),
        ));
    }
    let mut tx = begin_write(dialect, "begin commit").await?;
    let result = match apply_all::<D>(&mut tx, &commit).await {
        Ok((committed, written)) => write_sink(commit.sink.as_ref(), &written)
            .await
            .map(|()| committed),
        Err(e) => Err(e),
    };
    finish(tx, result, D::err("commit")).await
}

async fn apply_all<D: Dialect>(
    conn: &mut Conn<D>,
    commit: &Commit,
) -> StoreResult<(Committed, Vec<AuditRecord>)> {
    let begun = D::begin_commit(conn).await?;
    let (revision, at) = (begun.revision, begun.at);
    if let Some(guard) = &commit.guard {
        guard::check::<D>(conn, guard, &begun).await?;
    }
    let mut tx = Tx::<D> {
        conn,
        revision: Some(revision),
        at,
        context: &commit.context,
    };
    let mut chain = Chain::read(&mut tx, commit.seal).await?;
    let mut applied = Vec::with_capacity(commit.mutations.len());
    let mut catalog = false;
    for (position, (action, mutation)) in commit.mutations.iter().enumerate() {
        let (one, facts) = tx.apply(position as i64, mutation).await?;
        let action = action.unwrap_or_else(|| mutation.default_action()).as_str();
        chain.append(&mut tx, action, facts).await?;
        catalog |= mutation.is_catalog();
        applied.push(one);
    }
    chain.write_head(&mut tx).await?;
    if catalog {
        query::<D>("UPDATE meta SET catalog_revision = $1 WHERE id = 1")
            .bind(revision)
            .execute(tx.conn)
            .await
            .map_err(D::err("bump catalog revision"))?;
    }
    let committed = Committed {
        revision,
        at,
        applied,
    };
    Ok((committed, chain.written))
}

impl<D: Dialect> Tx<'_, D> {
    /// One mutation's checks and writes.
    async fn apply(
        &mut self,
        position: i64,
        mutation: &Mutation,
    ) -> StoreResult<(Applied, AuditFacts)> {
        match mutation {
            Mutation::PutEntry(m) => self.put_entry(position, m).await,
            Mutation::CreateApp(m) => self.create_app(m).await,
            Mutation::CreateEnv(m) => self.create_env(m).await,
            Mutation::UpdateEnv(m) => self.update_env(m).await,
            Mutation::PutSchema(m) => self.put_schema(m).await,
            Mutation::CreateToken(m) => self.create_token(m).await,
            Mutation::RevokeToken(m) => self.revoke_token(m).await,
            Mutation::PutUser(m) => self.put_user(m).await,
            Mutation::PutSecret(m) => self.put_secret(m).await,
            Mutation::DeleteSecret(m) => self.delete_secret(m).await,
            Mutation::RewrapSecret(m) => self.rewrap_secret(m).await,
            Mutation::CreateWebhook(m) => self.create_webhook(m).await,
            Mutation::DeleteWebhook(m) => self.delete_webhook(m).await,
            Mutation::RewrapWebhook(m) => self.rewrap_webhook(m).await,
            Mutation::PutChange(m) => self.put_change(m).await,
        }
    }
}

/// `Store::append_audit`: audit records that are not changes (no revision),
/// in their own transaction under the lock commits take, sealed into the
/// same chain.
pub(crate) async fn append_audit<D: Dialect>(
    dialect: &D,
    context: &AuditContext,
    events: Vec<AuditEvent>,
    seal: Option<AuditKey>,
    sink: Option<&Arc<dyn AuditSink>>,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = begin_write(dialect, "begin audit").await?;
    let result = append_events::<D>(&mut tx, context, events, seal).await;
    let result = match result {
        Ok(written) => write_sink(sink, &written).await,
        Err(e) => Err(e),
    };
    finish(tx, result, D::err("commit audit")).await
}

async fn append_events<D: Dialect>(
    conn: &mut Conn<D>,
    context: &AuditContext,
    events: Vec<AuditEvent>,
    seal: Option<AuditKey>,
) -> StoreResult<Vec<AuditRecord>> {
    let at = D::lock_audit_chain(conn).await?;
    let mut tx = Tx::<D> {
        conn,
        revision: None,
        at,
        context,
    };
    let mut chain = Chain::read(&mut tx, seal).await?;
    for e in events {
        let facts = AuditFacts {
            app: e.app,
            env: e.env,
            key: e.key,
            from_version: None,
            to_version: None,
            detail: e.detail,
        };
        chain.append(&mut tx, e.action.as_str(), facts).await?;
    }
    chain.write_head(&mut tx).await?;
    Ok(chain.written)
}
