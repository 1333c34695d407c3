//! Integration tests of cairn-eval: the data-driven conformance cases in `tests/cases/*.json`,
//! the public API, and property tests of fractional bucketing.

mod api;
mod cases;
mod props;
