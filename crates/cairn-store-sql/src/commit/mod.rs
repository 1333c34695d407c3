//! `Store::commit`: in one writing transaction, the dialect allocates the
//! revision (the lock that serializes committers), the guard is checked,
//! then every mutation's checks and writes, one audit record per mutation
//! sealed into the chain, and the audit sink before the transaction commits.
//! `Store::append_audit` extends the same chain under the same lock.

mod catalog;
mod chain;
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
    let (revision, at) = D::begin_commit(conn).await?;
    if let Some(guard) = &commit.guard {
        guard::check::<D>(conn, guard, revision).await?;
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
        let action = action.as_deref().unwrap_or(mutation.default_action());
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
    D::end_commit(tx.conn, revision).await?;
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
            Mutation::PutEntry {
                scope,
                key,
                kind,
                merge,
                value,
                checksum,
                expected_version,
            } => {
                let entry = entries::NewEntry {
                    scope,
                    key,
                    kind: *kind,
                    merge: *merge,
                    value: value.as_ref(),
                    checksum,
                    expected_version: *expected_version,
                };
                self.put_entry(position, entry).await
            }
            Mutation::CreateApp { name, description } => self.create_app(name, description).await,
            Mutation::CreateEnv {
                name,
                description,
                protected,
                required_approvals,
                auto_approve,
                strict_flags,
            } => {
                let settings = catalog::EnvSettings {
                    description: description.clone(),
                    protected: *protected,
                    required_approvals: *required_approvals,
                    auto_approve: *auto_approve,
                    strict_flags: *strict_flags,
                };
                self.create_env(name, settings).await
            }
            Mutation::UpdateEnv {
                name,
                description,
                protected,
                required_approvals,
                auto_approve,
                strict_flags,
            } => {
                let Some(mut settings) = self.env_settings(name).await? else {
                    return Err(StoreError::NotFound {
                        what: format!("environment {name}"),
                    });
                };
                if let Some(d) = description {
                    settings.description = d.clone();
                }
                if let Some(p) = protected {
                    settings.protected = *p;
                }
                if let Some(r) = required_approvals {
                    settings.required_approvals = *r;
                }
                if let Some(a) = auto_approve {
                    settings.auto_approve = *a;
                }
                if let Some(s) = strict_flags {
                    settings.strict_flags = *s;
                }
                self.update_env(name, settings).await
            }
            Mutation::PutSchema {
                app,
                pattern,
                schema,
            } => {
                self.put_schema(app.as_deref().unwrap_or(""), pattern, schema)
                    .await
            }
            Mutation::CreateToken { token, bootstrap } => {
                self.create_token(token, *bootstrap).await
            }
            Mutation::RevokeToken { id } => self.revoke_token(id).await,
            Mutation::PutUser {
                name,
                create,
                password_hash,
                bindings,
                disabled,
            } => {
                let change = identity::UserChange {
                    name,
                    create: *create,
                    password_hash: password_hash.as_deref(),
                    bindings: bindings.as_ref(),
                    disabled: *disabled,
                };
                self.put_user(change).await
            }
            Mutation::PutSecret {
                scope,
                name,
                version,
                sealed,
                policy,
                value_hash,
                expected_version,
            } => {
                let new = secrets::NewSecret {
                    scope,
                    name,
                    version: *version,
                    sealed,
                    policy: policy.as_ref(),
                    value_hash,
                    expected_version: *expected_version,
                };
                self.put_secret(new).await
            }
            Mutation::DeleteSecret { scope, name } => self.delete_secret(scope, name).await,
            Mutation::RewrapSecret {
                scope,
                name,
                version,
                kek_id,
                wrapped_key,
            } => {
                self.rewrap_secret(scope, name, *version, kek_id, wrapped_key)
                    .await
            }
            Mutation::CreateWebhook { webhook } => self.create_webhook(webhook).await,
            Mutation::DeleteWebhook { id } => self.delete_webhook(id).await,
            Mutation::RewrapWebhook {
                id,
                kek_id,
                wrapped_key,
            } => self.rewrap_webhook(id, kek_id, wrapped_key).await,
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
        chain.append(&mut tx, &e.action, facts).await?;
    }
    chain.write_head(&mut tx).await?;
    Ok(chain.written)
}
