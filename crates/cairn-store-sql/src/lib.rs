//! The Cairn [`Store`](cairn_store::Store) over SQL, written once for every
//! SQL backend: [`SqlStore`] over a [`Dialect`].
//!
//! A backend crate (`cairn-store-sqlite`, `cairn-store-postgres`) supplies its
//! dialect — pools, how a read transaction and a writing one begin, how a
//! commit takes the revision (and what time it says), leases, claims, the
//! change listener, its sqlx driver and its migrations — and names its store
//! `SqlStore<ItsDialect>`. Every statement is here, in one place:
//!
//! - `commit`: `Store::commit` and `Store::append_audit` (the mutations, the
//!   guard, the audit chain);
//! - `read`, `audit`, `telemetry`, `webhooks`: the other methods' queries;
//! - `rows`: row decoding, and how values are stored (timestamps as integer
//!   microseconds since the Unix epoch, JSON as text);
//! - `query`: statements with `$n` placeholders and a closed set of value
//!   types, which each dialect binds and decodes with its own driver.
//!
//! Feature `testing`: `testing::upgrade`, the expected reads of the
//! database every backend's upgrade test builds with its previous migrations.

mod audit;
mod changes;
mod commit;
mod dialect;
mod query;
mod read;
mod rows;
mod store;
mod telemetry;
mod webhooks;

#[cfg(feature = "testing")]
pub mod testing;

pub use dialect::{Begun, Conn, Dialect, Open};
pub use query::{query, query_as, query_scalar, Arg, Col, Column, FromRow, Query, SqlRow};
pub use rows::micros;
pub use store::SqlStore;
