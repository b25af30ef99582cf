//! [`EmbeddedStatusStore`]: a persistent store in one redb file, no server needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition};

use super::lease::{attempt, decide};
use super::{
    FileState, FileStatus, Lease, LeaseAttempt, StatusCounts, StatusStore, StatusStoreOptions,
    decode_status, encode_status, store_error,
};

/// Key: (namespace, source path); value: the [`FileStatus`] as compact JSON.
const TABLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("ikkatsu_file_status");

/// Key: namespace; value: its run [`Lease`] as compact JSON.
const LEASES: TableDefinition<&str, &str> = TableDefinition::new("ikkatsu_status_lease");

/// The file beside the database naming the process that has it open (the last lease it
/// took or renewed, as JSON), so that a second process refused by the file lock can say
/// who holds it.
fn holder_file(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".holder");
    PathBuf::from(name)
}

/// Writes the holder file (best effort: it only serves messages).
fn write_holder(path: &Path, lease: &Lease) {
    let Ok(json) = lease.to_json() else { return };
    let file = holder_file(path);
    let mut temp = file.as_os_str().to_os_string();
    temp.push(format!(".{}", std::process::id()));
    let temp = PathBuf::from(temp);
    if std::fs::write(&temp, json).is_ok() && std::fs::rename(&temp, &file).is_err() {
        let _ = std::fs::remove_file(&temp);
    }
}

/// The refusal of a second process: the file is locked by the process named in the holder
/// file, if any.
fn already_open(describe: &str, path: &Path, err: redb::DatabaseError) -> Error {
    let holder = std::fs::read_to_string(holder_file(path))
        .ok()
        .and_then(|text| Lease::from_json(describe, &text).ok());
    let who = match holder {
        Some(lease) => lease.describe_holder(),
        None => "another process (the holder did not name itself)".to_string(),
    };
    Error::new(
        ErrorKind::AlreadyRunning,
        format!(
            "already running: status store {describe} is open in {who}; one process at a time may use an embedded store: wait for that run to finish, or use a Redis, PostgreSQL or MySQL status store to share one between processes"
        ),
    )
    .with_source(err)
}

/// A status store in a redb database file (URL `redb:///PATH`, `file:///PATH` or a plain
/// path): persistent, transactional, no server. One process at a time may open the file.
///
/// Every call is one transaction: a batch of [`StatusStore::needs_processing`] is one read
/// transaction, each report (and each group of [`StatusStore::report_done_all`]) one durable
/// write transaction.
#[derive(Clone)]
pub struct EmbeddedStatusStore {
    db: Arc<Db>,
    path: PathBuf,
    describe: String,
    options: StatusStoreOptions,
}

impl std::fmt::Debug for EmbeddedStatusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStatusStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish()
    }
}

impl EmbeddedStatusStore {
    /// Opens (creating if missing, with its parent folders) the store file at `path`.
    pub async fn open(path: impl Into<PathBuf>, options: StatusStoreOptions) -> Result<Self> {
        options.validate()?;
        let path = path.into();
        let describe = format!("redb://{}", path.display());
        let open_path = path.clone();
        let open_describe = describe.clone();
        let db = blocking(&describe, move || {
            if let Some(parent) = open_path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|err| {
                    Error::io(
                        format!(
                            "status store {open_describe}: creating {}",
                            parent.display()
                        ),
                        err,
                    )
                })?;
            }
            let db = Database::create(&open_path).map_err(|err| match err {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    already_open(&open_describe, &open_path, err)
                }
                _ => Error::new(
                    ErrorKind::Repository,
                    format!("status store {open_describe}: opening the file: {err}"),
                )
                .with_source(err),
            })?;
            let txn = db
                .begin_write()
                .map_err(|err| store_error(&open_describe, "creating the table", err, false))?;
            txn.open_table(TABLE)
                .map_err(|err| store_error(&open_describe, "creating the table", err, false))?;
            txn.open_table(LEASES)
                .map_err(|err| store_error(&open_describe, "creating the table", err, false))?;
            txn.commit()
                .map_err(|err| store_error(&open_describe, "creating the table", err, false))?;
            // This process has the file now: a holder file left by an earlier one is stale.
            let _ = std::fs::remove_file(holder_file(&open_path));
            Ok(db)
        })
        .await?;
        Ok(EmbeddedStatusStore {
            db: Arc::new(Db::Writable(db)),
            path,
            describe,
            options,
        })
    }

    /// Opens the store file at `path` to read only (a dry run): nothing is created or
    /// written, not even the file's header; `None` when there is no file (then no flow has
    /// recorded anything). Every write is refused.
    pub async fn open_read_only(
        path: impl Into<PathBuf>,
        options: StatusStoreOptions,
    ) -> Result<Option<Self>> {
        options.validate()?;
        let path = path.into();
        if !path.exists() {
            return Ok(None);
        }
        let describe = format!("redb://{}", path.display());
        let open_path = path.clone();
        let open_describe = describe.clone();
        let db = blocking(&describe, move || {
            ReadOnlyDatabase::open(&open_path).map_err(|err| match err {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    already_open(&open_describe, &open_path, err)
                }
                redb::DatabaseError::RepairAborted => Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "status store {open_describe} was not closed cleanly (a run was killed) and needs a repair, which writes: run without --dry-run to repair it"
                    ),
                )
                .with_source(err),
                _ => Error::new(
                    ErrorKind::Repository,
                    format!("status store {open_describe}: opening the file to read: {err}"),
                )
                .with_source(err),
            })
        })
        .await?;
        Ok(Some(EmbeddedStatusStore {
            db: Arc::new(Db::ReadOnly(db)),
            path,
            describe,
            options,
        }))
    }

    /// A store on the same open file with other options (another namespace): one process
    /// opens the file once and shares it between flows.
    pub fn share(&self, options: StatusStoreOptions) -> Result<Self> {
        options.validate()?;
        Ok(EmbeddedStatusStore {
            db: Arc::clone(&self.db),
            path: self.path.clone(),
            describe: self.describe.clone(),
            options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the work of a transaction needs besides the table.
    fn scope(&self, what: &'static str) -> Scope {
        Scope {
            describe: self.describe.clone(),
            namespace: self.options.namespace.clone(),
            what,
        }
    }

    /// Runs `work` on the table in a read transaction, off the async threads.
    async fn read<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Scope, &ReadTable) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let scope = self.scope(what);
        blocking(&self.describe, move || {
            let txn = db.begin_read().map_err(|e| scope.fail(e))?;
            let table = txn.open_table(TABLE).map_err(|e| scope.fail(e))?;
            work(&scope, &table)
        })
        .await
    }

    /// Runs `work` on the table in a write transaction, committed when `work` succeeds, off
    /// the async threads.
    async fn write<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Scope, &mut WriteTable<'_>) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let scope = self.scope(what);
        blocking(&self.describe, move || {
            let txn = db
                .writable(&scope)?
                .begin_write()
                .map_err(|e| scope.fail(e))?;
            let out = {
                let mut table = txn.open_table(TABLE).map_err(|e| scope.fail(e))?;
                work(&scope, &mut table)?
            };
            txn.commit().map_err(|e| scope.fail(e))?;
            Ok(out)
        })
        .await
    }

    /// Runs `work` on the lease table in a write transaction, committed when `work`
    /// succeeds, off the async threads.
    async fn write_lease<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Scope, &mut redb::Table<'_, &'static str, &'static str>) -> Result<T>
            + Send
            + 'static,
    {
        let db = Arc::clone(&self.db);
        let scope = self.scope(what);
        blocking(&self.describe, move || {
            let txn = db
                .writable(&scope)?
                .begin_write()
                .map_err(|e| scope.fail(e))?;
            let out = {
                let mut table = txn.open_table(LEASES).map_err(|e| scope.fail(e))?;
                work(&scope, &mut table)?
            };
            txn.commit().map_err(|e| scope.fail(e))?;
            Ok(out)
        })
        .await
    }

    /// Reads and replaces one record in a write transaction.
    async fn update<F>(&self, path: String, what: &'static str, change: F) -> Result<FileStatus>
    where
        F: FnOnce(Option<FileStatus>) -> FileStatus + Send + 'static,
    {
        self.write(what, move |scope, table| {
            let key = (scope.namespace.as_str(), path.as_str());
            let previous = match table.get(key).map_err(|e| scope.fail(e))? {
                Some(value) => Some(decode_status(&scope.describe, &path, value.value())?),
                None => None,
            };
            let status = change(previous);
            let bytes = encode_status(&status)?;
            table
                .insert(key, bytes.as_slice())
                .map_err(|e| scope.fail(e))?;
            Ok(status)
        })
        .await
    }
}

/// The open file: written by a run, or only read by a dry run.
enum Db {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> std::result::Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::Writable(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        }
    }

    /// The database to write, unless it was opened to read only.
    fn writable(&self, scope: &Scope) -> Result<&Database> {
        match self {
            Db::Writable(db) => Ok(db),
            Db::ReadOnly(_) => Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "status store {}: {}: the store is open to read only (a dry run)",
                    scope.describe, scope.what
                ),
            )),
        }
    }
}

/// The table, read-only.
type ReadTable = redb::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>;
/// The table, in a write transaction.
type WriteTable<'txn> = redb::Table<'txn, (&'static str, &'static str), &'static [u8]>;

/// What the work of a transaction needs besides the table: the flow's namespace, and what
/// errors name (the store, what was being done).
struct Scope {
    describe: String,
    namespace: String,
    what: &'static str,
}

impl Scope {
    fn fail(&self, err: impl Into<redb::Error>) -> Error {
        store_error(&self.describe, self.what, err.into(), false)
    }
}

/// Runs blocking redb work off the async threads.
async fn blocking<T, F>(describe: &str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| store_error(describe, "the storage thread", err, false))?
}

#[async_trait]
impl StatusStore for EmbeddedStatusStore {
    async fn needs_processing(&self, files: Vec<FileInfo>) -> Result<Vec<FileInfo>> {
        if files.is_empty() {
            return Ok(files);
        }
        let max_errors = self.options.max_errors;
        self.read("looking up files", move |scope, table| {
            let mut out = Vec::with_capacity(files.len());
            for file in files {
                let needed = match table
                    .get((scope.namespace.as_str(), file.path.as_str()))
                    .map_err(|e| scope.fail(e))?
                {
                    Some(value) => decode_status(&scope.describe, &file.path, value.value())?
                        .needs_processing(&file, max_errors),
                    None => true,
                };
                if needed {
                    out.push(file);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn report_done(&self, source: &FileInfo, uploaded: &FileInfo) -> Result<()> {
        let uploaded = uploaded.clone();
        self.update(source.path.clone(), "recording a success", move |_| {
            FileStatus::done(&uploaded, Utc::now())
        })
        .await
        .map(drop)
    }

    async fn is_empty(&self) -> Result<bool> {
        self.read("reading records", |scope, table| {
            let mut range = table
                .range((scope.namespace.as_str(), "")..)
                .map_err(|e| scope.fail(e))?;
            match range.next() {
                Some(entry) => {
                    let (key, _) = entry.map_err(|e| scope.fail(e))?;
                    Ok(key.value().0 != scope.namespace)
                }
                None => Ok(true),
            }
        })
        .await
    }

    async fn report_done_all(&self, done: &[(FileInfo, FileInfo)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut records = Vec::with_capacity(done.len());
        for (source, uploaded) in done {
            records.push((
                source.path.clone(),
                encode_status(&FileStatus::done(uploaded, now))?,
            ));
        }
        self.write("recording successes", move |scope, table| {
            for (path, bytes) in &records {
                table
                    .insert((scope.namespace.as_str(), path.as_str()), bytes.as_slice())
                    .map_err(|e| scope.fail(e))?;
            }
            Ok(())
        })
        .await
    }

    async fn report_error(&self, file: &FileInfo, error: &str) -> Result<u32> {
        let failed = file.clone();
        let error = error.to_string();
        let status = self
            .update(file.path.clone(), "recording a failure", move |previous| {
                FileStatus::after_error(previous, &failed, &error, Utc::now())
            })
            .await?;
        Ok(status.error_count)
    }

    async fn status(&self, path: &str) -> Result<Option<FileStatus>> {
        let path = path.to_string();
        self.read("reading a record", move |scope, table| {
            match table
                .get((scope.namespace.as_str(), path.as_str()))
                .map_err(|e| scope.fail(e))?
            {
                Some(value) => Ok(Some(decode_status(&scope.describe, &path, value.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn counts(&self) -> Result<StatusCounts> {
        self.read("counting records", |scope, table| {
            let mut counts = StatusCounts::default();
            for entry in table
                .range((scope.namespace.as_str(), "")..)
                .map_err(|e| scope.fail(e))?
            {
                let (key, value) = entry.map_err(|e| scope.fail(e))?;
                let (ns, path) = key.value();
                if ns != scope.namespace {
                    break;
                }
                match decode_status(&scope.describe, path, value.value())?.state {
                    FileState::Done => counts.done += 1,
                    FileState::Failed => counts.failed += 1,
                }
            }
            Ok(counts)
        })
        .await
    }

    fn options(&self) -> &StatusStoreOptions {
        &self.options
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn clear(&self) -> Result<()> {
        self.write("clearing the namespace", |scope, table| {
            let mut doomed = Vec::new();
            for entry in table
                .range((scope.namespace.as_str(), "")..)
                .map_err(|e| scope.fail(e))?
            {
                let (key, _) = entry.map_err(|e| scope.fail(e))?;
                let (ns, path) = key.value();
                if ns != scope.namespace {
                    break;
                }
                doomed.push(path.to_string());
            }
            for path in doomed {
                table
                    .remove((scope.namespace.as_str(), path.as_str()))
                    .map_err(|e| scope.fail(e))?;
            }
            Ok(())
        })
        .await
    }

    async fn acquire_lease(&self, me: &Lease, take_over: Option<&str>) -> Result<LeaseAttempt> {
        let lease = me.clone();
        let take_over = take_over.map(str::to_string);
        let decision = self
            .write_lease("taking the run lease", move |scope, table| {
                let current = match table
                    .get(scope.namespace.as_str())
                    .map_err(|e| scope.fail(e))?
                {
                    Some(value) => Some(Lease::from_json(&scope.describe, value.value())?),
                    None => None,
                };
                let decision = decide(&lease, current, take_over.as_deref(), Utc::now());
                if decision.is_ok() {
                    let json = lease.to_json()?;
                    table
                        .insert(scope.namespace.as_str(), json.as_str())
                        .map_err(|e| scope.fail(e))?;
                }
                Ok(decision)
            })
            .await?;
        if decision.is_ok() {
            write_holder(&self.path, me);
        }
        Ok(attempt(decision))
    }

    async fn renew_lease(&self, me: &Lease) -> Result<bool> {
        let lease = me.clone();
        let renewed = self
            .write_lease("renewing the run lease", move |scope, table| {
                let ours = match table
                    .get(scope.namespace.as_str())
                    .map_err(|e| scope.fail(e))?
                {
                    Some(value) => {
                        Lease::from_json(&scope.describe, value.value())?.token == lease.token
                    }
                    None => false,
                };
                if ours {
                    let json = lease.to_json()?;
                    table
                        .insert(scope.namespace.as_str(), json.as_str())
                        .map_err(|e| scope.fail(e))?;
                }
                Ok(ours)
            })
            .await?;
        if renewed {
            write_holder(&self.path, me);
        }
        Ok(renewed)
    }

    async fn release_lease(&self, token: &str) -> Result<()> {
        let token = token.to_string();
        self.write_lease("releasing the run lease", move |scope, table| {
            let ours = match table
                .get(scope.namespace.as_str())
                .map_err(|e| scope.fail(e))?
            {
                Some(value) => Lease::from_json(&scope.describe, value.value())?.token == token,
                None => false,
            };
            if ours {
                table
                    .remove(scope.namespace.as_str())
                    .map_err(|e| scope.fail(e))?;
            }
            Ok(())
        })
        .await
    }

    async fn lease(&self) -> Result<Option<Lease>> {
        let db = Arc::clone(&self.db);
        let scope = self.scope("reading the run lease");
        blocking(&self.describe, move || {
            let txn = db.begin_read().map_err(|e| scope.fail(e))?;
            let table = txn.open_table(LEASES).map_err(|e| scope.fail(e))?;
            match table
                .get(scope.namespace.as_str())
                .map_err(|e| scope.fail(e))?
            {
                Some(value) => Ok(Some(Lease::from_json(&scope.describe, value.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}
