//! Configuration entries and their catalog: apps, environments and schemas;
//! watching a resolved view.

pub mod catalog;
pub mod entries;
pub mod schema;
pub mod watch;

use crate::kernel::Kernel;

/// The configuration feature ([`crate::Service::config`]): the write path of
/// entries, their reads (current and past), the catalog, schemas, watching
/// a view. Holds the kernel and the one setting the write path needs.
#[derive(Clone, Copy)]
pub struct Config<'a> {
    kernel: &'a Kernel,
    /// Largest value, in bytes of canonical JSON (`Options::max_value_bytes`).
    max_value_bytes: usize,
}

impl<'a> Config<'a> {
    pub(crate) fn new(kernel: &'a Kernel, max_value_bytes: usize) -> Self {
        Config {
            kernel,
            max_value_bytes,
        }
    }
}
