//! Typed calls of the identity routes: login, users, tokens, the audit log.

use cairn_api::{
    AuditQuery, AuditRecord, CreateTokenBody, CreateUserBody, LoginBody, Revised, UpdateUserBody,
    UserRecord,
};
use reqwest::Method;
use serde_json::Value;

use super::segment;
use crate::{Client, ClientError};

/// One page of `GET /v1/audit`: the records, oldest first, and the `after`
/// of the next page when the server's `Link: <…>; rel="next"` says one follows.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub next: Option<i64>,
}

impl Client {
    /// `POST /v1/login`: `{token, id, revision}` (`cairn_core::CreatedToken`,
    /// as JSON).
    pub async fn login(&self, body: &LoginBody) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, "/v1/login").json(body))
            .await
    }

    /// `GET /v1/users`.
    pub async fn users(&self) -> Result<Vec<UserRecord>, ClientError> {
        self.send(self.request(Method::GET, "/v1/users")).await
    }

    /// `POST /v1/users`.
    pub async fn create_user(&self, body: &CreateUserBody) -> Result<Revised, ClientError> {
        self.send(self.request(Method::POST, "/v1/users").json(body))
            .await
    }

    /// `PATCH /v1/users/{name}`: password, bindings (all of them), disabled.
    pub async fn update_user(
        &self,
        name: &str,
        body: &UpdateUserBody,
    ) -> Result<Revised, ClientError> {
        let path = format!("/v1/users/{}", segment(name));
        self.send(self.request(Method::PATCH, &path).json(body))
            .await
    }

    /// `GET /v1/tokens`, as JSON: `cairn_store::TokenRecord` cannot be read
    /// back (its `hash` is never serialized and has no default).
    pub async fn tokens(&self) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/v1/tokens")).await
    }

    /// `POST /v1/tokens`: `{token, id, revision}` (`cairn_core::CreatedToken`,
    /// as JSON); the secret is shown only here.
    pub async fn create_token(&self, body: &CreateTokenBody) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, "/v1/tokens").json(body))
            .await
    }

    /// `DELETE /v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<Revised, ClientError> {
        let path = format!("/v1/tokens/{}", segment(id));
        self.send(self.request(Method::DELETE, &path)).await
    }

    /// `GET /v1/audit`: one page of records; [`AuditPage::next`] is the
    /// `after` of the next one.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        let resp = self
            .request(Method::GET, "/v1/audit")
            .query(query)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let next = resp
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_after);
        let records = crate::read_json(resp).await?;
        Ok(AuditPage { records, next })
    }

    /// `GET /v1/audit/verify`: `{ok, records, first_bad}`
    /// (`cairn_core::identity::AuditVerification`, as JSON).
    pub async fn verify_audit(&self) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/v1/audit/verify"))
            .await
    }
}

/// The `after` of a `Link` header's `rel="next"` address
/// (`</v1/audit?…&after=SEQ>; rel="next"`).
fn next_after(link: &str) -> Option<i64> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let query = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let (_, query) = query.split_once('?')?;
        let after = query.split('&').find_map(|kv| kv.strip_prefix("after="))?;
        next.then(|| after.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::next_after;

    #[test]
    fn next_page_from_link_header() {
        let cases: &[(&str, Option<i64>)] = &[
            ("</v1/audit?limit=2&after=17>; rel=\"next\"", Some(17)),
            ("</v1/audit?after=3&key=a%26b>; rel=\"next\"", Some(3)),
            ("</v1/audit?after=3>; rel=\"prev\"", None),
            ("</v1/audit?limit=2>; rel=\"next\"", None),
            ("</v1/audit?after=x>; rel=\"next\"", None),
            (
                "</x?after=1>; rel=\"prev\", </x?after=9>; rel=\"next\"",
                Some(9),
            ),
            ("garbage", None),
        ];
        for (link, want) in cases {
            assert_eq!(next_after(link), *want, "{link}");
        }
    }
}
