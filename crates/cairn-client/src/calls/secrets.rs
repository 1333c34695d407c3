//! Typed calls of the secret routes. Metadata, written versions and a
//! rekey's outcome are `cairn_core` types, returned as JSON.

use cairn_api::{
    CreateSecretBody, DeleteSecretQuery, RekeyBody, RevealedSecret, RotateSecretBody,
    SecretDeleted, SecretQuery, SecretScopeQuery,
};
use reqwest::Method;
use serde_json::Value;

use super::At;
use crate::{key_path, Client, ClientError};

fn path(name: &str) -> String {
    format!("/v1/secrets/{}", key_path(name))
}

fn owned(at: At<'_>) -> (Option<String>, Option<String>) {
    (at.app.map(str::to_owned), at.env.map(str::to_owned))
}

impl Client {
    /// `GET /v1/secrets`: metadata of every secret the caller can see
    /// (`cairn_core::secrets::SecretInfo`, as JSON).
    pub async fn secrets(&self) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/v1/secrets")).await
    }

    /// `POST /v1/secrets`: `{name, version, revision}`
    /// (`cairn_core::secrets::SecretWritten`, as JSON).
    pub async fn create_secret(&self, body: &CreateSecretBody) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, "/v1/secrets").json(body))
            .await
    }

    /// `GET /v1/secrets/{name}`: metadata and versions, never the value
    /// (`cairn_core::secrets::SecretInfo`, as JSON).
    pub async fn secret(&self, at: At<'_>, name: &str) -> Result<Value, ClientError> {
        let (app, env) = owned(at);
        let q = SecretQuery {
            app,
            env,
            version: None,
            reveal: false,
        };
        self.send(self.request(Method::GET, &path(name)).query(&q))
            .await
    }

    /// `GET /v1/secrets/{name}?reveal=true`: the plaintext of the current
    /// version, or of `version` (admins; audited).
    pub async fn reveal_secret(
        &self,
        at: At<'_>,
        name: &str,
        version: Option<i64>,
    ) -> Result<RevealedSecret, ClientError> {
        let (app, env) = owned(at);
        let q = SecretQuery {
            app,
            env,
            version,
            reveal: true,
        };
        self.send(self.request(Method::GET, &path(name)).query(&q))
            .await
    }

    /// `POST /v1/secret-rotate/{name}`: `{name, version, revision}`
    /// (`cairn_core::secrets::SecretWritten`, as JSON).
    pub async fn rotate_secret(
        &self,
        at: At<'_>,
        name: &str,
        body: &RotateSecretBody,
    ) -> Result<Value, ClientError> {
        let (app, env) = owned(at);
        let q = SecretScopeQuery { app, env };
        let path = format!("/v1/secret-rotate/{}", key_path(name));
        self.send(self.request(Method::POST, &path).query(&q).json(body))
            .await
    }

    /// `DELETE /v1/secrets/{name}` with the reason; `force` even while
    /// configuration references it.
    pub async fn delete_secret(
        &self,
        at: At<'_>,
        name: &str,
        message: &str,
        force: bool,
    ) -> Result<SecretDeleted, ClientError> {
        let (app, env) = owned(at);
        let q = DeleteSecretQuery {
            app,
            env,
            message: Some(message.to_owned()),
            force,
        };
        self.send(self.request(Method::DELETE, &path(name)).query(&q))
            .await
    }

    /// `POST /v1/admin/rekey`: `{kek_id, rewrapped, unchanged, skipped}`
    /// (`cairn_core::secrets::Rekeyed`, as JSON).
    pub async fn rekey(&self, body: &RekeyBody) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, "/v1/admin/rekey").json(body))
            .await
    }
}
