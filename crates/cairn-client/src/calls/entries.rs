//! Typed calls of the entry routes.

use cairn_api::{ChangeRequested, EntryVersion, WriteResult};
use reqwest::{Method, StatusCode};
use serde::Serialize;

use super::At;
use crate::{key_path, present, read_json, Client, ClientError};

/// What a write did: written at once (`200`, answering a `W`: the
/// [`WriteResult`] of entry writes, the `Revised` of an environment's
/// settings), or, where it needs approval (a protected environment,
/// DESIGN.md §7), turned into a change request (`202`,
/// `Location: /v1/changes/{change_id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum WriteOutcome<W = WriteResult> {
    Written(W),
    Requested(ChangeRequested),
}

impl<W> WriteOutcome<W> {
    /// The result of a write that was not gated (`None`: a change request).
    pub fn written(self) -> Option<W> {
        match self {
            WriteOutcome::Written(r) => Some(r),
            WriteOutcome::Requested(_) => None,
        }
    }

    /// The change request a gated write became (`None`: written at once).
    pub fn requested(&self) -> Option<&ChangeRequested> {
        match self {
            WriteOutcome::Written(_) => None,
            WriteOutcome::Requested(c) => Some(c),
        }
    }
}

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

    /// A gated write: `200` with a `W` or `202 ChangeRequested`.
    pub(super) async fn send_write<W: serde::de::DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<WriteOutcome<W>, ClientError> {
        let resp = rb
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if resp.status() == StatusCode::ACCEPTED {
            Ok(WriteOutcome::Requested(read_json(resp).await?))
        } else {
            Ok(WriteOutcome::Written(read_json(resp).await?))
        }
    }

    /// `PUT /v1/entries/{key}`.
    pub async fn put_entry(
        &self,
        at: At<'_>,
        key: &str,
        body: &cairn_api::SetEntryBody,
    ) -> Result<WriteOutcome, ClientError> {
        let rb = self
            .request(Method::PUT, &format!("/v1/entries/{}", key_path(key)))
            .query(&present(&at.query()))
            .json(body);
        self.send_write(rb).await
    }

    /// `DELETE /v1/entries/{key}` (a tombstone version), with the reason.
    pub async fn delete_entry(
        &self,
        at: At<'_>,
        key: &str,
        message: &str,
        expected_version: Option<i64>,
    ) -> Result<WriteOutcome, ClientError> {
        self.delete_entry_at(at, key, message, expected_version, None)
            .await
    }

    /// `DELETE /v1/entries/{key}`, applied at `apply_at` once approved when
    /// it needs approval.
    pub async fn delete_entry_at(
        &self,
        at: At<'_>,
        key: &str,
        message: &str,
        expected_version: Option<i64>,
        apply_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<WriteOutcome, ClientError> {
        let mut q = at.query();
        q.push(("message", Some(message.to_owned())));
        q.push(("expected_version", expected_version.map(|v| v.to_string())));
        q.push(("apply_at", apply_at.map(|t| t.to_rfc3339())));
        let rb = self
            .request(Method::DELETE, &format!("/v1/entries/{}", key_path(key)))
            .query(&present(&q));
        self.send_write(rb).await
    }

    /// `POST /v1/changes`: several entries, one revision.
    pub async fn change_set(
        &self,
        body: &cairn_api::ChangeSetBody,
    ) -> Result<WriteOutcome, ClientError> {
        self.send_write(self.request(Method::POST, "/v1/changes").json(body))
            .await
    }

    /// `POST /v1/rollback/{key}`: a new version equal to an older one.
    pub async fn rollback(
        &self,
        at: At<'_>,
        key: &str,
        body: &cairn_api::RollbackBody,
    ) -> Result<WriteOutcome, ClientError> {
        let rb = self
            .request(Method::POST, &format!("/v1/rollback/{}", key_path(key)))
            .query(&present(&at.query()))
            .json(body);
        self.send_write(rb).await
    }
}
