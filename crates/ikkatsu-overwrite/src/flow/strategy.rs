//! [`Strategy`]: how the files of a run are transformed, chosen once per process phase.

use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::{LocalFiles, Storage};

/// How the files of a run are transformed, chosen once when the process phase starts.
pub(super) enum Strategy {
    /// In place on the local file system: the function reads the file itself and its
    /// result is written beside it; the committer replaces the file with it (see
    /// [`super::in_place`]).
    InPlace(LocalFiles),
    /// Download (unless the source is local), function, upload to the target or over the
    /// source (see [`super::transfer`]).
    Transfer,
}

impl Strategy {
    /// In place when writing over a local source, else transfer.
    pub(super) fn choose(source: &Storage, writes_elsewhere: bool) -> Self {
        match source.local_files() {
            Some(local) if !writes_elsewhere => Strategy::InPlace(local),
            _ => Strategy::Transfer,
        }
    }

    /// The files the committer replaces ([`Commit::Replace`](super::commit::Commit::Replace) comes only from
    /// [`Strategy::InPlace`]).
    pub(super) fn replacing(&self) -> Result<LocalFiles> {
        match self {
            Strategy::InPlace(local) => Ok(local.clone()),
            Strategy::Transfer => Err(Error::new(
                ErrorKind::Unexpected,
                "the overwrite flow replaced a file of a storage that is not local",
            )),
        }
    }
}
