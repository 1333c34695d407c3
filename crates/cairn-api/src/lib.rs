//! Cairn's HTTP wire types, one definition each: `cairn-server` reads the
//! request bodies and writes the results declared here, `cairn-client` writes
//! and reads the same types, and `docs/openapi.json` documents them (utoipa).
//! No HTTP stack, no IO.

mod catalog;
mod entries;

pub use catalog::{CreateAppBody, EnvBody, RegisterSchemaBody, Revised, ValidateBody};

pub use entries::{
    ChangeEntryBody, ChangeSetBody, FlagWarning, RollbackBody, SetEntryBody, WriteResult,
    WrittenEntry,
};
