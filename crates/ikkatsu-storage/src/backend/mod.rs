//! Backends: one module per storage kind. Each turns its URL form into an OpenDAL operator
//! and says what it can do; adding a backend means one new module and one line in [`open`].

pub(crate) mod fs;
pub(crate) mod memory;

use std::path::PathBuf;

use ikkatsu_core::Result;
use opendal::Operator;

use crate::url::StorageUrl;

/// What a backend hands to [`crate::Storage`].
pub(crate) struct Opened {
    /// The operator without layers.
    pub(crate) operator: Operator,
    /// The local root directory, for backends that are the local file system: the walker
    /// and conditional writes use it directly.
    pub(crate) local_root: Option<PathBuf>,
}

/// The registry of backends.
pub(crate) fn open(url: &StorageUrl, shown: &str) -> Result<Opened> {
    match url {
        StorageUrl::Fs { root } => fs::open(root, shown),
        StorageUrl::Memory { name } => memory::open(name.as_deref(), shown),
    }
}
