//! Change requests (DESIGN.md §7): list, show with the before/after
//! preview, approve (or force), reject, cancel, rebase, edit. Who may do
//! what to a request is decided in `cairn-core` (`Approvals`); the routes
//! only need a principal allowed to read (lists, show) or write somewhere.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
pub use cairn_api::{
    ApplyCheck, ApproveBody, ChangePreview, ChangeRequested, ChangeShown, ChangesQuery,
    EditChangeBody, EntryChangePreview, EnvChangePreview, EnvPolicy, RejectBody, ViewChangePreview,
};
use cairn_core::approvals::{ChangeContent, Preview};
use cairn_core::{Error, Service};
use cairn_store::{ChangeFilter, ChangeRecord};
use serde_json::Value;

use crate::extract::{Caller, Json, P, Q};
use crate::problem::{ApiResult, Problem};

/// The `202 Accepted` of a gated write: the request, and where it lives.
pub(crate) fn requested(record: &ChangeRecord) -> Response {
    let body = ChangeRequested {
        change_id: record.id.clone(),
        state: record.state,
        approvals: i32::try_from(record.valid_approvals()).unwrap_or(i32::MAX),
        required: record.required_approvals,
        environments: record.environments.clone(),
    };
    let location = HeaderValue::from_str(&format!("/v1/changes/{}", record.id))
        .unwrap_or(HeaderValue::from_static("/v1/changes"));
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// Does `record` change an entry of `app` (or one at a scope reaching it)?
fn reaches_app(record: &ChangeRecord, app: &str) -> bool {
    ChangeContent::parse(record).is_ok_and(|c| {
        c.entries
            .iter()
            .any(|e| e.scope.app.as_deref().is_none_or(|a| a == app))
    })
}

/// Change requests the caller may read, newest first. `env`: requests that
/// need that environment's approval; `app`: requests with an entry of that
/// app or of a scope reaching it.
#[utoipa::path(get, path = "/v1/changes", params(ChangesQuery), tag = "changes",
    responses((status = 200, body = [ChangeRecord])), security(("bearer" = [])))]
pub async fn list_changes(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Q(q): Q<ChangesQuery>,
) -> ApiResult<Json<Vec<ChangeRecord>>> {
    if let Some(limit) = q.limit {
        if limit < 1 {
            return Err(Error::invalid("limit", "must be at least 1").into());
        }
    }
    let narrowed = q.env.is_some() || q.app.is_some();
    let filter = ChangeFilter {
        states: q.state.into_iter().collect(),
        // Narrowed here: the limit counts what is left.
        limit: if narrowed { None } else { q.limit },
    };
    let mut out = svc.approvals().list(&c.who, &filter).await?;
    if let Some(env) = &q.env {
        out.retain(|r| r.environments.iter().any(|e| e == env));
    }
    if let Some(app) = &q.app {
        out.retain(|r| reaches_app(r, app));
    }
    if let Some(limit) = q.limit {
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(Json(out))
}

fn shown(record: ChangeRecord, preview: Preview) -> ChangeShown {
    let kinds = ChangeContent::parse(&record)
        .map(|c| c.entries)
        .unwrap_or_default();
    let entries = preview
        .entries
        .into_iter()
        .map(|e| {
            let kind = kinds
                .iter()
                .find(|k| k.scope == e.scope && k.key == e.key)
                .map(|k| k.kind)
                .unwrap_or_default();
            let diff = cairn_model::diff_values(
                e.before.as_ref().unwrap_or(&Value::Null),
                e.after.as_ref().unwrap_or(&Value::Null),
                "before",
                "after",
            )
            .text;
            EntryChangePreview {
                scope: e.scope,
                key: e.key,
                kind,
                base_version: e.base_version,
                current_version: e.current_version,
                before: e.before,
                after: e.after,
                diff,
            }
        })
        .collect();
    let views = preview
        .views
        .into_iter()
        .map(|v| ViewChangePreview {
            app: v.app,
            env: v.env,
            before: v.before,
            after: v.after,
        })
        .collect();
    let environment = preview.environment.map(|e| {
        let before = e.before.as_ref().map(EnvPolicy::of);
        let after = e.after.as_ref().map(EnvPolicy::of);
        let changed = match (&before, &after) {
            (Some(b), Some(a)) => b.changed(a),
            _ => Vec::new(),
        };
        EnvChangePreview {
            name: e.name,
            base_revision: e.base_revision,
            current_revision: e.current_revision,
            before,
            after,
            changed,
        }
    });
    ChangeShown {
        change: record,
        preview: ChangePreview {
            entries,
            views,
            environment,
            check: preview.check.map(|c| ApplyCheck {
                applies: c.applies,
                problem: c.problem,
            }),
        },
    }
}

/// A change request with what it would change: each entry before and after
/// (and its diff), and every resolved view it reaches before and after; for
/// a change of an environment's policy, its settings before and after.
#[utoipa::path(get, path = "/v1/changes/{id}", params(("id" = String, Path, description = "chg_…")), tag = "changes",
    responses((status = 200, body = ChangeShown), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_change(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
) -> ApiResult<Json<ChangeShown>> {
    let (record, preview) = svc.approvals().show(&c.who, &id).await?;
    Ok(Json(shown(record, preview)))
}

/// Approve a pending request (never its requester; once per principal).
/// After the last approval it applies (or waits as `scheduled` for its
/// `apply_at`); `force: true` (admins, with a `reason`) applies it now.
#[utoipa::path(post, path = "/v1/changes/{id}/approve", params(("id" = String, Path)), request_body = ApproveBody, tag = "changes",
    responses((status = 200, body = ChangeRecord, description = "its state: pending, scheduled, applied or conflicted"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve_change(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
    Json(body): Json<ApproveBody>,
) -> ApiResult<Json<ChangeRecord>> {
    let record = if body.force {
        let reason = body.reason.unwrap_or_default();
        svc.approvals()
            .force(&c.who, &c.origin, &id, &reason)
            .await?
    } else {
        if body.reason.is_some() {
            return Err(Error::invalid("reason", "a reason goes with force: true").into());
        }
        svc.approvals()
            .approve(&c.who, &c.origin, &id, &body.note)
            .await?
    };
    Ok(Json(record))
}

/// Reject an open request, with a reason.
#[utoipa::path(post, path = "/v1/changes/{id}/reject", params(("id" = String, Path)), request_body = RejectBody, tag = "changes",
    responses((status = 200, body = ChangeRecord), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn reject_change(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
    Json(body): Json<RejectBody>,
) -> ApiResult<Json<ChangeRecord>> {
    Ok(Json(
        svc.approvals()
            .reject(&c.who, &c.origin, &id, &body.reason)
            .await?,
    ))
}

/// Withdraw an open or conflicted request (its requester or an admin).
#[utoipa::path(post, path = "/v1/changes/{id}/cancel", params(("id" = String, Path)), tag = "changes",
    responses((status = 200, body = ChangeRecord), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel_change(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
) -> ApiResult<Json<ChangeRecord>> {
    Ok(Json(svc.approvals().cancel(&c.who, &c.origin, &id).await?))
}

/// Base a pending or conflicted request on the current versions of its
/// entries (approvals reset; its requester or an admin).
#[utoipa::path(post, path = "/v1/changes/{id}/rebase", params(("id" = String, Path)), tag = "changes",
    responses((status = 200, body = ChangeRecord), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn rebase_change(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
) -> ApiResult<Json<ChangeRecord>> {
    Ok(Json(svc.approvals().rebase(&c.who, &c.origin, &id).await?))
}

/// Replace the entries of a pending request (approvals reset; its
/// requester or an admin).
#[utoipa::path(patch, path = "/v1/changes/{id}", params(("id" = String, Path)), request_body = EditChangeBody, tag = "changes",
    responses((status = 200, body = ChangeRecord), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn edit_change(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
    Json(body): Json<EditChangeBody>,
) -> ApiResult<Json<ChangeRecord>> {
    // The request keeps the message it was made with (`Approvals::edit`
    // takes none); `message` is accepted for the CLI's `-m` and not stored.
    let items = super::entries::change_items(body.entries)?;
    Ok(Json(
        svc.approvals().edit(&c.who, &c.origin, &id, items).await?,
    ))
}
