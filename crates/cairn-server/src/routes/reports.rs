//! SDK reports: applied state per instance and locally counted flag
//! evaluations (`POST /v1/report`), and the applied state of a view
//! (`GET /v1/applied`). Reports are telemetry, not audited mutations (see
//! `cairn_core::applied`).

use std::sync::Arc;

use axum::extract::State;
use cairn_core::applied::{AppliedInstance, EvaluationCount, Report, ReportAccepted};
use cairn_core::{Error, Service};
use cairn_model::Revision;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{Caller, Json, Q};
use crate::problem::{ApiResult, Problem};

/// A report from one SDK instance. `app` and `env` name the view; an SDK
/// token bound to one view may leave them out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    pub app: Option<String>,
    pub env: Option<String>,
    /// The reporting instance: `[A-Za-z0-9._:@/-]`, at most 128 bytes.
    pub instance: String,
    /// Revision of the resolved view the instance applied.
    pub revision: Revision,
    /// Checksum of that view (`sha256:…`).
    pub checksum: String,
    /// Evaluations counted since the last report (each count ≥ 0; at most 1000 entries).
    #[serde(default)]
    pub evaluations: Vec<EvaluationCount>,
}

/// Report what an SDK instance applied (revision, checksum) and how often it
/// evaluated each flag variant since its last report. The applied state
/// replaces the instance's previous report; counts add to the flag counts of
/// `GET /v1/flags`. Needs `resolve` on the view. Not an audited change.
#[utoipa::path(post, path = "/v1/report", request_body = ReportBody, tag = "sdk",
    responses((status = 200, body = ReportAccepted), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn report(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(body): Json<ReportBody>,
) -> ApiResult<Json<ReportAccepted>> {
    let ReportBody {
        app,
        env,
        instance,
        revision,
        checksum,
        evaluations,
    } = body;
    let (app, env) = match (app, env) {
        (Some(a), Some(e)) => (a, e),
        (None, None) => {
            let Some((a, e)) = c.who.bound_view() else {
                return Err(Error::invalid(
                    "app",
                    "this token is not bound to one app and environment: give app and env",
                )
                .into());
            };
            (a.to_owned(), e.to_owned())
        }
        (None, Some(_)) => return Err(Error::invalid("app", "give app together with env").into()),
        (Some(_), None) => return Err(Error::invalid("env", "give env together with app").into()),
    };
    let report = Report {
        instance,
        revision,
        checksum,
        evaluations,
    };
    Ok(Json(
        svc.telemetry().report(&c.who, &app, &env, &report).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AppliedQuery {
    pub app: String,
    pub env: String,
}

/// The last report of every SDK instance of (app, env): revision, checksum,
/// report time, and whether the checksum is the view's current one.
#[utoipa::path(get, path = "/v1/applied", params(AppliedQuery), tag = "sdk",
    responses((status = 200, body = [AppliedInstance]), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn applied(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Q(q): Q<AppliedQuery>,
) -> ApiResult<Json<Vec<AppliedInstance>>> {
    Ok(Json(svc.telemetry().applied(&c.who, &q.app, &q.env).await?))
}
