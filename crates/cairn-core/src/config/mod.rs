//! Configuration entries and their catalog: apps, environments and schemas.

pub mod catalog;
pub mod entries;

pub mod schema;
