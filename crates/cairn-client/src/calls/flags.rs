//! Typed calls of the flag reads: OFREP evaluation (its own wire types), the
//! flagd document (flagd's format, as JSON), and the flag list, staleness and
//! lint (`cairn_core::{FlagInfo, FlagLint}`, as JSON).

use cairn_api::{FlagsQuery, OfrepBulk, OfrepRequest, OfrepSuccess, StaleQuery};
use reqwest::Method;
use serde_json::Value;

use super::segment;
use crate::{key_path, Client, ClientError};

fn view(app: &str, env: &str) -> String {
    format!("/v1/apps/{}/envs/{}", segment(app), segment(env))
}

impl Client {
    /// `GET /v1/flags`: flags per (app, env) with their lifecycle data.
    pub async fn flags(&self, query: &FlagsQuery) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/v1/flags").query(query))
            .await
    }

    /// `GET /v1/flags/stale`: flags not evaluated for `days` days.
    pub async fn stale_flags(&self, query: &StaleQuery) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/v1/flags/stale").query(query))
            .await
    }

    /// `GET /v1/flags/lint`: per (app, env), `warnings` and `errors`.
    pub async fn lint_flags(&self, query: &FlagsQuery) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/v1/flags/lint").query(query))
            .await
    }

    /// `GET /v1/apps/{app}/envs/{env}/flagd.json`: the flagd document.
    pub async fn flagd_document(&self, app: &str, env: &str) -> Result<Value, ClientError> {
        let path = format!("{}/flagd.json", view(app, env));
        self.send(self.request(Method::GET, &path)).await
    }

    /// OFREP single-flag evaluation in (app, env). An OFREP failure
    /// (`FLAG_NOT_FOUND`, `PARSE_ERROR`, …) is a [`ClientError::Api`] whose
    /// problem carries the `errorCode`.
    pub async fn evaluate_flag(
        &self,
        app: &str,
        env: &str,
        key: &str,
        request: &OfrepRequest,
    ) -> Result<OfrepSuccess<'static>, ClientError> {
        let path = format!(
            "{}/ofrep/v1/evaluate/flags/{}",
            view(app, env),
            key_path(key)
        );
        self.send(self.request(Method::POST, &path).json(request))
            .await
    }

    /// OFREP bulk evaluation in (app, env): every flag, successes and failures.
    pub async fn evaluate_flags(
        &self,
        app: &str,
        env: &str,
        request: &OfrepRequest,
    ) -> Result<OfrepBulk<'static>, ClientError> {
        let path = format!("{}/ofrep/v1/evaluate/flags", view(app, env));
        self.send(self.request(Method::POST, &path).json(request))
            .await
    }
}
