//! Entries: read, write, delete, change sets, history, diff, rollback, and
//! the resolved view of (app, env).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
pub use cairn_api::{
    ChangeEntryBody, ChangeSetBody, RollbackBody, SetEntryBody, WriteResult, WrittenEntry,
};
use cairn_core::approvals::{Outcome, RequestOptions};
use cairn_core::{ChangeItem, Error, ResolvedView, Service, Written};
use cairn_model::{EntryKind, Revision, Scope, ValueDiff};
use cairn_store::{AuditAction, EntryVersion};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{Caller, IfNoneMatch, Json, P, Q};
use crate::problem::{ApiResult, Problem};

/// The scope of an entry: no `app` (or `global`) is global, no `env` (or `all`) is every environment.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    pub app: Option<String>,
    pub env: Option<String>,
}

impl ScopeQuery {
    fn scope(&self) -> Result<Scope, Error> {
        Ok(Scope::parse(self.app.as_deref(), self.env.as_deref())?)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    /// Key glob: `*` within a segment, `**` across segments.
    pub filter: Option<String>,
    pub kind: Option<EntryKind>,
    /// List as of this revision.
    pub revision: Option<Revision>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    /// A specific version of the entry.
    pub version: Option<i64>,
    /// The entry as of this revision.
    pub revision: Option<Revision>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    /// Why (required).
    pub message: Option<String>,
    pub expected_version: Option<i64>,
    /// When the delete needs approval: apply at this time once approved (RFC 3339).
    pub apply_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResolveQuery {
    /// Resolve as of this revision (read from the database).
    pub revision: Option<Revision>,
    /// Long poll: answer once the view's revision is past this one …
    pub index: Option<Revision>,
    /// … or after this long (`30s`, `500ms`, `2m`; default 30s, at most 5m), with the current view.
    pub wait: Option<String>,
    /// Substitute `{"$secret": name}` references with plaintext where the
    /// caller may read them (admins; SDK tokens of this view). Never cached.
    #[serde(default)]
    pub secrets: bool,
}

/// `config?secrets=true`: the values with secrets substituted, at the revision
/// they were read at (no checksum or ETag: never cached).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // additionalProperties: false, so `oneOf` tells the two apart
#[allow(dead_code)] // documents the wire shape; the body is built in `resolved`
pub struct ResolvedWithSecrets {
    app: String,
    env: String,
    revision: Revision,
    #[schema(value_type = Object)]
    values: Value,
}

/// The body of `GET /v1/apps/{app}/envs/{env}/config`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ConfigBody {
    View(ResolvedView),
    WithSecrets(ResolvedWithSecrets),
}

fn write_result(written: Written, targets: Vec<(Scope, String)>) -> WriteResult {
    let Written {
        committed,
        warnings,
    } = written;
    let changes = targets
        .into_iter()
        .zip(committed.applied)
        .map(|((scope, key), a)| WrittenEntry {
            scope,
            key,
            version: a.to_version.unwrap_or(0),
            previous_version: a.from_version.unwrap_or(0),
        })
        .collect();
    WriteResult {
        revision: committed.revision,
        changes,
        warnings,
    }
}

/// What a gated write answers: `200` with the [`WriteResult`] when it was
/// written, `202` with a [`cairn_api::ChangeRequested`] and `Location` when
/// it became a change request.
fn outcome_response(outcome: Outcome, targets: Vec<(Scope, String)>) -> Response {
    match outcome {
        Outcome::Written(w) => Json(write_result(w, targets)).into_response(),
        Outcome::Requested(record) => crate::routes::changes::requested(&record),
    }
}

/// List entries at exactly one scope.
#[utoipa::path(get, path = "/v1/entries", params(ListQuery), tag = "entries",
    responses((status = 200, body = [EntryVersion]), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn list_entries(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<Vec<EntryVersion>>> {
    let scope = Scope::parse(q.app.as_deref(), q.env.as_deref()).map_err(Error::from)?;
    let out = match q.revision {
        Some(rev) => {
            svc.config()
                .list_at(&c.who, &scope, rev, q.filter.as_deref(), q.kind)
                .await?
        }
        None => svc
            .config()
            .list(&c.who, &scope, q.filter.as_deref(), q.kind)?
            .into_iter()
            .map(|e| (*e).clone())
            .collect(),
    };
    Ok(Json(out))
}

/// Read an entry: current, a version, or as of a revision.
#[utoipa::path(get, path = "/v1/entries/{key}", params(("key" = String, Path, description = "e.g. database/pool"), GetQuery), tag = "entries",
    responses((status = 200, body = EntryVersion), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_entry(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(key): P<String>,
    Q(q): Q<GetQuery>,
) -> ApiResult<Json<EntryVersion>> {
    let scope = ScopeQuery {
        app: q.app,
        env: q.env,
    }
    .scope()?;
    let e = match (q.version, q.revision) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("version", "give version or revision, not both").into())
        }
        (Some(v), None) => svc.config().entry_version(&c.who, &scope, &key, v).await?,
        (None, Some(r)) => svc.config().get_at(&c.who, &scope, &key, r).await?,
        (None, None) => (*svc.config().get(&c.who, &scope, &key)?).clone(),
    };
    Ok(Json(e))
}

/// Write a new version of an entry.
#[utoipa::path(put, path = "/v1/entries/{key}", params(("key" = String, Path), ScopeQuery), request_body = SetEntryBody, tag = "entries",
    responses((status = 200, body = WriteResult), (status = 202, body = cairn_api::ChangeRequested, description = "needs approval: a change request", headers(("Location" = String))), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn set_entry(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(key): P<String>,
    Q(q): Q<ScopeQuery>,
    Json(body): Json<SetEntryBody>,
) -> ApiResult<Response> {
    let scope = q.scope()?;
    let item = ChangeItem {
        scope: scope.clone(),
        key: key.clone(),
        kind: body.kind,
        merge: body.merge,
        value: Some(body.value),
        expected_version: body.expected_version,
    };
    let opts = RequestOptions {
        apply_at: body.apply_at,
    };
    let outcome = svc
        .approvals()
        .write_entries(&c.who, &c.origin, &body.message, vec![item], None, opts)
        .await?;
    Ok(outcome_response(outcome, vec![(scope, key)]))
}

/// Delete an entry (writes a tombstone version).
#[utoipa::path(delete, path = "/v1/entries/{key}", params(("key" = String, Path), DeleteQuery), tag = "entries",
    responses((status = 200, body = WriteResult), (status = 202, body = cairn_api::ChangeRequested, description = "needs approval: a change request", headers(("Location" = String))), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn delete_entry(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(key): P<String>,
    Q(q): Q<DeleteQuery>,
) -> ApiResult<Response> {
    let scope = ScopeQuery {
        app: q.app,
        env: q.env,
    }
    .scope()?;
    let message = q.message.unwrap_or_default();
    // As `Config::delete_entry`, through the gate.
    if message.trim().is_empty() {
        return Err(Error::invalid("message", "a delete needs a message saying why").into());
    }
    let current = svc.config().get(&c.who, &scope, &key)?;
    let item = ChangeItem {
        scope: scope.clone(),
        key: key.clone(),
        kind: current.kind,
        merge: current.merge,
        value: None,
        expected_version: q.expected_version,
    };
    let opts = RequestOptions {
        apply_at: q.apply_at,
    };
    let outcome = svc
        .approvals()
        .write_entries(&c.who, &c.origin, &message, vec![item], None, opts)
        .await?;
    Ok(outcome_response(outcome, vec![(scope, key)]))
}

/// Commit several entry changes atomically as one revision.
#[utoipa::path(post, path = "/v1/changes", request_body = ChangeSetBody, tag = "entries",
    responses((status = 200, body = WriteResult), (status = 202, body = cairn_api::ChangeRequested, description = "needs approval: a change request", headers(("Location" = String))), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn change_set(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(body): Json<ChangeSetBody>,
) -> ApiResult<Response> {
    let items = change_items(body.entries)?;
    let targets = items
        .iter()
        .map(|i| (i.scope.clone(), i.key.clone()))
        .collect();
    let opts = RequestOptions {
        apply_at: body.apply_at,
    };
    let outcome = svc
        .approvals()
        .write_entries(&c.who, &c.origin, &body.message, items, None, opts)
        .await?;
    Ok(outcome_response(outcome, targets))
}

/// The entries of a change set (`POST /v1/changes`, `PATCH /v1/changes/{id}`)
/// as the write path takes them: a delete carries no value, anything else
/// one (400 naming `entries[i].value`).
pub(super) fn change_items(entries: Vec<ChangeEntryBody>) -> Result<Vec<ChangeItem>, Error> {
    let mut items = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let scope = Scope::parse(e.app.as_deref(), e.env.as_deref())?;
        let value = match (e.delete, e.value) {
            (true, None) => None,
            (false, Some(v)) => Some(v),
            (true, Some(_)) => {
                return Err(Error::invalid(
                    format!("entries[{i}].value"),
                    "a delete carries no value",
                ))
            }
            (false, None) => {
                return Err(Error::invalid(
                    format!("entries[{i}].value"),
                    "missing value",
                ))
            }
        };
        items.push(ChangeItem {
            scope,
            key: e.key,
            kind: e.kind,
            merge: e.merge,
            value,
            expected_version: e.expected_version,
        });
    }
    Ok(items)
}

/// Every version of an entry, oldest first.
#[utoipa::path(get, path = "/v1/history/{key}", params(("key" = String, Path), ScopeQuery), tag = "entries",
    responses((status = 200, body = [EntryVersion]), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn history(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(key): P<String>,
    Q(q): Q<ScopeQuery>,
) -> ApiResult<Json<Vec<EntryVersion>>> {
    Ok(Json(svc.config().history(&c.who, &q.scope()?, &key).await?))
}

/// Diff two versions: an RFC 6902 patch and a unified text diff.
#[utoipa::path(get, path = "/v1/diff/{key}", params(("key" = String, Path), DiffQuery), tag = "entries",
    responses((status = 200, body = ValueDiff), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn diff(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(key): P<String>,
    Q(q): Q<DiffQuery>,
) -> ApiResult<Json<ValueDiff>> {
    let scope = ScopeQuery {
        app: q.app,
        env: q.env,
    }
    .scope()?;
    Ok(Json(
        svc.config()
            .diff(&c.who, &scope, &key, q.from, q.to)
            .await?,
    ))
}

/// Write a new version equal to an older one.
#[utoipa::path(post, path = "/v1/rollback/{key}", params(("key" = String, Path), ScopeQuery), request_body = RollbackBody, tag = "entries",
    responses((status = 200, body = WriteResult), (status = 202, body = cairn_api::ChangeRequested, description = "needs approval: a change request", headers(("Location" = String))), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(key): P<String>,
    Q(q): Q<ScopeQuery>,
    Json(body): Json<RollbackBody>,
) -> ApiResult<Response> {
    let scope = q.scope()?;
    // As `Config::rollback`, through the gate.
    if body.message.trim().is_empty() {
        return Err(Error::invalid("message", "a rollback needs a message saying why").into());
    }
    let target = svc
        .config()
        .entry_version(&c.who, &scope, &key, body.version)
        .await?;
    let Some(value) = target.value else {
        return Err(Error::invalid(
            "version",
            format!("version {} of {key} is a delete", body.version),
        )
        .into());
    };
    let item = ChangeItem {
        scope: scope.clone(),
        key: key.clone(),
        kind: target.kind,
        merge: target.merge,
        value: Some(value),
        expected_version: body.expected_version,
    };
    let opts = RequestOptions {
        apply_at: body.apply_at,
    };
    let outcome = svc
        .approvals()
        .write_entries(
            &c.who,
            &c.origin,
            &body.message,
            vec![item],
            Some(AuditAction::EntryRollback),
            opts,
        )
        .await?;
    Ok(outcome_response(outcome, vec![(scope, key)]))
}

/// The resolved configuration of (app, env). Honours `If-None-Match` (304).
/// Long poll with `index` (and `wait`): answers as soon as the view's
/// revision is past `index`, or after `wait` with the current view.
#[utoipa::path(get, path = "/v1/apps/{app}/envs/{env}/config", params(("app" = String, Path), ("env" = String, Path), ResolveQuery), tag = "entries",
    responses((status = 200, body = ConfigBody, description = "the view; with `secrets=true`, the values with secrets substituted (`Cache-Control: no-store`, no `ETag`)",
        headers(("ETag" = String))), (status = 304), (status = 404, body = Problem), (status = 410, body = Problem)),
    security(("bearer" = [])))]
pub async fn resolved(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P((app, env)): P<(String, String)>,
    Q(q): Q<ResolveQuery>,
    inm: IfNoneMatch,
) -> ApiResult<Response> {
    if q.secrets {
        if q.revision.is_some() || q.index.is_some() || q.wait.is_some() {
            return Err(Error::invalid(
                "secrets",
                "cannot be combined with revision, index or wait",
            )
            .into());
        }
        // One snapshot: the revision is the one the values were read at.
        let resolved = svc
            .secrets()
            .resolve_with_secrets(&c.who, &c.origin, &app, &env)
            .await?;
        let body = serde_json::json!({
            "app": app,
            "env": env,
            "revision": resolved.view.revision,
            "values": resolved.values,
        });
        let mut resp = Json(body).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(resp);
    }
    let wait = q
        .wait
        .as_deref()
        .map(crate::routes::watch::parse_wait)
        .transpose()?;
    let view = match (q.revision, q.index) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("index", "cannot be combined with revision").into())
        }
        (Some(rev), None) => Arc::new(svc.config().resolve_at(&c.who, &app, &env, rev).await?),
        (None, Some(index)) => {
            let wait = wait.unwrap_or(std::time::Duration::from_secs(30));
            crate::routes::watch::wait_view(&svc, &c.who, &app, &env, index, wait).await?
        }
        (None, None) => svc.config().resolve(&c.who, &app, &env)?,
    };
    Ok(view_response(&view, &inm))
}

fn view_response(view: &ResolvedView, inm: &IfNoneMatch) -> Response {
    let etag = HeaderValue::from_str(&view.etag).unwrap_or(HeaderValue::from_static("\"\""));
    if inm.matches(&view.etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
        ],
        view.body.clone(),
    )
        .into_response()
}
