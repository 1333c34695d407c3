//! Typed calls of the change-request routes (DESIGN.md §7): list, show (with
//! the before/after preview), approve (or force), reject, cancel, rebase and
//! edit. The gated writes themselves are in `entries` ([`super::WriteOutcome`]).

use cairn_api::{ApproveBody, ChangeRecord, ChangeShown, ChangesQuery, EditChangeBody, RejectBody};
use reqwest::Method;

use super::segment;
use crate::{Client, ClientError};

fn change_path(id: &str) -> String {
    format!("/v1/changes/{}", segment(id))
}

impl Client {
    /// `GET /v1/changes`: the requests the caller may read, newest first.
    pub async fn changes(&self, query: &ChangesQuery) -> Result<Vec<ChangeRecord>, ClientError> {
        self.send(self.request(Method::GET, "/v1/changes").query(query))
            .await
    }

    /// `GET /v1/changes/{id}`: the request and what it would change now.
    pub async fn change(&self, id: &str) -> Result<ChangeShown, ClientError> {
        self.send(self.request(Method::GET, &change_path(id))).await
    }

    /// `POST /v1/changes/{id}/approve`: one approval (or, `force` with a
    /// `reason`, an admin's forced apply).
    pub async fn approve_change(
        &self,
        id: &str,
        body: &ApproveBody,
    ) -> Result<ChangeRecord, ClientError> {
        let path = format!("{}/approve", change_path(id));
        self.send(self.request(Method::POST, &path).json(body))
            .await
    }

    /// `POST /v1/changes/{id}/reject`, with the reason.
    pub async fn reject_change(
        &self,
        id: &str,
        body: &RejectBody,
    ) -> Result<ChangeRecord, ClientError> {
        let path = format!("{}/reject", change_path(id));
        self.send(self.request(Method::POST, &path).json(body))
            .await
    }

    /// `POST /v1/changes/{id}/cancel` (the requester or an admin).
    pub async fn cancel_change(&self, id: &str) -> Result<ChangeRecord, ClientError> {
        let path = format!("{}/cancel", change_path(id));
        self.send(self.request(Method::POST, &path)).await
    }

    /// `POST /v1/changes/{id}/rebase`: on the current versions (approvals reset).
    pub async fn rebase_change(&self, id: &str) -> Result<ChangeRecord, ClientError> {
        let path = format!("{}/rebase", change_path(id));
        self.send(self.request(Method::POST, &path)).await
    }

    /// `PATCH /v1/changes/{id}`: new content for a pending request (approvals reset).
    pub async fn edit_change(
        &self,
        id: &str,
        body: &EditChangeBody,
    ) -> Result<ChangeRecord, ClientError> {
        self.send(self.request(Method::PATCH, &change_path(id)).json(body))
            .await
    }
}
