//! Checks shared by the SQL backends' own tests (feature `testing`). The
//! backend-independent conformance suite is `cairn_store::testing`.

pub mod upgrade;
