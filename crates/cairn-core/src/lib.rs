//! Cairn's use cases over a [`cairn_store::Store`].
//!
//! Look for [`Service`], the façade a server holds, and the handles it hands
//! out, one per feature: [`Service::config`] owns the one write path (plan
//! against memory → check policy → commit change + audit in one
//! transaction, guarded against what changed since the plan → catch up
//! memory → publish) and serves every read from `kernel::state::State`, the
//! in-memory copy of the current configuration with pre-serialized
//! [`ResolvedView`]s.
//!
//! Layout: `kernel` (state, sync, commit, watch hub, metrics, clock),
//! `crypto` (keys, envelope) and `outbound` (the one outbound HTTP client),
//! shared collaborators, and one folder per capability, each with its
//! handle: `config` (entries, apps, environments, schemas, watching a view:
//! [`config::Config`]), `flags` ([`flags::Flags`]), `secrets` (+ rotation:
//! [`secrets::Secrets`]), `webhooks` ([`webhooks::Webhooks`]), `identity`
//! (tokens, users, login, OIDC, policy: [`identity::Identity`]), `audit`
//! (the sink), `telemetry` (SDK reports: [`telemetry::Telemetry`]),
//! `approvals` (change requests for protected environments:
//! [`approvals::Approvals`]).
//! `service` is the façade: it builds the handles and runs the background
//! jobs; features receive the kernel, never the façade.

pub mod approvals;
pub mod audit;
pub mod config;
pub mod crypto;
mod error;
pub mod flags;
pub mod identity;
pub mod kernel;
pub mod outbound;
pub mod secrets;
mod service;
pub mod telemetry;
pub mod webhooks;

// The paths these modules had before the layout above (kept for callers).
pub use audit::sink;
pub use config::schema;
pub use crypto::{envelope, keys};
pub use identity::{auth, jwt, policy};
pub use kernel::{clock, metrics, state, watch};
pub use secrets::rotation;
pub use telemetry::applied;

pub use approvals::Approvals;
pub use auth::{Origin, Principal};
pub use config::catalog::{EnvSettings, SchemaRegistered};
pub use config::entries::{ChangeItem, Written};
pub use config::Config;
pub use error::{Error, ErrorCode, Result, Violation};
pub use flags::{Evaluation, FlagInfo, FlagLint, FlagLintError, FlagView, FlagWarning, Flags};
pub use identity::tokens::CreatedToken;
pub use identity::Identity;
pub use outbound::{Outbound, OutboundError, OutboundResponse};
pub use policy::Action;
pub use secrets::Secrets;
pub use service::{Options, Service, DEFAULT_ENVS};
pub use state::ResolvedView;
pub use telemetry::Telemetry;
pub use watch::ViewEvent;
pub use webhooks::Webhooks;
