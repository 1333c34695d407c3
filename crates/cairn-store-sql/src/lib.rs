//! The Cairn [`Store`](cairn_store::Store) over SQL, shared by the SQLite and
//! PostgreSQL backends.
//!
//! Feature `testing`: [`testing::upgrade`], the expected reads of the
//! database every backend's upgrade test builds with its previous migrations.

#[cfg(feature = "testing")]
pub mod testing;
