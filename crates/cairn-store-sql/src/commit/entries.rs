//! Entry writes and deletes (tombstones) inside a commit.

use cairn_model::EntryKind;
use cairn_store::{Applied, PutEntry, StoreError, StoreResult};
use serde_json::json;

use super::{AuditFacts, Tx};
use crate::dialect::Dialect;
use crate::query::{query, query_as};
use crate::rows::{micros, to_json_text};

impl<D: Dialect> Tx<'_, D> {
    pub(super) async fn put_entry(
        &mut self,
        position: i64,
        e: &PutEntry,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let (app, env) = (e.scope.app_str(), e.scope.env_str());
        let current: Option<(i64, bool, String)> = query_as::<D, _>(
            "SELECT e.version, e.deleted, v.kind FROM entries e JOIN entry_versions v \
             ON v.app = e.app AND v.env = e.env AND v.key = e.key AND v.version = e.version \
             WHERE e.app = $1 AND e.env = $2 AND e.key = $3",
        )
        .bind(app)
        .bind(env)
        .bind(&e.key)
        .fetch_optional(self.conn)
        .await
        .map_err(D::err("read entry"))?;
        // latest: the last version number ever written (tombstones too);
        // live: the current version, 0 when absent or deleted.
        let (latest, live) = match &current {
            None => (0, 0),
            Some((v, true, _)) => (*v, 0),
            Some((v, false, _)) => (*v, *v),
        };
        // One (scope, key) holds one kind at a time, checked against committed
        // state under the commit's lock: a delete takes the live entry's kind, a
        // write of another kind is refused.
        let live_kind = match &current {
            Some((_, false, k)) => EntryKind::parse(k),
            _ => None,
        };
        let kind = match (live_kind, &e.value) {
            (Some(k), None) => k,
            (Some(k), Some(_)) if k != e.kind => {
                return Err(StoreError::KindConflict {
                    scope: e.scope.clone(),
                    key: e.key.to_owned(),
                    current: k.as_str(),
                    requested: e.kind.as_str(),
                    version: live,
                });
            }
            _ => e.kind,
        };
        if let Some(expected) = e.expected_version {
            if expected != live {
                return Err(StoreError::Conflict {
                    scope: e.scope.clone(),
                    key: e.key.to_owned(),
                    expected,
                    actual: live,
                });
            }
        }
        if e.value.is_none() && live == 0 {
            return Err(StoreError::NotFound {
                what: format!("entry {} at {}", e.key, e.scope),
            });
        }
        let version = latest + 1;
        let value_text = e.value.as_ref().map(to_json_text).transpose()?;
        let checksum = if e.value.is_some() {
            e.checksum.as_str()
        } else {
            ""
        };
        query::<D>(
            "INSERT INTO entry_versions (app, env, key, version, kind, merge, value, checksum, \
             revision, position, actor, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(app)
        .bind(env)
        .bind(&e.key)
        .bind(version)
        .bind(kind.as_str())
        .bind(e.merge.as_str())
        .bind(value_text)
        .bind(checksum)
        .bind(self.revision())
        .bind(position)
        .bind(&self.context.actor)
        .bind(&self.context.message)
        .bind(micros(&self.at))
        .execute(self.conn)
        .await
        .map_err(D::err("insert entry version"))?;
        query::<D>(
            "INSERT INTO entries (app, env, key, version, deleted) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app, env, key) DO UPDATE SET version = excluded.version, \
             deleted = excluded.deleted",
        )
        .bind(app)
        .bind(env)
        .bind(&e.key)
        .bind(version)
        .bind(e.value.is_none())
        .execute(self.conn)
        .await
        .map_err(D::err("update current entry"))?;
        Ok((
            Applied {
                from_version: Some(live),
                to_version: Some(version),
            },
            AuditFacts {
                app: Some(app.to_owned()),
                env: Some(env.to_owned()),
                key: Some(e.key.to_owned()),
                from_version: Some(live),
                to_version: Some(version),
                detail: json!({
                    "kind": kind.as_str(),
                    "merge": e.merge.as_str(),
                    "checksum": checksum,
                }),
            },
        ))
    }
}
