pub mod catalog;
pub mod entries;
pub mod identity;
pub mod system;
pub mod watch;
