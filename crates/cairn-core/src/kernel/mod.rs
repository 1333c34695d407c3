//! The kernel: the in-memory state and its views, catching up with the
//! store, the one commit function (the only caller of `Store::commit`), the
//! watch hub and the clock. Features build on it; it depends on none of them
//! but the compiled views it caches.

pub(crate) mod commit;
mod sync;

pub mod clock;
pub mod state;
pub mod watch;
