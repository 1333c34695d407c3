//! End-to-end tests: the real `cairn` binary as server and CLI.
//!
//! - `tour`: the README's five-minute tour through the CLI, with exit codes.
//! - `approvals_cli`: change requests for a protected environment (request, approve, `--wait`,
//!   `--apply-at`, edit, conflict and rebase, `--force-approval`, bypass paths); two replicas on
//!   PostgreSQL.
//! - `restart`: stop and start on the same data directory.
//! - `postgres`: two server processes on one PostgreSQL database.
//! - `secrets_cli`: the secret commands as admin, operator and viewer; a canary search.
//! - `races`: two writes whose validations depend on each other, fired together, never both commit
//!   (SQLite; two server processes on PostgreSQL).
//! - `crash`: SIGKILL during concurrent writes loses no acknowledged write.
//! - `flags_cli`: a flagd file imported from stdin and exported unchanged; `flag lint`; strict flags.
//! - `ofrep_js`, `flagd_js` (helpers in `js`): the published OpenFeature JavaScript clients
//!   (OFREP provider; flagd in-process provider on the file `cairn agent --format flagd` keeps).

mod approvals_cli;
mod crash;
mod degraded;
mod flagd_js;
mod flags_cli;
mod harness;
mod js;
mod limits;
mod load;
mod ofrep_js;
mod ofrep_python;
mod postgres;
mod races;
mod realtime;
mod restart;
mod rotation;
mod secrets_cli;
mod tls;
mod tour;
mod webhooks_cli;
