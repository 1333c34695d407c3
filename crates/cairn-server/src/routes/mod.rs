pub mod catalog;
pub mod entries;
pub mod flags;
pub mod identity;
pub mod system;
pub mod watch;
