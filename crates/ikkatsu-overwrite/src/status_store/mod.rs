//! The status store: which files of a flow are done, which failed (and how often), and so
//! which files of a walk still need processing.
//!
//! One trait, [`StatusStore`], with one backend per module:
//!
//! | URL | backend | feature |
//! |-----|---------|---------|
//! | `memory:` | [`MemoryStatusStore`] (process memory, for tests and dry runs) | always |
//! | `redb:///path/status.redb`, `file:///path/status.redb`, `path/status.redb` | `EmbeddedStatusStore` (redb file, no server) | `embedded` (default) |
//! | `redis://host:port/db`, `rediss://…` | `RedisStatusStore` | `redis` |
//! | `redis+cluster://host:port[,host:port…]/[?read-from-replicas=true]` | `RedisStatusStore` on a Redis Cluster | `redis` |
//! | `postgres://…`, `postgresql://…` | `SqlStatusStore` | `postgres` |
//! | `mysql://…`, `mariadb://…` | `SqlStatusStore` | `mysql` |
//!
//! [`open_status_store`] picks the backend from the URL; [`open_status_store_read_only`]
//! opens it for a dry run, which writes nothing.
//!
//! ## When a file needs processing
//!
//! A file needs processing if the store has no record of it; or it was done and the walked
//! file differs from the file recorded as uploaded by [`StatusStore::report_done`]; or it
//! failed and either changed since the last failure or failed fewer than
//! [`StatusStoreOptions::max_errors`] times. "Differs" is decided by [`changed_since`]: the
//! sizes differ, or both sides have a modification time and the times differ, or both
//! sides have an etag and the etags differ.
//!
//! The error count counts the failures since the last success: [`StatusStore::report_done`]
//! resets it.
//!
//! ## The run lease
//!
//! Each namespace also has a run lease ([`Lease`]): which process runs the flow now, with
//! its host, pid and last heartbeat. [`StatusStore::acquire_lease`] takes it atomically
//! when it is free, expired or named for a takeover; the overwrite flow holds it from its
//! scan to its end (see [`crate::lease`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ikkatsu_core::{Error, Result};
use ikkatsu_storage::FileInfo;
use serde::{Deserialize, Serialize};

#[cfg(feature = "embedded")]
mod embedded;
mod lease;
mod memory;
mod read_only;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_connection;
#[cfg(feature = "redis")]
mod redis_tls;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql;

#[cfg(feature = "embedded")]
pub use embedded::EmbeddedStatusStore;
pub use lease::{ALREADY_RUNNING, Lease, LeaseAttempt};
pub use memory::MemoryStatusStore;
pub use read_only::open_status_store_read_only;
#[cfg(feature = "redis")]
pub use redis::RedisStatusStore;
#[cfg(feature = "redis")]
pub use redis_connection::{
    CLUSTER_BUCKETS as REDIS_CLUSTER_BUCKETS, KeyLayout as RedisKeyLayout, RedisConnection,
    bucket as redis_cluster_bucket, key_slot as redis_key_slot,
};
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub use sql::{STATUS_MIGRATIONS_TABLE, SqlStatusStore};

/// The default number of failures after which an unchanged file is no longer retried.
pub const DEFAULT_MAX_ERRORS: u32 = 3;

/// The default namespace when a flow gives none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Settings shared by every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusStoreOptions {
    /// Separates the records of several flows sharing one store (usually the flow name).
    /// Not empty, at most 64 bytes, no `:`, no control characters.
    pub namespace: String,
    /// An unchanged file that failed this many times is skipped.
    pub max_errors: u32,
}

impl Default for StatusStoreOptions {
    fn default() -> Self {
        StatusStoreOptions {
            namespace: DEFAULT_NAMESPACE.to_string(),
            max_errors: DEFAULT_MAX_ERRORS,
        }
    }
}

impl StatusStoreOptions {
    /// Options for `namespace` with the default `max_errors`.
    pub fn new(namespace: impl Into<String>) -> Self {
        StatusStoreOptions {
            namespace: namespace.into(),
            ..StatusStoreOptions::default()
        }
    }

    /// Sets [`StatusStoreOptions::max_errors`].
    pub fn with_max_errors(mut self, max_errors: u32) -> Self {
        self.max_errors = max_errors;
        self
    }

    /// Checks the namespace.
    pub fn validate(&self) -> Result<()> {
        let ns = &self.namespace;
        if ns.is_empty() || ns.len() > 64 || ns.contains(':') || ns.chars().any(char::is_control) {
            return Err(Error::config(format!(
                "status store namespace `{}` is invalid: use 1 to 64 bytes without `:` or control characters (for example the flow name)",
                ns.escape_debug()
            )));
        }
        Ok(())
    }
}

/// The state of a file the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Processed and uploaded.
    Done,
    /// The last attempt failed.
    Failed,
}

impl FileState {
    /// `done` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Done => "done",
            FileState::Failed => "failed",
        }
    }

    /// Parses [`FileState::as_str`].
    pub fn parse(text: &str) -> Option<FileState> {
        match text {
            "done" => Some(FileState::Done),
            "failed" => Some(FileState::Failed),
            _ => None,
        }
    }
}

/// What the store records about one file (keyed by the source path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStatus {
    /// Done or failed.
    pub state: FileState,
    /// The file as uploaded by the last success, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<FileInfo>,
    /// The source file as it was at the last failure, while the state is failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FileInfo>,
    /// Failures since the last success.
    pub error_count: u32,
    /// The text of the last failure since the last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the record was last written.
    pub updated: DateTime<Utc>,
}

impl FileStatus {
    /// The record after a success: `uploaded` kept, errors cleared.
    pub fn done(uploaded: &FileInfo, now: DateTime<Utc>) -> Self {
        FileStatus {
            state: FileState::Done,
            uploaded: Some(uploaded.clone()),
            failed: None,
            error_count: 0,
            last_error: None,
            updated: now,
        }
    }

    /// The record after a failure of `file`, given the previous record.
    pub fn after_error(
        previous: Option<FileStatus>,
        file: &FileInfo,
        error: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let (uploaded, count) = match previous {
            Some(p) => (p.uploaded, p.error_count),
            None => (None, 0),
        };
        FileStatus {
            state: FileState::Failed,
            uploaded,
            failed: Some(file.clone()),
            error_count: count.saturating_add(1),
            last_error: Some(error.to_string()),
            updated: now,
        }
    }

    /// Whether `file` (as walked now) needs processing given this record.
    pub fn needs_processing(&self, file: &FileInfo, max_errors: u32) -> bool {
        match self.state {
            FileState::Done => match &self.uploaded {
                Some(uploaded) => changed_since(uploaded, file),
                None => true,
            },
            FileState::Failed => match &self.failed {
                Some(failed) if !changed_since(failed, file) => self.error_count < max_errors,
                _ => true,
            },
        }
    }
}

/// Whether `now` describes different content than `recorded`: the sizes differ, or both
/// have a modification time and the times differ, or both have an etag and they differ.
pub fn changed_since(recorded: &FileInfo, now: &FileInfo) -> bool {
    if recorded.size != now.size {
        return true;
    }
    if let (Some(a), Some(b)) = (&recorded.modified, &now.modified)
        && a != b
    {
        return true;
    }
    if let (Some(a), Some(b)) = (&recorded.etag, &now.etag)
        && a != b
    {
        return true;
    }
    false
}

/// How many files a store knows, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Files recorded as done.
    pub done: u64,
    /// Files whose last attempt failed.
    pub failed: u64,
}

/// Where the overwrite flow records what it did, per source path.
///
/// Every method may be called concurrently from many workers.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// The files of `files` that need processing (see the [module docs](self)), in the
    /// order given. Callers pass the walk in batches (a thousand or so per call).
    async fn needs_processing(&self, files: Vec<FileInfo>) -> Result<Vec<FileInfo>>;

    /// Records that `source` was processed and written as `uploaded` (the file's info after
    /// the upload: what the next walk will see). Clears the error count.
    async fn report_done(&self, source: &FileInfo, uploaded: &FileInfo) -> Result<()>;

    /// Records several successes, each `(source, uploaded)` as [`StatusStore::report_done`]
    /// would, and is as durable on return. Backends that can record them in one transaction
    /// (or one round trip) do: the overwrite flow reports its files in groups.
    async fn report_done_all(&self, done: &[(FileInfo, FileInfo)]) -> Result<()> {
        for (source, uploaded) in done {
            self.report_done(source, uploaded).await?;
        }
        Ok(())
    }

    /// Records a failure of `file` with its message; returns the number of failures since
    /// the last success, this one included.
    async fn report_error(&self, file: &FileInfo, error: &str) -> Result<u32>;

    /// The record of the file at `path`, if any.
    async fn status(&self, path: &str) -> Result<Option<FileStatus>>;

    /// How many files of this namespace are done and failed.
    async fn counts(&self) -> Result<StatusCounts>;

    /// Whether this namespace has no record at all (a flow's first run): then every file
    /// needs processing whatever its size and time, and the scan need not read them.
    /// Backends answer without counting every record.
    async fn is_empty(&self) -> Result<bool> {
        Ok(self.counts().await? == StatusCounts::default())
    }

    /// The options the store was opened with.
    fn options(&self) -> &StatusStoreOptions;

    /// The store's location for messages (URL with secrets masked).
    fn describe(&self) -> String;

    /// Removes every record of this namespace (for tests and `--reset`). The run lease
    /// stays.
    async fn clear(&self) -> Result<()>;

    /// Takes the run lease of this namespace for `me`, atomically: when there is none, when
    /// the one there is `me`'s (same token), has expired (its heartbeat is older than its
    /// time to live), or is the one whose token is `take_over` (a holder known to be gone).
    /// Otherwise the lease is left alone and its holder returned.
    async fn acquire_lease(&self, me: &Lease, take_over: Option<&str>) -> Result<LeaseAttempt>;

    /// Renews `me` (its heartbeat and time to live as given) if it still holds the lease;
    /// false when it does not (it expired and another run took it, or it was released).
    async fn renew_lease(&self, me: &Lease) -> Result<bool>;

    /// Releases the lease if the run with `token` holds it.
    async fn release_lease(&self, token: &str) -> Result<()>;

    /// The lease record of this namespace, expired or not.
    async fn lease(&self) -> Result<Option<Lease>>;

    /// Whether the store shares a flow's work between cooperating runs (the claim
    /// operations below). Stores that cannot answer every claim operation with an error.
    fn supports_claims(&self) -> bool {
        false
    }

    /// Registers the cooperating run `me` (or renews it: its heartbeat and time to live as
    /// given). Returns false when renewing a run that is no longer registered (it was
    /// evicted as gone).
    async fn join_run(&self, me: &Lease, renew: bool) -> Result<bool> {
        let _ = (me, renew);
        Err(no_claims(self.describe()))
    }

    /// The cooperating runs registered in this namespace, expired or not.
    async fn runs(&self) -> Result<Vec<Lease>> {
        Err(no_claims(self.describe()))
    }

    /// Unregisters the run with `token` and drops its claims.
    async fn leave_run(&self, token: &str) -> Result<()> {
        let _ = token;
        Err(no_claims(self.describe()))
    }

    /// Claims `files` for `me`, atomically per file: a file is granted when it has no
    /// claim, the claim is `me`'s, or its run has expired. Returns the granted files in
    /// order, each with the file as claimed by the expired run it was taken from, if any
    /// (that run may have written the file before it died).
    async fn claim(&self, me: &Lease, files: Vec<FileInfo>) -> Result<Vec<Claimed>> {
        let _ = (me, files);
        Err(no_claims(self.describe()))
    }

    /// [`StatusStore::report_done_all`] for the files still claimed by `token` (fencing),
    /// dropping their claims, in one atomic step. Returns the paths not recorded because
    /// their claim was taken by another run.
    async fn report_done_claimed(
        &self,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> Result<Vec<String>> {
        let _ = (token, done);
        Err(no_claims(self.describe()))
    }

    /// Releases connections and files. The store must not be used afterwards.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// A file granted by [`StatusStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The file as given.
    pub file: FileInfo,
    /// The file as an expired run claimed it, when the claim was taken from one.
    pub taken_from: Option<FileInfo>,
}

fn no_claims(describe: String) -> Error {
    Error::config(format!(
        "status store {describe} cannot share a flow's work between runs (--cooperate): use a Redis, PostgreSQL or MySQL store, or run without --cooperate"
    ))
}

/// The backend a status store URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusStoreUrl {
    /// `memory:`.
    Memory,
    /// `redb://PATH`, `file://PATH` or a plain path.
    Embedded {
        /// The database file.
        path: std::path::PathBuf,
    },
    /// `redis://…`, `rediss://…` or `redis+cluster://…`.
    Redis {
        /// The URL as given.
        url: String,
    },
    /// `postgres://…` or `postgresql://…`.
    Postgres {
        /// The URL as given.
        url: String,
    },
    /// `mysql://…` or `mariadb://…` (rewritten to `mysql://`).
    MySql {
        /// The URL with the `mysql://` scheme.
        url: String,
    },
}

impl StatusStoreUrl {
    /// Parses `url`; an unknown scheme is a [`ErrorKind::Config`](ikkatsu_core::ErrorKind::Config) error naming the masked URL.
    pub fn parse(url: &str) -> Result<Self> {
        // Its password is redacted from every log line and message from now on.
        ikkatsu_core::secret::register_url(url);
        let trimmed = url.trim();
        let lower = trimmed.to_ascii_lowercase();
        let path_of = |rest: &str| -> Result<StatusStoreUrl> {
            if rest.is_empty() {
                return Err(Error::config(format!(
                    "status store URL `{}` names no file: write redb:///PATH/status.redb or a plain path",
                    mask_url(url)
                )));
            }
            Ok(StatusStoreUrl::Embedded { path: rest.into() })
        };
        if lower == "memory:" || lower == "memory://" || lower == "mem:" {
            return Ok(StatusStoreUrl::Memory);
        }
        for scheme in ["redb://", "file://", "redb:"] {
            if lower.starts_with(scheme) {
                return path_of(&trimmed[scheme.len()..]);
            }
        }
        if lower.starts_with("redis://")
            || lower.starts_with("rediss://")
            || lower.starts_with("redis+cluster://")
        {
            return Ok(StatusStoreUrl::Redis {
                url: trimmed.to_string(),
            });
        }
        match ikkatsu_sql::SqlUrl::parse(url, "status store") {
            Ok(Some(ikkatsu_sql::SqlUrl::Postgres { url })) => {
                return Ok(StatusStoreUrl::Postgres { url });
            }
            Ok(Some(ikkatsu_sql::SqlUrl::MySql { url })) => {
                return Ok(StatusStoreUrl::MySql { url });
            }
            // SQLite is no status store: said below, as for any other scheme.
            Ok(Some(ikkatsu_sql::SqlUrl::Sqlite { .. })) | Err(_) | Ok(None) => {}
        }
        let scheme_like = trimmed.split_once(':').is_some_and(|(s, _)| {
            s.len() > 1
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if trimmed.is_empty() || scheme_like {
            return Err(Error::config(format!(
                "status store URL `{}` is not supported: use memory:, redb:///PATH, a file path, redis://HOST:PORT/DB, postgres://USER@HOST/DB or mysql://USER@HOST/DB",
                mask_url(url)
            )));
        }
        path_of(trimmed)
    }

    /// The cargo feature of `ikkatsu-overwrite` that compiles this backend in.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            StatusStoreUrl::Memory => None,
            StatusStoreUrl::Embedded { .. } => Some("embedded"),
            StatusStoreUrl::Redis { .. } => Some("redis"),
            StatusStoreUrl::Postgres { .. } => Some("postgres"),
            StatusStoreUrl::MySql { .. } => Some("mysql"),
        }
    }
}

/// Opens the status store at `url` (see [`StatusStoreUrl`]) for `options`; SQL stores apply
/// their migrations.
pub async fn open_status_store(
    url: &str,
    options: StatusStoreOptions,
) -> Result<Arc<dyn StatusStore>> {
    options.validate()?;
    let parsed = StatusStoreUrl::parse(url)?;
    #[allow(unreachable_patterns)]
    match parsed {
        StatusStoreUrl::Memory => Ok(Arc::new(MemoryStatusStore::new(options))),
        #[cfg(feature = "embedded")]
        StatusStoreUrl::Embedded { path } => {
            Ok(Arc::new(EmbeddedStatusStore::open(path, options).await?))
        }
        #[cfg(feature = "redis")]
        StatusStoreUrl::Redis { url } => {
            Ok(Arc::new(RedisStatusStore::connect(&url, options).await?))
        }
        #[cfg(feature = "postgres")]
        StatusStoreUrl::Postgres { url } => {
            Ok(Arc::new(SqlStatusStore::connect(&url, options).await?))
        }
        #[cfg(feature = "mysql")]
        StatusStoreUrl::MySql { url } => {
            Ok(Arc::new(SqlStatusStore::connect(&url, options).await?))
        }
        other => Err(Error::config(format!(
            "status store URL `{}` needs the `{}` feature of ikkatsu-overwrite, which this build lacks",
            mask_url(url),
            other.feature().unwrap_or("?")
        ))),
    }
}

/// `url` with its password (of the user info; a lone `redis://PASSWORD@…` too) and its
/// secret-looking query parameters replaced by `***`, fit for messages and logs: the one
/// masker of the workspace, [`ikkatsu_core::secret::mask_url`].
pub use ikkatsu_core::secret::mask_url;

/// A store error of kind [`ErrorKind::Repository`](ikkatsu_core::ErrorKind::Repository) naming the store and the operation.
#[cfg(any(feature = "embedded", feature = "redis"))]
pub(crate) fn store_error(
    describe: &str,
    what: &str,
    err: impl std::error::Error + Send + Sync + 'static,
    temporary: bool,
) -> Error {
    Error::new(
        ikkatsu_core::ErrorKind::Repository,
        format!("status store {describe}: {what}: {err}"),
    )
    .with_source(err)
    .set_temporary(temporary)
}

/// Decodes a record stored as JSON.
#[cfg(feature = "embedded")]
pub(crate) fn decode_status(describe: &str, path: &str, bytes: &[u8]) -> Result<FileStatus> {
    serde_json::from_slice(bytes).map_err(|err| {
        Error::new(
            ikkatsu_core::ErrorKind::Parse,
            format!("status store {describe}: the record of `{path}` is not valid: {err}"),
        )
        .with_source(err)
    })
}

/// Encodes a record as compact JSON.
#[cfg(feature = "embedded")]
pub(crate) fn encode_status(status: &FileStatus) -> Result<Vec<u8>> {
    serde_json::to_vec(status).map_err(|err| {
        Error::new(
            ikkatsu_core::ErrorKind::Unexpected,
            format!("encoding a status record: {err}"),
        )
        .with_source(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            StatusStoreUrl::parse("memory:").unwrap(),
            StatusStoreUrl::Memory
        );
        assert_eq!(
            StatusStoreUrl::parse("redb:///tmp/a.redb").unwrap(),
            StatusStoreUrl::Embedded {
                path: "/tmp/a.redb".into()
            }
        );
        assert_eq!(
            StatusStoreUrl::parse("file:///tmp/a.redb").unwrap(),
            StatusStoreUrl::Embedded {
                path: "/tmp/a.redb".into()
            }
        );
        assert_eq!(
            StatusStoreUrl::parse("state/a.redb").unwrap(),
            StatusStoreUrl::Embedded {
                path: "state/a.redb".into()
            }
        );
        assert_eq!(
            StatusStoreUrl::parse("mariadb://u@h/db").unwrap(),
            StatusStoreUrl::MySql {
                url: "mysql://u@h/db".into()
            }
        );
        let err = StatusStoreUrl::parse("ftp://user:secret@host/x").unwrap_err();
        assert!(err.to_string().contains("ftp://user:***@host/x"), "{err}");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn masks_secrets() {
        assert_eq!(mask_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(mask_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(mask_url("redis://pw@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(
            mask_url("redis+cluster://u:pw@h:1,h:2/?read-from-replicas=true"),
            "redis+cluster://u:***@h:1,h:2/?read-from-replicas=true"
        );
        assert_eq!(
            mask_url("redis+cluster://pw@h:1,h:2/"),
            "redis+cluster://***@h:1,h:2/"
        );
        assert_eq!(
            mask_url("mysql://h/db?password=x&a=b"),
            "mysql://h/db?password=***&a=b"
        );
    }

    #[test]
    fn namespace_validation() {
        assert!(StatusStoreOptions::new("flow-1").validate().is_ok());
        assert!(StatusStoreOptions::new("").validate().is_err());
        assert!(StatusStoreOptions::new("a:b").validate().is_err());
    }

    #[test]
    fn change_detection() {
        let t = Utc::now();
        let mut a = FileInfo::new("x", 1);
        a.modified = Some(t);
        let mut b = a.clone();
        assert!(!changed_since(&a, &b));
        b.modified = None;
        assert!(!changed_since(&a, &b), "a missing time decides nothing");
        b.size = 2;
        assert!(changed_since(&a, &b));
        let mut c = a.clone();
        c.modified = Some(t + chrono::Duration::seconds(1));
        assert!(changed_since(&a, &c));
        let mut d = a.clone();
        d.etag = Some("e".into());
        let mut e = a.clone();
        e.etag = Some("f".into());
        assert!(changed_since(&d, &e));
    }
}
