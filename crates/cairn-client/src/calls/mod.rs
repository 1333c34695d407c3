//! Typed calls, one module per group of routes, with the server's own wire
//! types (`cairn_api`): one definition per type on both sides of the socket.
//! Where the server answers with a `cairn_core` type (a created token, a
//! secret's metadata, a webhook, a flag list…), the call returns the JSON
//! as it came (`serde_json::Value`): those types are not the client's to
//! define a second time.

mod catalog;
mod changes;
mod entries;
mod flags;
mod identity;
mod secrets;
mod webhooks;

pub use entries::WriteOutcome;
pub use identity::AuditPage;

/// Where an entry lives, as the API's query names it: no app is global, no
/// env is every environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct At<'a> {
    pub app: Option<&'a str>,
    pub env: Option<&'a str>,
}

impl At<'_> {
    fn query(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("app", self.app.map(str::to_owned)),
            ("env", self.env.map(str::to_owned)),
        ]
    }
}

/// A name as one path segment (`/v1/users/{name}`, `/v1/apps/{app}/…`):
/// percent-encoded like a key, `/` included.
fn segment(s: &str) -> String {
    crate::key_path(s).replace('/', "%2F")
}
