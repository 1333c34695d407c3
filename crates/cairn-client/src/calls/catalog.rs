//! Typed calls of the catalog routes.

use reqwest::Method;
use serde_json::Value;

use super::WriteOutcome;
use crate::{key_path, Client, ClientError};

/// Typed calls of the catalog routes (apps, environments, schemas).
impl Client {
    /// `POST /v1/apps`.
    pub async fn create_app(
        &self,
        body: &cairn_api::CreateAppBody,
    ) -> Result<cairn_api::Revised, ClientError> {
        self.send(self.request(Method::POST, "/v1/apps").json(body))
            .await
    }

    /// `POST /v1/envs` (`body.name` names it).
    pub async fn create_env(
        &self,
        body: &cairn_api::EnvBody,
    ) -> Result<cairn_api::Revised, ClientError> {
        self.send(self.request(Method::POST, "/v1/envs").json(body))
            .await
    }

    /// `PATCH /v1/envs/{env}`: change its settings (and policy). A change
    /// of a gated environment's policy needs its approval: a change request.
    pub async fn update_env(
        &self,
        name: &str,
        body: &cairn_api::EnvBody,
    ) -> Result<WriteOutcome<cairn_api::Revised>, ClientError> {
        let path = format!("/v1/envs/{}", key_path(name));
        self.send_write(self.request(Method::PATCH, &path).json(body))
            .await
    }

    /// `POST /v1/schemas`: the registered version and any forced drift.
    pub async fn register_schema(
        &self,
        body: &cairn_api::RegisterSchemaBody,
    ) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, "/v1/schemas").json(body))
            .await
    }

    /// `POST /v1/schemas/validate`: `{valid, violations}`, writing nothing.
    pub async fn validate(&self, body: &cairn_api::ValidateBody) -> Result<Value, ClientError> {
        self.send(
            self.request(Method::POST, "/v1/schemas/validate")
                .json(body),
        )
        .await
    }
}
