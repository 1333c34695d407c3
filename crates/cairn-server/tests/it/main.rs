//! In-process HTTP tests: the real router over a real SQLite file, driven
//! with `tower::ServiceExt::oneshot`.

mod harness;

mod access_matrix;
mod api_catalog;
mod api_entries;
mod api_schemas;
mod audit_sink;
mod changes;
mod clock;
mod flag_documents;
mod flags;
mod fuzz_found;
mod identity;
mod limits;
mod openapi;
mod reports;
mod secret_canary;
mod secrets;
mod watch;
mod webhooks;
