//! A storage backend of the program's own, plugged in from Rust without editing ikkatsu: a
//! map in memory that fails the reads and writes it is told to fail. It passes the storage
//! conformance suite, and the overwrite flow and the file items run over it, as a `Storage`
//! object and through a URL scheme of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use ikkatsu_core::prelude::*;
use ikkatsu_core::{Error, ErrorKind, Record, Result};
use ikkatsu_items::object::{
    CsvObjectReaderConfig, ObjectItemReader, ObjectItemWriter, ObjectWriterConfig,
};
use ikkatsu_overwrite::{OverwriteFlow, OverwriteOptions, StatusStoreOptions, process_fn};
use ikkatsu_storage::{FileInfo, Storage, StorageBackend, StorageConnection, StorageOptions};

/// What an injected fault is.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// A failure worth retrying (a dropped connection): the storage's retry layer retries it.
    Temporary,
    /// A refusal: not retried, the file fails.
    Refused,
}

/// One file of the map.
#[derive(Debug, Clone)]
struct Stored {
    content: Bytes,
    modified: DateTime<Utc>,
    etag: String,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, Stored>,
    /// Reads and writes of each path so far, by operation.
    calls: HashMap<(&'static str, String), u32>,
    /// The faults to inject: (operation, path, which call from 1) → fault.
    faults: HashMap<(&'static str, String, u32), Fault>,
    /// Writes so far, for etags.
    versions: u64,
}

/// An in-memory map of files with injected faults. Clones share the map.
#[derive(Debug, Clone, Default)]
struct FaultyMap {
    state: Arc<Mutex<State>>,
    injected: Arc<AtomicU64>,
}

impl FaultyMap {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `nth` call (from 1) of `op` (`read` or `write`) on `path` fails with `fault`.
    fn fail(&self, op: &'static str, path: &str, nth: u32, fault: Fault) {
        self.state()
            .faults
            .insert((op, path.to_string(), nth), fault);
    }

    /// Counts a call of `op` on `path` and fails it when told to.
    fn call(&self, op: &'static str, path: &str) -> Result<()> {
        let mut state = self.state();
        let count = state.calls.entry((op, path.to_string())).or_insert(0);
        *count += 1;
        let nth = *count;
        let Some(fault) = state.faults.get(&(op, path.to_string(), nth)).copied() else {
            return Ok(());
        };
        self.injected.fetch_add(1, Ordering::SeqCst);
        Err(match fault {
            Fault::Temporary => Error::new(
                ErrorKind::Io,
                format!("injected: {op} {path} #{nth} lost its connection"),
            )
            .set_temporary(true),
            Fault::Refused => Error::new(
                ErrorKind::PermissionDenied,
                format!("injected: {op} {path} #{nth} refused"),
            ),
        })
    }

    fn info(path: &str, stored: &Stored) -> FileInfo {
        let mut info = FileInfo::new(path, stored.content.len() as u64);
        info.modified = Some(stored.modified);
        info.etag = Some(stored.etag.clone());
        info
    }

    fn put(&self, path: &str, content: &str) {
        let mut state = self.state();
        state.versions += 1;
        let stored = Stored {
            content: Bytes::from(content.to_string()),
            modified: Utc::now(),
            etag: format!("v{}", state.versions),
        };
        state.files.insert(path.to_string(), stored);
    }

    fn text(&self, path: &str) -> String {
        let state = self.state();
        let stored = state
            .files
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        String::from_utf8(stored.content.to_vec()).expect("UTF-8")
    }

    fn paths(&self) -> Vec<String> {
        self.state().files.keys().cloned().collect()
    }
}

fn not_found(path: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no file {path}"))
}

impl StorageBackend for FaultyMap {
    fn name(&self) -> &'static str {
        "faulty"
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let state = self.state();
        let stored = state.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(FaultyMap::info(path, stored))
    }

    async fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<Bytes> {
        self.call("read", path)?;
        let state = self.state();
        let content = &state
            .files
            .get(path)
            .ok_or_else(|| not_found(path))?
            .content;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let end = match len {
            Some(len) => start
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                .min(content.len()),
            None => content.len(),
        };
        Ok(content.slice(start..end))
    }

    async fn write(&self, path: &str, content: Bytes) -> Result<()> {
        self.call("write", path)?;
        let mut state = self.state();
        state.versions += 1;
        let stored = Stored {
            content,
            modified: Utc::now(),
            etag: format!("v{}", state.versions),
        };
        state.files.insert(path.to_string(), stored);
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.state().files.remove(path);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<FileInfo>> {
        let state = self.state();
        Ok(state
            .files
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(path, stored)| FaultyMap::info(path, stored))
            .collect())
    }
}

/// The maps the `faulty://NAME` URLs open.
fn named_maps() -> &'static Mutex<HashMap<String, FaultyMap>> {
    static MAPS: OnceLock<Mutex<HashMap<String, FaultyMap>>> = OnceLock::new();
    MAPS.get_or_init(Default::default)
}

/// Opens `faulty://NAME`: the map registered under that name.
fn open_named(connection: &StorageConnection) -> Result<FaultyMap> {
    let name = connection
        .url
        .strip_prefix("faulty://")
        .unwrap_or_default()
        .trim_end_matches('/');
    let maps = named_maps().lock().unwrap_or_else(|p| p.into_inner());
    maps.get(name).cloned().ok_or_else(|| {
        Error::config(format!(
            "storage {}: no faulty map is named `{name}`",
            connection.shown_url()
        ))
    })
}

/// A fresh map reachable as `faulty://NAME`.
fn named(name: &str) -> FaultyMap {
    ikkatsu_storage::register_scheme("faulty", open_named).expect("register the scheme");
    let map = FaultyMap::default();
    named_maps()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string(), map.clone());
    map
}

fn storage(map: &FaultyMap) -> Storage {
    Storage::from_backend(map.clone(), &StorageOptions::default()).expect("storage")
}

/// One test of the conformance suite; the two large behaviours run sized, in `sized`.
macro_rules! behaviour {
    (streams_100_mb_in_flat_memory) => {};
    (walk_counts_10000_files_exactly) => {};
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let storage = super::storage(&super::FaultyMap::default());
            ikkatsu_testkit::storage::$name(storage).await;
        }
    };
}

macro_rules! conformance {
    ($($name:ident),*) => {
        mod conformance {
            $( behaviour!($name); )*
        }
    };
}
ikkatsu_testkit::storage_behaviours!(conformance);

// The two large behaviours of the suite, sized: the map holds every file in memory, so the
// memory check of 100 MB would measure the map rather than the streaming, and 10 000 files
// prove nothing more about a map than 1 000.
mod sized {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_in_flat_memory() {
        let storage = super::storage(&super::FaultyMap::default());
        ikkatsu_testkit::storage::streams_in_flat_memory(storage, 8 * 1024 * 1024).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn walk_counts_files_exactly() {
        let storage = super::storage(&super::FaultyMap::default());
        ikkatsu_testkit::storage::walk_counts_files_exactly(storage, 1000).await;
    }
}

#[tokio::test]
async fn temporary_faults_are_retried_and_refusals_reported() {
    let map = FaultyMap::default();
    map.put("a.txt", "alpha");
    map.fail("read", "a.txt", 2, Fault::Temporary);
    // The retry of the second read is the third call.
    map.fail("read", "a.txt", 4, Fault::Refused);
    let storage = storage(&map);
    assert_eq!(storage.read("a.txt").await.unwrap().as_ref(), b"alpha");
    // The second read fails once, is retried by the storage, and succeeds.
    assert_eq!(storage.read("a.txt").await.unwrap().as_ref(), b"alpha");
    assert_eq!(storage.retry_count(), 1);
    // The refusal that follows is not retried; the message names the storage and the path.
    let err = storage.read("a.txt").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(!err.is_temporary());
    assert!(err.message().contains("faulty:"), "{}", err.message());
    assert!(err.message().contains("a.txt"), "{}", err.message());
    assert_eq!(storage.retry_count(), 1);
    assert_eq!(map.injected.load(Ordering::SeqCst), 2);
    assert_eq!(storage.capabilities().scheme, "faulty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overwrite_flow_runs_over_it() {
    let map = FaultyMap::default();
    map.put("in/a.txt", "alpha\n");
    map.put("in/b.txt", "beta\n");
    map.put("in/c.txt", "gamma\n");
    map.put("in/skip.bin", "binary\n");
    // The download of a.txt and the upload of b.txt each fail once and are retried; the
    // download of c.txt is refused.
    map.fail("read", "in/a.txt", 1, Fault::Temporary);
    map.fail("write", "in/b.txt", 1, Fault::Temporary);
    map.fail("read", "in/c.txt", 1, Fault::Refused);
    let source = storage(&map);

    let state = tempfile::tempdir().unwrap();
    let mut options = OverwriteOptions::new(state.path());
    options.walk = ikkatsu_storage::WalkOptions::new().include("*.txt");
    options.retry.initial_backoff = std::time::Duration::from_millis(5);
    let status = ikkatsu_overwrite::open_status_store("memory:", StatusStoreOptions::new("own"))
        .await
        .unwrap();
    let upper = process_fn(
        |input: std::path::PathBuf, output: std::path::PathBuf| async move {
            let text = tokio::fs::read_to_string(&input)
                .await
                .map_err(|e| Error::io("in", e))?;
            tokio::fs::write(&output, text.to_uppercase())
                .await
                .map_err(|e| Error::io("out", e))
        },
    );
    let flow = OverwriteFlow::new(source.clone(), status, upper, options);
    let cancel = CancellationToken::new();
    assert_eq!(flow.scan(&cancel).await.unwrap().queued, 3);
    let summary = flow.process(&cancel, None).await.unwrap();

    assert_eq!(summary.progress.done, 2, "{:?}", summary.failures);
    assert_eq!(summary.progress.failed, 1);
    assert_eq!(summary.progress.conflicts, 0);
    assert_eq!(summary.failures.len(), 1);
    assert_eq!(summary.failures[0].path, "in/c.txt");
    assert_eq!(map.text("in/a.txt"), "ALPHA\n");
    assert_eq!(map.text("in/b.txt"), "BETA\n");
    assert_eq!(map.text("in/c.txt"), "gamma\n");
    assert_eq!(map.text("in/skip.bin"), "binary\n");
    assert_eq!(
        map.paths(),
        ["in/a.txt", "in/b.txt", "in/c.txt", "in/skip.bin"]
    );
    assert_eq!(source.retry_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_items_read_and_write_it_by_url() {
    let map = named("items");
    map.put("in/1.csv", "id,name\n1,Aiko\n2,Ben\n");
    map.put("in/2.csv", "id,name\n3,Chloé\n");
    map.fail("read", "in/2.csv", 1, Fault::Temporary);

    let reader =
        ObjectItemReader::csv(CsvObjectReaderConfig::new("faulty://items", "in/*.csv")).unwrap();
    let writer =
        ObjectItemWriter::json_lines(ObjectWriterConfig::new("faulty://items", "out")).unwrap();
    let step = ChunkStep::<Record, Record>::builder("copy")
        .reader(reader)
        .writer(writer)
        .chunk_size(2)
        .build()
        .unwrap();
    let job = Job::linear("copy", vec![Arc::new(step)]).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, JobParameters::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed);

    let parts: Vec<String> = map
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("out/"))
        .collect();
    let written: String = parts.iter().map(|p| map.text(p)).collect();
    assert_eq!(
        written,
        "{\"id\":\"1\",\"name\":\"Aiko\"}\n{\"id\":\"2\",\"name\":\"Ben\"}\n{\"id\":\"3\",\"name\":\"Chloé\"}\n"
    );
    assert_eq!(map.injected.load(Ordering::SeqCst), 1);
}

#[test]
fn schemes_of_ikkatsu_cannot_be_taken() {
    for scheme in ["s3", "FILE", "memory", "gs", "x", "1ab", "a b"] {
        let err = ikkatsu_storage::register_scheme(scheme, open_named).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{scheme}");
    }
}

#[test]
fn an_unregistered_name_is_a_clear_error() {
    named("exists");
    let err = Storage::open("faulty://nothing-here").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("nothing-here"), "{}", err.message());
}
