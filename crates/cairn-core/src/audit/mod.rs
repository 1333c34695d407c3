//! The audit log's second destination (`sink`).

pub mod sink;
