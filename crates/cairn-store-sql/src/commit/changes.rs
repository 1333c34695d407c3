//! Change requests inside a commit: create or replace, compare-and-set on
//! the record's version.

use cairn_store::{Applied, ChangeState, PutChange, StoreError, StoreResult};
use serde_json::json;

use super::{AuditFacts, Tx};
use crate::dialect::Dialect;
use crate::query::{query, query_scalar};
use crate::rows::micros;

impl<D: Dialect> Tx<'_, D> {
    pub(super) async fn put_change(&mut self, m: &PutChange) -> StoreResult<(Applied, AuditFacts)> {
        // The commit that applies a request says which revision did.
        let mut record = m.record.clone();
        if record.state == ChangeState::Applied && record.applied_revision.is_none() {
            record.applied_revision = Some(self.revision());
        }
        let r = &record;
        if r.version != m.expected_version + 1 {
            return Err(StoreError::Backend(format!(
                "change {}: version {} does not follow {}",
                r.id, r.version, m.expected_version
            )));
        }
        let current: Option<i64> =
            query_scalar::<D, _>("SELECT version FROM changes WHERE id = $1")
                .bind(&r.id)
                .fetch_optional(self.conn)
                .await
                .map_err(D::err("read change"))?;
        match (current, m.expected_version) {
            (Some(_), 0) => {
                return Err(StoreError::AlreadyExists {
                    what: format!("change {}", r.id),
                })
            }
            (None, 0) => {}
            (None, _) => {
                return Err(StoreError::NotFound {
                    what: format!("change {}", r.id),
                })
            }
            (Some(v), expected) if v != expected => {
                return Err(StoreError::ChangeConflict {
                    id: r.id.clone(),
                    expected,
                    actual: v,
                })
            }
            (Some(_), _) => {}
        }
        let text = serde_json::to_string(r)
            .map_err(|e| StoreError::Backend(format!("serialize change {}: {e}", r.id)))?;
        if m.expected_version == 0 {
            query::<D>(
                "INSERT INTO changes (id, version, state, created_at, revision, record) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.id)
            .bind(r.version)
            .bind(r.state.as_str())
            .bind(micros(&r.created_at))
            .bind(self.revision())
            .bind(text)
            .execute(self.conn)
            .await
            .map_err(D::err("insert change"))?;
        } else {
            query::<D>(
                "UPDATE changes SET version = $2, state = $3, revision = $4, record = $5 \
                 WHERE id = $1",
            )
            .bind(&r.id)
            .bind(r.version)
            .bind(r.state.as_str())
            .bind(self.revision())
            .bind(text)
            .execute(self.conn)
            .await
            .map_err(D::err("update change"))?;
        }
        let env = match r.environments.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        let approvals = r.valid_approvals();
        Ok((
            Applied {
                from_version: Some(m.expected_version),
                to_version: Some(r.version),
            },
            AuditFacts {
                env,
                key: Some(r.id.clone()),
                from_version: Some(m.expected_version),
                to_version: Some(r.version),
                detail: json!({
                    "state": r.state.as_str(),
                    "environments": r.environments,
                    "requester": r.requester_actor,
                    "approvals": approvals,
                    "required_approvals": r.required_approvals,
                    "content_hash": r.content_hash,
                    "forced": r.forced,
                    "reason": r.reason,
                    "apply_at": r.apply_at,
                    "applied_revision": r.applied_revision,
                }),
                ..AuditFacts::default()
            },
        ))
    }
}
