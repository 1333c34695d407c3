//! Cairn's use cases over a [`cairn_store::Store`].
//!
//! Look for [`Service`]: it owns the one write path (validate → check policy →
//! commit change + audit in one transaction → catch up memory → publish) and
//! serves every read from [`state::State`], the in-memory copy of the current
//! configuration with pre-serialized [`ResolvedView`]s.

pub mod applied;
pub mod auth;
pub mod clock;
pub mod envelope;
mod error;
pub mod flags;
pub mod identity;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod rotation;
pub mod schema;
pub mod secrets;
mod service;
pub mod sink;
pub mod state;
pub mod watch;
pub mod webhooks;

pub use auth::{Origin, Principal};
pub use error::{Error, ErrorCode, Result, Violation};
pub use flags::{Evaluation, FlagInfo, FlagLint, FlagLintError, FlagView, FlagWarning};
pub use outbound::{Outbound, OutboundError, OutboundResponse};
pub use policy::Action;
pub use service::{
    ChangeItem, CreatedToken, EnvSettings, Options, SchemaRegistered, Service, Written,
    DEFAULT_ENVS,
};
pub use state::ResolvedView;
pub use watch::ViewEvent;
