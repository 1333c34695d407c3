pub mod catalog;
pub mod entries;
pub mod flags;
pub mod identity;
pub mod secrets;
pub mod system;
pub mod watch;
pub mod webhooks;
