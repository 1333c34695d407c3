pub mod catalog;
pub mod entries;
pub mod system;
