//! Opening input and restartable output files, shared by the file-based readers and writers.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::Path;

use ikkatsu_core::{Error, ErrorKind, ExecutionContext, Result};

/// Opens an input file, with a message that names the path and what to do.
pub(crate) fn open_input(path: &Path, what: &str) -> Result<File> {
    File::open(path).map_err(|err| {
        let hint = match err.kind() {
            std::io::ErrorKind::NotFound => {
                "; check the `path` property (and the job parameters it uses)"
            }
            std::io::ErrorKind::PermissionDenied => "; check the file's permissions",
            _ => "",
        };
        Error::io(
            format_args!("cannot open {what} input `{}`{hint}", path.display()),
            err,
        )
    })
}

/// Seeks an input file to a saved offset, checking that the file is still long enough.
pub(crate) fn check_resume_offset(file: &File, path: &Path, offset: u64) -> Result<()> {
    let len = file
        .metadata()
        .map_err(|err| Error::io(format_args!("cannot stat `{}`", path.display()), err))?
        .len();
    if offset > len {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "cannot resume `{}` at byte {offset}: the file has only {len} bytes; it was \
                 replaced or truncated since the last run (restore it, or start a new job instance)",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Checks a saved text position before resuming at it: `line` and `record` count lines and
/// rows that lie before byte `offset`, so neither can exceed `offset + 1`. A larger one was
/// not saved by a reader of this file (an edited or corrupt execution context), and
/// counting on from it would overflow.
pub(crate) fn check_resume_position(name: &str, offset: u64, line: u64, record: u64) -> Result<()> {
    let most = offset.saturating_add(1);
    if line > most || record > most {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "cannot resume `{name}` at byte {offset}, line {line}, record {record}: no \
                 file has that many lines or records before that byte; the saved position is \
                 not one this reader saved (restore the step's execution context, or start a \
                 new job instance)"
            ),
        ));
    }
    Ok(())
}

/// An output file positioned where writing continues.
pub(crate) struct OpenedOutput {
    /// The file, positioned at `offset`.
    pub file: File,
    /// The byte offset writing starts at.
    pub offset: u64,
    /// Whether the file is empty (a header, if any, still has to be written).
    pub empty: bool,
}

/// Opens an output file for writing.
///
/// * With a `saved` offset (a restart): the file is truncated to that offset, dropping what
///   was written after the last committed chunk, and writing continues from there.
/// * Without one (a first run): the file is created, or truncated unless `append` is set
///   (then writing continues at its end).
///
/// Missing parent directories are created.
pub(crate) fn open_output(
    path: &Path,
    append: bool,
    saved: Option<u64>,
    what: &str,
) -> Result<OpenedOutput> {
    let map_err = |err: std::io::Error| {
        let hint = match err.kind() {
            std::io::ErrorKind::NotFound => "; check that the directory exists",
            std::io::ErrorKind::PermissionDenied => {
                "; check that the directory and file are writable"
            }
            _ => "",
        };
        Error::io(
            format_args!("cannot write {what} output `{}`{hint}", path.display()),
            err,
        )
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|err| {
            Error::io(
                format_args!(
                    "cannot create the directory `{}` for {what} output `{}`",
                    parent.display(),
                    path.display()
                ),
                err,
            )
        })?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    match saved {
        Some(offset) => {
            let mut file = options.open(path).map_err(map_err)?;
            let len = file.metadata().map_err(map_err)?.len();
            if offset > len {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "cannot resume {what} output `{}` at byte {offset}: the file has only \
                         {len} bytes; it was replaced or truncated since the last run (restore \
                         it, or start a new job instance)",
                        path.display()
                    ),
                ));
            }
            file.set_len(offset).map_err(map_err)?;
            file.seek(SeekFrom::Start(offset)).map_err(map_err)?;
            Ok(OpenedOutput {
                file,
                offset,
                empty: offset == 0,
            })
        }
        None if append => {
            let mut file = options.open(path).map_err(map_err)?;
            let offset = file.seek(SeekFrom::End(0)).map_err(map_err)?;
            Ok(OpenedOutput {
                file,
                offset,
                empty: offset == 0,
            })
        }
        None => {
            let file = options.truncate(true).open(path).map_err(map_err)?;
            Ok(OpenedOutput {
                file,
                offset: 0,
                empty: true,
            })
        }
    }
}

/// Maps a failed write/flush on an open output file.
pub(crate) fn write_error(path: &Path, what: &str, err: std::io::Error) -> Error {
    let hint = match err.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "; free space on its device, then restart the job (it continues after the last \
             committed chunk)"
        }
        _ => "",
    };
    Error::io(
        format_args!("cannot write {what} output `{}`{hint}", path.display()),
        err,
    )
}

/// Cuts an output file back to `offset`, its size at the last chunk commit, and positions
/// it there, after a failed write or update: what the chunk in progress had written goes
/// (on a full disk, with the space it took), so a retry writes the chunk once and a failed
/// run leaves only committed output. `file` is the output's handle (or the error of getting
/// it). A failure is logged rather than returned: the error that caused the cut is the one
/// to report, and a restart cuts the file back as well.
pub(crate) fn cut_back(
    file: std::io::Result<File>,
    offset: u64,
    path: &Path,
    what: &str,
) -> Option<File> {
    let cut = file.and_then(|mut file| {
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(file)
    });
    match cut {
        Ok(file) => Some(file),
        Err(err) => {
            tracing::warn!(
                path = %path.display(),
                offset,
                error = %err,
                "cannot cut the {what} output back to its last committed chunk; a restart does"
            );
            None
        }
    }
}

/// The execution-context keys of one component, under a prefix.
#[derive(Debug, Clone)]
pub(crate) struct ContextKeys {
    prefix: String,
}

impl ContextKeys {
    pub(crate) fn new(prefix: impl Into<String>) -> Self {
        ContextKeys {
            prefix: prefix.into(),
        }
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    pub(crate) fn get_u64(&self, context: &ExecutionContext, name: &str) -> Result<Option<u64>> {
        context.get::<u64>(&self.key(name))
    }
}
