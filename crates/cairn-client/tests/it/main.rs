//! SDK tests against a real server on a real socket over a real SQLite file.

mod harness;

mod conformance;
#[cfg(feature = "openfeature")]
mod openfeature;
mod sdk;
mod typed;
