//! Key material shared by the features that seal or sign: the master key's
//! purpose keys (`keys`) and envelope encryption (`envelope`). Pure; a leaf.

pub mod envelope;
pub mod keys;
