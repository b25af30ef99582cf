//! Where the objects of a reader or writer are ([`Location`]), the storage opened there
//! ([`ObjectStorage`]), and how globs and objects are named.

use std::path::{Component, Path, PathBuf};

use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::Storage;

/// Where the objects of a reader or writer are: a storage and a path on it.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    /// The storage URL, or the local directory a local path is relative to.
    pub storage: String,
    /// The path relative to the storage root (a glob for readers, a directory for writers);
    /// empty for the root.
    pub path: String,
}

impl Location {
    /// `path` on `storage`; without a storage, `path` is a local path (absolute or relative
    /// to the working directory) and the storage is the root directory `/`.
    pub(crate) fn new(storage: Option<&str>, path: &str, what: &str) -> Result<Location> {
        match storage {
            Some(storage) if !storage.trim().is_empty() => {
                let path = path.trim_start_matches("./").trim_matches('/');
                Ok(Location {
                    storage: storage.to_string(),
                    path: path.to_string(),
                })
            }
            _ => {
                let local = Path::new(path);
                let absolute = if local.is_absolute() {
                    local.to_path_buf()
                } else {
                    std::env::current_dir()
                        .map_err(|err| {
                            Error::io(format_args!("cannot resolve the {what} path `{path}`"), err)
                        })?
                        .join(local)
                };
                let mut normal = PathBuf::new();
                for component in absolute.components() {
                    match component {
                        Component::ParentDir => {
                            normal.pop();
                        }
                        Component::CurDir => {}
                        other => normal.push(other),
                    }
                }
                let text = normal.to_string_lossy();
                Ok(Location {
                    storage: "/".to_string(),
                    path: text.trim_start_matches('/').to_string(),
                })
            }
        }
    }

    /// Opens the storage.
    pub(crate) fn open(&self) -> Result<Storage> {
        Storage::open(&self.storage)
    }
}

/// The storage of a reader or writer: its [`Location`] and, between `open` and `close`, the
/// storage opened there (or, for the whole life of the component, one given by
/// `with_storage`).
#[derive(Debug)]
pub(crate) struct ObjectStorage {
    pub location: Location,
    /// The component in messages: `CSV reader `in/*.csv` read`, ...
    what: String,
    storage: Option<Storage>,
    preset: bool,
}

impl ObjectStorage {
    /// `location`'s storage for a `format` `role` (`reader`, `writer`), which `does` (`read`,
    /// `written`) its objects.
    pub(crate) fn new(location: Location, format: &str, role: &str, does: &str) -> Self {
        ObjectStorage {
            what: format!("{format} {role} `{}` {does}", location.path),
            location,
            storage: None,
            preset: false,
        }
    }

    /// Uses `storage` instead of opening the location's storage URL.
    pub(crate) fn preset(&mut self, storage: Storage) {
        self.storage = Some(storage);
        self.preset = true;
    }

    /// Opens the storage (unless one was preset) and returns it.
    pub(crate) fn open(&mut self) -> Result<Storage> {
        match &self.storage {
            Some(storage) if self.preset => Ok(storage.clone()),
            _ => {
                let storage = self.location.open()?;
                self.storage = Some(storage.clone());
                Ok(storage)
            }
        }
    }

    /// Forgets the opened storage (a preset one is kept).
    pub(crate) fn close(&mut self) {
        if !self.preset {
            self.storage = None;
        }
    }

    /// The open storage; before `open`, an [`ErrorKind::InvalidState`] error.
    pub(crate) fn get(&self) -> Result<&Storage> {
        self.storage.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("{} before open", self.what),
            )
        })
    }
}

/// The builder methods that [`ObjectItemReader`](super::ObjectItemReader) and
/// [`ObjectItemWriter`](super::ObjectItemWriter) share, over their `at: ObjectStorage` and
/// `keys: ContextKeys`; `$keys` is the default prefix of the keys.
macro_rules! storage_builders {
    ($keys:literal) => {
        /// Uses `storage` instead of opening the configured storage URL (the path is still
        /// taken from the configuration).
        pub fn with_storage(mut self, storage: Storage) -> Self {
            self.at.preset(storage);
            self
        }

        #[doc = concat!(
                    "Sets the prefix of the keys saved in the step's execution context (default `",
                    $keys,
                    "`)."
                )]
        pub fn with_context_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.keys = ContextKeys::new(prefix);
            self
        }
    };
}
pub(crate) use storage_builders;

/// How an object is named in messages: the storage URL (secrets masked) and the path.
pub(crate) fn object_name(storage: &Storage, path: &str) -> String {
    let url = storage.url();
    if url.ends_with('/') || url.ends_with(':') {
        format!("{url}{path}")
    } else {
        format!("{url}/{path}")
    }
}

/// Whether `path` has glob characters.
pub(crate) fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// The directories of `glob` before its first component with a glob character: where a
/// listing has to start.
pub(crate) fn literal_prefix(glob: &str) -> String {
    let mut dirs: Vec<&str> = Vec::new();
    let components: Vec<&str> = glob.split('/').collect();
    for component in &components[..components.len().saturating_sub(1)] {
        if is_glob(component) {
            break;
        }
        dirs.push(component);
    }
    dirs.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_globs() {
        let at = Location::new(Some("s3://bucket"), "/in/*.csv", "CSV").unwrap();
        assert_eq!(
            (at.storage.as_str(), at.path.as_str()),
            ("s3://bucket", "in/*.csv")
        );
        let local = Location::new(None, "/data/../srv/x.parquet", "Parquet").unwrap();
        assert_eq!(
            (local.storage.as_str(), local.path.as_str()),
            ("/", "srv/x.parquet")
        );
        let relative = Location::new(None, "out", "Parquet").unwrap();
        assert!(relative.path.ends_with("out"));
        assert!(!relative.path.starts_with('/'));

        assert!(is_glob("in/**/*.parquet"));
        assert!(!is_glob("in/a.parquet"));
        assert_eq!(literal_prefix("in/2024/**/*.parquet"), "in/2024");
        assert_eq!(literal_prefix("*.csv"), "");
        assert_eq!(literal_prefix("in/*/x/*.csv"), "in");
    }
}
