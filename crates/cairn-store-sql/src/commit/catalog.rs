//! The catalog inside a commit: apps, environments, schemas.

use cairn_store::{Applied, CreateApp, CreateEnv, PutSchema, StoreError, StoreResult, UpdateEnv};
use serde_json::{json, Value};

use super::{no_versions, AuditFacts, Tx};
use crate::dialect::Dialect;
use crate::query::{query, query_as, query_scalar};
use crate::rows::{micros, to_json_text};

/// An environment's stored settings.
struct EnvSettings {
    description: String,
    protected: bool,
    required_approvals: i32,
    auto_approve: bool,
    strict_flags: bool,
    approvers: Vec<String>,
}

impl EnvSettings {
    fn detail(&self) -> Value {
        let mut d = json!({
            "description": self.description,
            "protected": self.protected,
            "required_approvals": self.required_approvals,
            "auto_approve": self.auto_approve,
            "strict_flags": self.strict_flags,
        });
        // Only when named: records of environments without a list read as
        // they did before approvers existed.
        if !self.approvers.is_empty() {
            d["approvers"] = json!(self.approvers);
        }
        d
    }

    fn approvers_text(&self) -> StoreResult<String> {
        to_json_text(&json!(self.approvers))
    }

    fn facts(&self, name: &str) -> AuditFacts {
        AuditFacts {
            env: Some(name.to_owned()),
            detail: self.detail(),
            ..AuditFacts::default()
        }
    }
}

impl<D: Dialect> Tx<'_, D> {
    pub(super) async fn create_app(&mut self, m: &CreateApp) -> StoreResult<(Applied, AuditFacts)> {
        let (name, description) = (&m.name, &m.description);
        let exists: Option<i32> = query_scalar::<D, _>("SELECT 1 FROM apps WHERE name = $1")
            .bind(name)
            .fetch_optional(self.conn)
            .await
            .map_err(D::err("read app"))?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists {
                what: format!("app {name}"),
            });
        }
        query::<D>(
            "INSERT INTO apps (name, description, created_at, revision) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(description)
        .bind(micros(&self.at))
        .bind(self.revision())
        .execute(self.conn)
        .await
        .map_err(D::err("insert app"))?;
        Ok((
            no_versions(),
            AuditFacts {
                app: Some(name.to_owned()),
                detail: json!({ "description": description }),
                ..AuditFacts::default()
            },
        ))
    }

    /// An environment's settings and the revision they last changed at.
    async fn env_settings(&mut self, name: &str) -> StoreResult<Option<(EnvSettings, i64)>> {
        type Row = (String, bool, i32, bool, bool, String, i64);
        let row: Option<Row> = query_as::<D, _>(
            "SELECT description, protected, required_approvals, auto_approve, strict_flags, \
             approvers, revision FROM environments WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.conn)
        .await
        .map_err(D::err("read environment"))?;
        row.map(
            |(
                description,
                protected,
                required_approvals,
                auto_approve,
                strict_flags,
                approvers,
                revision,
            )| {
                let approvers = serde_json::from_str(&approvers)
                    .map_err(|e| StoreError::Backend(format!("column approvers: {e}")))?;
                Ok((
                    EnvSettings {
                        description,
                        protected,
                        required_approvals,
                        auto_approve,
                        strict_flags,
                        approvers,
                    },
                    revision,
                ))
            },
        )
        .transpose()
    }

    pub(super) async fn create_env(&mut self, m: &CreateEnv) -> StoreResult<(Applied, AuditFacts)> {
        let name = &m.name;
        let s = EnvSettings {
            description: m.description.clone(),
            protected: m.protected,
            required_approvals: m.required_approvals,
            auto_approve: m.auto_approve,
            strict_flags: m.strict_flags,
            approvers: m.approvers.clone(),
        };
        if self.env_settings(name).await?.is_some() {
            return Err(StoreError::AlreadyExists {
                what: format!("environment {name}"),
            });
        }
        query::<D>(
            "INSERT INTO environments (name, description, protected, required_approvals, \
             auto_approve, strict_flags, approvers, created_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(name)
        .bind(&s.description)
        .bind(s.protected)
        .bind(s.required_approvals)
        .bind(s.auto_approve)
        .bind(s.strict_flags)
        .bind(s.approvers_text()?)
        .bind(micros(&self.at))
        .bind(self.revision())
        .execute(self.conn)
        .await
        .map_err(D::err("insert environment"))?;
        Ok((no_versions(), s.facts(name)))
    }

    pub(super) async fn update_env(&mut self, m: &UpdateEnv) -> StoreResult<(Applied, AuditFacts)> {
        let name = &m.name;
        let Some((mut s, revision)) = self.env_settings(name).await? else {
            return Err(StoreError::NotFound {
                what: format!("environment {name}"),
            });
        };
        if let Some(expected) = m.expected_revision {
            if expected != revision {
                return Err(StoreError::EnvConflict {
                    name: name.clone(),
                    expected,
                    actual: revision,
                });
            }
        }
        if let Some(d) = &m.description {
            s.description = d.clone();
        }
        s.protected = m.protected.unwrap_or(s.protected);
        s.required_approvals = m.required_approvals.unwrap_or(s.required_approvals);
        s.auto_approve = m.auto_approve.unwrap_or(s.auto_approve);
        s.strict_flags = m.strict_flags.unwrap_or(s.strict_flags);
        if let Some(a) = &m.approvers {
            s.approvers = a.clone();
        }
        query::<D>(
            "UPDATE environments SET description = $2, protected = $3, required_approvals = $4, \
             auto_approve = $5, strict_flags = $6, approvers = $7, revision = $8 WHERE name = $1",
        )
        .bind(name)
        .bind(&s.description)
        .bind(s.protected)
        .bind(s.required_approvals)
        .bind(s.auto_approve)
        .bind(s.strict_flags)
        .bind(s.approvers_text()?)
        .bind(self.revision())
        .execute(self.conn)
        .await
        .map_err(D::err("update environment"))?;
        Ok((no_versions(), s.facts(name)))
    }

    pub(super) async fn put_schema(&mut self, m: &PutSchema) -> StoreResult<(Applied, AuditFacts)> {
        let (app, pattern) = (m.app.as_deref().unwrap_or(""), m.pattern.as_str());
        let previous: i64 = query_scalar::<D, _>(
            "SELECT COALESCE(MAX(version), 0) FROM schemas WHERE app = $1 AND pattern = $2",
        )
        .bind(app)
        .bind(pattern)
        .fetch_one(self.conn)
        .await
        .map_err(D::err("read schema version"))?;
        let version = previous + 1;
        query::<D>(
            "INSERT INTO schemas (app, pattern, version, schema, revision, actor, message, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(app)
        .bind(pattern)
        .bind(version)
        .bind(to_json_text(&m.schema)?)
        .bind(self.revision())
        .bind(&self.context.actor)
        .bind(&self.context.message)
        .bind(micros(&self.at))
        .execute(self.conn)
        .await
        .map_err(D::err("insert schema"))?;
        Ok((
            Applied {
                from_version: Some(previous),
                to_version: Some(version),
            },
            AuditFacts {
                app: Some(app.to_owned()),
                key: Some(pattern.to_owned()),
                from_version: Some(previous),
                to_version: Some(version),
                detail: json!({}),
                ..AuditFacts::default()
            },
        ))
    }
}
