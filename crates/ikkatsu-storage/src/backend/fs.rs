//! The local file system (`file:///path`, `file:relative`, a plain path).

use std::path::Path;

use ikkatsu_core::{Error, ErrorKind, Result};
use opendal::Operator;
use opendal::services::Fs;

use super::opened::Opened;
use crate::url::mask_secrets;

/// Opens the directory `root`, which must exist: a mistyped source directory must not look
/// like an empty one.
pub(crate) fn open(root: &Path, shown: &str) -> Result<Opened> {
    // A text that is no URL (`s_ftp://user:password@host/dir`, an invalid scheme) is a path:
    // it is shown like the URL, its password masked.
    let root_shown = mask_secrets(&root.display().to_string());
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::Config,
                format!("storage {shown}: {root_shown} is not a directory; give a directory"),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "storage {shown}: the directory {root_shown} does not exist; create it or fix the URL"
                ),
            )
            .with_source(e));
        }
        Err(e) => return Err(Error::io(format!("storage {shown}: {root_shown}"), e)),
    }
    let root_text = root.to_str().ok_or_else(|| {
        Error::config(format!(
            "storage {shown}: the root {root_shown} is not UTF-8"
        ))
    })?;
    let operator = Operator::new(Fs::default().root(root_text))
        .map_err(|e| crate::error::parse_error(e, "open", "", shown))?;
    Ok(Opened {
        operator,
        local_root: Some(root.to_path_buf()),
        reports_modified: true,
        uploader: None,
        empty_files: None,
        stat_before_read: false,
        listing_is_stat: false,
    })
}
