//! In-process HTTP tests: the real router over a real SQLite file, driven
//! with `tower::ServiceExt::oneshot`.

mod harness;

mod api_catalog;
mod api_entries;
mod api_schemas;
mod openapi;
