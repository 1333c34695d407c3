//! Typed calls of the entry routes.

use cairn_api::EntryVersion;
use reqwest::Method;

use super::At;
use crate::{key_path, present, Client, ClientError};

/// Typed calls of the entry routes, with the server's own wire types
/// (`cairn_api`): one definition per type on both sides of the socket.
impl Client {
    /// `GET /v1/entries/{key}`: current, a `version`, or as of a `revision`.
    pub async fn entry(
        &self,
        at: At<'_>,
        key: &str,
        version: Option<i64>,
        revision: Option<i64>,
    ) -> Result<EntryVersion, ClientError> {
        let mut q = at.query();
        q.push(("version", version.map(|v| v.to_string())));
        q.push(("revision", revision.map(|v| v.to_string())));
        self.get(&format!("/v1/entries/{}", key_path(key)), &q)
            .await
    }

    /// `PUT /v1/entries/{key}`.
    pub async fn put_entry(
        &self,
        at: At<'_>,
        key: &str,
        body: &cairn_api::SetEntryBody,
    ) -> Result<cairn_api::WriteResult, ClientError> {
        let rb = self
            .request(Method::PUT, &format!("/v1/entries/{}", key_path(key)))
            .query(&present(&at.query()))
            .json(body);
        self.send(rb).await
    }

    /// `DELETE /v1/entries/{key}` (a tombstone version), with the reason.
    pub async fn delete_entry(
        &self,
        at: At<'_>,
        key: &str,
        message: &str,
        expected_version: Option<i64>,
    ) -> Result<cairn_api::WriteResult, ClientError> {
        let mut q = at.query();
        q.push(("message", Some(message.to_owned())));
        q.push(("expected_version", expected_version.map(|v| v.to_string())));
        let rb = self
            .request(Method::DELETE, &format!("/v1/entries/{}", key_path(key)))
            .query(&present(&q));
        self.send(rb).await
    }

    /// `POST /v1/changes`: several entries, one revision.
    pub async fn change_set(
        &self,
        body: &cairn_api::ChangeSetBody,
    ) -> Result<cairn_api::WriteResult, ClientError> {
        self.send(self.request(Method::POST, "/v1/changes").json(body))
            .await
    }

    /// `POST /v1/rollback/{key}`: a new version equal to an older one.
    pub async fn rollback(
        &self,
        at: At<'_>,
        key: &str,
        body: &cairn_api::RollbackBody,
    ) -> Result<cairn_api::WriteResult, ClientError> {
        let rb = self
            .request(Method::POST, &format!("/v1/rollback/{}", key_path(key)))
            .query(&present(&at.query()))
            .json(body);
        self.send(rb).await
    }
}
