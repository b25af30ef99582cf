//! Storage backends of the program's own: a type implementing [`StorageBackend`] becomes a
//! [`crate::Storage`] ([`crate::Storage::from_backend`]) with the same layer stack, walker,
//! conditional writes and error messages as the built-in backends, and a URL scheme of its
//! own ([`crate::register_scheme`]) makes it reachable wherever a storage URL is read (job
//! files, item readers and writers, the application config).
//!
//! The backend answers five questions (stat, read a range, write a whole file, delete, list
//! a prefix); this module serves them to OpenDAL as a service, the way OpenDAL's memory
//! service serves its map.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use ikkatsu_core::ErrorKind as Kind;
use opendal::raw::*;
use opendal::*;

use super::opened::Opened;
use crate::connection::StorageConnection;
use crate::file_info::FileInfo;

/// A storage backend of your own: a map in memory, a database table, a service with an API
/// of its own. Paths are relative to the backend's root and `/`-separated (`dir/file.csv`).
///
/// Errors are [`ikkatsu_core::Error`]s: a missing file is [`Kind::NotFound`], a temporary
/// failure (`set_temporary(true)`) is retried by the storage's retry layer, and the kind
/// and message of every other error reach the caller with the storage and the path named.
///
/// Write `async fn` in the implementation; the futures must be `Send`.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Mutex;
///
/// use bytes::Bytes;
/// use ikkatsu_core::{Error, ErrorKind, Result};
/// use ikkatsu_storage::{FileInfo, Storage, StorageBackend, StorageOptions};
///
/// #[derive(Default)]
/// struct Map(Mutex<BTreeMap<String, Bytes>>);
///
/// impl StorageBackend for Map {
///     fn name(&self) -> &'static str {
///         "map"
///     }
///     async fn stat(&self, path: &str) -> Result<FileInfo> {
///         let files = self.0.lock().unwrap();
///         match files.get(path) {
///             Some(content) => Ok(FileInfo::new(path, content.len() as u64)),
///             None => Err(Error::new(ErrorKind::NotFound, format!("no {path}"))),
///         }
///     }
///     async fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<Bytes> {
///         let content = self.stat(path).await.map(|_| self.0.lock().unwrap()[path].clone())?;
///         let start = (offset as usize).min(content.len());
///         let end = len.map_or(content.len(), |n| (start + n as usize).min(content.len()));
///         Ok(content.slice(start..end))
///     }
///     async fn write(&self, path: &str, content: Bytes) -> Result<()> {
///         self.0.lock().unwrap().insert(path.to_string(), content);
///         Ok(())
///     }
///     async fn delete(&self, path: &str) -> Result<()> {
///         self.0.lock().unwrap().remove(path);
///         Ok(())
///     }
///     async fn list(&self, prefix: &str) -> Result<Vec<FileInfo>> {
///         let files = self.0.lock().unwrap();
///         Ok(files
///             .iter()
///             .filter(|(path, _)| path.starts_with(prefix))
///             .map(|(path, content)| FileInfo::new(path.as_str(), content.len() as u64))
///             .collect())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let storage = Storage::from_backend(Map::default(), &StorageOptions::default())?;
/// storage.write("in/a.txt", "hello").await?;
/// assert_eq!(storage.read("in/a.txt").await?.as_ref(), b"hello");
/// assert_eq!(storage.capabilities().scheme, "map");
/// # Ok(())
/// # }
/// ```
pub trait StorageBackend: Send + Sync + 'static {
    /// The backend's name: [`crate::Capabilities::scheme`], and the storage's name in
    /// messages.
    fn name(&self) -> &'static str;

    /// What is known about the file at `path` (its path, size, and where the backend knows
    /// them its modification time and etag). A missing file is [`Kind::NotFound`].
    fn stat(&self, path: &str) -> impl Future<Output = ikkatsu_core::Result<FileInfo>> + Send;

    /// The bytes of the file at `path` from `offset`, at most `len` of them (`None`: to the
    /// end). A missing file is [`Kind::NotFound`].
    fn read(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> impl Future<Output = ikkatsu_core::Result<Bytes>> + Send;

    /// Makes `content` the file at `path`, replacing any file there.
    fn write(
        &self,
        path: &str,
        content: Bytes,
    ) -> impl Future<Output = ikkatsu_core::Result<()>> + Send;

    /// Deletes the file at `path`; deleting a missing file succeeds.
    fn delete(&self, path: &str) -> impl Future<Output = ikkatsu_core::Result<()>> + Send;

    /// Every file whose path starts with `prefix` (`""`: every file; otherwise a directory
    /// ending with `/`), at any depth, with what [`StorageBackend::stat`] would say of it.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = ikkatsu_core::Result<Vec<FileInfo>>> + Send;

    /// Whether [`StorageBackend::stat`] and [`StorageBackend::list`] report modification
    /// times ([`crate::Capabilities::modified`]). Default: `true`.
    fn reports_modified(&self) -> bool {
        true
    }
}

/// What a backend of the program's own hands to [`crate::Storage`].
pub(crate) fn opened<B: StorageBackend>(backend: B) -> ikkatsu_core::Result<Opened> {
    let reports_modified = backend.reports_modified();
    let name = backend.name();
    let service = CustomService {
        info: ServiceInfo::new(name, "/", ""),
        backend: Arc::new(backend),
    };
    let operator = Operator::new(CustomBuilder(Some(service)))
        .map_err(|e| crate::error::build_error(e, name))?;
    let mut opened = Opened::remote(operator);
    opened.reports_modified = reports_modified;
    Ok(opened)
}

/// Builds the service (OpenDAL's `Operator::new` takes a builder).
struct CustomBuilder<B>(Option<CustomService<B>>);

impl<B> Default for CustomBuilder<B> {
    fn default() -> Self {
        CustomBuilder(None)
    }
}

impl<B: StorageBackend> Builder for CustomBuilder<B> {
    type Config = ();

    fn build(self) -> Result<impl Service> {
        self.0.ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "the service of a storage backend needs the backend",
            )
        })
    }
}

/// Opens a storage of a registered scheme from its connection.
type Opener = Arc<dyn Fn(&StorageConnection) -> ikkatsu_core::Result<Opened> + Send + Sync>;

fn schemes_registry() -> &'static RwLock<HashMap<String, Opener>> {
    static SCHEMES: OnceLock<RwLock<HashMap<String, Opener>>> = OnceLock::new();
    SCHEMES.get_or_init(Default::default)
}

/// Registers `open` for the URLs of `scheme` (lower case, checked by the caller); the last
/// registration of a scheme wins.
pub(crate) fn register<B: StorageBackend>(
    scheme: String,
    open: fn(&StorageConnection) -> ikkatsu_core::Result<B>,
) {
    let opener: Opener = Arc::new(move |connection| open(connection).and_then(opened));
    schemes_registry()
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(scheme, opener);
}

/// How to open the URLs of `scheme`, when the program registered it.
pub(crate) fn opener(scheme: &str) -> Option<Opener> {
    schemes_registry()
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(scheme)
        .cloned()
}

/// The schemes the program registered, sorted.
pub(crate) fn schemes() -> Vec<String> {
    let mut schemes: Vec<String> = schemes_registry()
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .keys()
        .cloned()
        .collect();
    schemes.sort();
    schemes
}

/// A [`StorageBackend`] served to OpenDAL.
struct CustomService<B> {
    info: ServiceInfo,
    backend: Arc<B>,
}

impl<B> Clone for CustomService<B> {
    fn clone(&self) -> Self {
        CustomService {
            info: self.info.clone(),
            backend: self.backend.clone(),
        }
    }
}

impl<B> fmt::Debug for CustomService<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomService")
            .field("scheme", &self.info.scheme())
            .finish_non_exhaustive()
    }
}

/// The path as the backend takes it: relative, without a leading `/`.
fn relative(path: &str) -> &str {
    path.trim_start_matches('/')
}

impl<B: StorageBackend> Service for CustomService<B> {
    type Reader = oio::StreamReader<CustomReader<B>>;
    type Writer = CustomWriter<B>;
    type Lister = oio::HierarchyLister<CustomLister<B>>;
    type Deleter = oio::OneShotDeleter<CustomDeleter<B>>;
    type Copier = ();
    type Composer = ();

    fn info(&self) -> ServiceInfo {
        self.info.clone()
    }

    fn capability(&self) -> Capability {
        Capability {
            stat: true,
            create_dir: true,
            read: true,
            write: true,
            write_can_empty: true,
            write_can_multi: true,
            delete: true,
            list: true,
            list_with_recursive: true,
            shared: true,
            ..Default::default()
        }
    }

    async fn create_dir(
        &self,
        _: &OperationContext,
        _: &str,
        _: OpCreateDir,
    ) -> Result<RpCreateDir> {
        // Files are keyed by their whole path: directories need no creating.
        Ok(RpCreateDir::default())
    }

    async fn stat(&self, _: &OperationContext, path: &str, _: OpStat) -> Result<RpStat> {
        let path = relative(path);
        if path.is_empty() {
            return Ok(RpStat::new(MetadataBuilder::dir().build()));
        }
        if path.ends_with('/') {
            let files = self.backend.list(path).await.map_err(to_opendal)?;
            return if files.is_empty() {
                Err(Error::new(
                    ErrorKind::NotFound,
                    "no file under this directory",
                ))
            } else {
                Ok(RpStat::new(MetadataBuilder::dir().build()))
            };
        }
        let info = self.backend.stat(path).await.map_err(to_opendal)?;
        Ok(RpStat::new(metadata(&info)))
    }

    fn read(&self, _: &OperationContext, path: &str, _: OpRead) -> Result<Self::Reader> {
        Ok(oio::StreamReader::new(CustomReader {
            backend: self.backend.clone(),
            path: relative(path).to_string(),
        }))
    }

    fn write(&self, _: &OperationContext, path: &str, _: OpWrite) -> Result<Self::Writer> {
        Ok(CustomWriter {
            backend: self.backend.clone(),
            path: relative(path).to_string(),
            chunks: Vec::new(),
        })
    }

    fn delete(&self, _: &OperationContext) -> Result<Self::Deleter> {
        Ok(oio::OneShotDeleter::new(CustomDeleter {
            backend: self.backend.clone(),
        }))
    }

    fn list(&self, _: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        let lister = CustomLister {
            backend: self.backend.clone(),
            prefix: relative(path).to_string(),
            entries: None,
        };
        Ok(oio::HierarchyLister::new(lister, path, args.recursive()))
    }

    fn copy(&self, _: &OperationContext, _: &str, _: &str, _: OpCopy) -> Result<Self::Copier> {
        Err(unsupported())
    }

    async fn rename(
        &self,
        _: &OperationContext,
        _: &str,
        _: &str,
        _: OpRename,
    ) -> Result<RpRename> {
        Err(unsupported())
    }

    async fn presign(&self, _: &OperationContext, _: &str, _: OpPresign) -> Result<RpPresign> {
        Err(unsupported())
    }
}

fn unsupported() -> Error {
    Error::new(ErrorKind::Unsupported, "operation is not supported")
}

/// The backend's error as an OpenDAL error of the matching kind, temporary when it is; the
/// storage maps it back (see `crate::error`), keeping the backend's message.
fn to_opendal(err: ikkatsu_core::Error) -> Error {
    let kind = match err.kind() {
        Kind::NotFound => ErrorKind::NotFound,
        Kind::PermissionDenied => ErrorKind::PermissionDenied,
        Kind::AlreadyExists => ErrorKind::AlreadyExists,
        Kind::Conflict => ErrorKind::ConditionNotMatch,
        Kind::Config => ErrorKind::ConfigInvalid,
        Kind::InvalidState => ErrorKind::Unsupported,
        _ => ErrorKind::Unexpected,
    };
    let temporary = err.is_temporary();
    Error::new(kind, err.message().to_string())
        .with_temporary(temporary)
        .set_source(err)
}

/// OpenDAL's metadata of a file the backend described.
fn metadata(info: &FileInfo) -> Metadata {
    let mut meta = MetadataBuilder::file(info.size);
    if let Some(modified) = info.modified
        && let Ok(t) = Timestamp::try_from(std::time::SystemTime::from(modified))
    {
        meta.last_modified(t);
    }
    if let Some(etag) = &info.etag {
        meta.etag(etag);
    }
    meta.build()
}

/// Reads one file, a range at a time.
struct CustomReader<B> {
    backend: Arc<B>,
    path: String,
}

impl<B: StorageBackend> oio::StreamRead for CustomReader<B> {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let content = self
            .backend
            .read(&self.path, range.offset(), range.size())
            .await
            .map_err(to_opendal)?;
        Ok((
            RpRead::default(),
            Box::new(content) as Box<dyn oio::ReadStreamDyn>,
        ))
    }
}

/// Gathers the chunks of one file and hands them to the backend when closed.
struct CustomWriter<B> {
    backend: Arc<B>,
    path: String,
    chunks: Vec<Bytes>,
}

impl<B: StorageBackend> oio::Write for CustomWriter<B> {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        self.chunks.push(bs.to_bytes());
        Ok(())
    }

    async fn close(&mut self) -> Result<Metadata> {
        // The chunks are kept until the backend took them: a retried close sends them again.
        let content: Bytes = match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        };
        let size = content.len() as u64;
        self.backend
            .write(&self.path, content)
            .await
            .map_err(to_opendal)?;
        self.chunks.clear();
        Ok(MetadataBuilder::file(size).build())
    }

    async fn abort(&mut self) -> Result<()> {
        self.chunks.clear();
        Ok(())
    }
}

/// Lists a prefix: one call to the backend at the first entry asked for (again after a
/// failed call, so that a retry lists the prefix whole).
struct CustomLister<B> {
    backend: Arc<B>,
    prefix: String,
    entries: Option<std::vec::IntoIter<oio::Entry>>,
}

impl<B: StorageBackend> oio::List for CustomLister<B> {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        if self.entries.is_none() {
            let files = self.backend.list(&self.prefix).await.map_err(to_opendal)?;
            // Directories are implied by the files' paths, never listed.
            let entries: Vec<oio::Entry> = files
                .iter()
                .filter(|info| !info.path.is_empty() && !info.path.ends_with('/'))
                .map(|info| oio::Entry::new(&info.path, metadata(info)))
                .collect();
            self.entries = Some(entries.into_iter());
        }
        Ok(self.entries.as_mut().and_then(Iterator::next))
    }
}

/// Deletes files.
struct CustomDeleter<B> {
    backend: Arc<B>,
}

impl<B: StorageBackend> oio::OneShotDelete for CustomDeleter<B> {
    async fn delete_once(&self, path: String, _: OpDelete) -> Result<()> {
        self.backend
            .delete(relative(&path))
            .await
            .map_err(to_opendal)
    }
}
