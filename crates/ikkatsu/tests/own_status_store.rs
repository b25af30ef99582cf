//! A status store written outside ikkatsu: a type of this test implementing the public
//! [`StatusStore`] trait (an in-memory map with injected faults) passes the testkit's
//! status-store suite and drives the overwrite flow, without editing ikkatsu.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;
use ikkatsu::core::{CancellationToken, Error, ErrorKind, Result};
use ikkatsu::overwrite::{
    FileState, FileStatus, Lease, LeaseAttempt, OverwriteFlow, OverwriteOptions, StatusCounts,
    StatusStore, StatusStoreOptions, process_fn,
};
use ikkatsu::storage::{FileInfo, Storage, WalkOptions};
use ikkatsu_testkit::status_store::{StatusStoreFactory, run_all};

/// What the map holds, shared by every namespace's store.
#[derive(Default)]
struct Shared {
    /// (namespace, path) → record.
    records: HashMap<(String, String), FileStatus>,
    /// namespace → lease.
    leases: HashMap<String, Lease>,
}

/// A status store in a map, with faults to inject: the next `fail_lookups` calls of
/// `needs_processing` fail with a temporary error.
#[derive(Clone)]
struct MapStatusStore {
    shared: Arc<Mutex<Shared>>,
    fail_lookups: Arc<AtomicU32>,
    options: StatusStoreOptions,
}

impl MapStatusStore {
    fn new(options: StatusStoreOptions) -> Self {
        MapStatusStore {
            shared: Arc::default(),
            fail_lookups: Arc::default(),
            options,
        }
    }

    fn namespace(&self, options: StatusStoreOptions) -> Self {
        MapStatusStore {
            options,
            ..self.clone()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, path: &str) -> (String, String) {
        (self.options.namespace.clone(), path.to_string())
    }
}

#[async_trait]
impl StatusStore for MapStatusStore {
    async fn needs_processing(&self, files: Vec<FileInfo>) -> Result<Vec<FileInfo>> {
        if self
            .fail_lookups
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::new(
                ErrorKind::Repository,
                "status store map: injected lookup fault",
            )
            .set_temporary(true));
        }
        let shared = self.lock();
        Ok(files
            .into_iter()
            .filter(|file| match shared.records.get(&self.key(&file.path)) {
                Some(status) => status.needs_processing(file, self.options.max_errors),
                None => true,
            })
            .collect())
    }

    async fn report_done(&self, source: &FileInfo, uploaded: &FileInfo) -> Result<()> {
        let record = FileStatus::done(uploaded, Utc::now());
        self.lock().records.insert(self.key(&source.path), record);
        Ok(())
    }

    async fn report_error(&self, file: &FileInfo, error: &str) -> Result<u32> {
        let mut shared = self.lock();
        let previous = shared.records.remove(&self.key(&file.path));
        let record = FileStatus::after_error(previous, file, error, Utc::now());
        let count = record.error_count;
        shared.records.insert(self.key(&file.path), record);
        Ok(count)
    }

    async fn status(&self, path: &str) -> Result<Option<FileStatus>> {
        Ok(self.lock().records.get(&self.key(path)).cloned())
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let mut counts = StatusCounts::default();
        for ((namespace, _), record) in &self.lock().records {
            if *namespace == self.options.namespace {
                match record.state {
                    FileState::Done => counts.done += 1,
                    FileState::Failed => counts.failed += 1,
                }
            }
        }
        Ok(counts)
    }

    fn options(&self) -> &StatusStoreOptions {
        &self.options
    }

    fn describe(&self) -> String {
        "map".to_string()
    }

    async fn clear(&self) -> Result<()> {
        let namespace = &self.options.namespace;
        self.lock().records.retain(|(ns, _), _| ns != namespace);
        Ok(())
    }

    async fn acquire_lease(&self, me: &Lease, take_over: Option<&str>) -> Result<LeaseAttempt> {
        let mut shared = self.lock();
        let current = shared.leases.get(&self.options.namespace).cloned();
        let replaced = match current {
            None => None,
            Some(current) if current.token == me.token => None,
            Some(current) if me.may_replace(&current, take_over, Utc::now()) => Some(current),
            Some(holder) => return Ok(LeaseAttempt::Held(holder)),
        };
        shared
            .leases
            .insert(self.options.namespace.clone(), me.clone());
        Ok(LeaseAttempt::Acquired { replaced })
    }

    async fn renew_lease(&self, me: &Lease) -> Result<bool> {
        let mut shared = self.lock();
        match shared.leases.get_mut(&self.options.namespace) {
            Some(current) if current.token == me.token => {
                *current = me.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, token: &str) -> Result<()> {
        let mut shared = self.lock();
        if shared
            .leases
            .get(&self.options.namespace)
            .is_some_and(|lease| lease.token == token)
        {
            shared.leases.remove(&self.options.namespace);
        }
        Ok(())
    }

    async fn lease(&self) -> Result<Option<Lease>> {
        Ok(self.lock().leases.get(&self.options.namespace).cloned())
    }
}

/// Opens map stores that share one map, each namespace apart.
struct MapFactory(MapStatusStore);

#[async_trait]
impl StatusStoreFactory for MapFactory {
    async fn open(&self, namespace: &str, max_errors: u32) -> Arc<dyn StatusStore> {
        let options = StatusStoreOptions::new(namespace).with_max_errors(max_errors);
        Arc::new(self.0.namespace(options))
    }

    async fn reopen(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn an_own_status_store_passes_the_status_store_suite() {
    run_all(&MapFactory(MapStatusStore::new(
        StatusStoreOptions::default(),
    )))
    .await;
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn an_own_status_store_drives_the_overwrite_flow() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for rel in ["a.txt", "dir/b.txt", "dir/c.txt"] {
        write(&root, rel, &format!("{rel}\n"));
    }
    let store = MapStatusStore::new(StatusStoreOptions::new("own"));
    let upper = process_fn(|input: PathBuf, output: PathBuf| async move {
        let text = tokio::fs::read_to_string(&input)
            .await
            .map_err(|e| Error::io("in", e))?;
        tokio::fs::write(&output, text.to_uppercase())
            .await
            .map_err(|e| Error::io("out", e))
    });
    let mut options = OverwriteOptions::new(dir.path().join("state"));
    options.walk = WalkOptions::new().include("*.txt");
    let source = Storage::open(&format!("file://{}", root.display())).unwrap();
    let flow = OverwriteFlow::new(source, Arc::new(store.clone()), upper, options);
    let cancel = CancellationToken::new();

    // First run: the store is empty, every file is processed once and recorded as done.
    let scan = flow.scan(&cancel).await.unwrap();
    assert_eq!((scan.matched, scan.queued), (3, 3));
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 3);
    assert_eq!(summary.progress.failed, 0);
    assert_eq!(
        std::fs::read_to_string(root.join("dir/b.txt")).unwrap(),
        "DIR/B.TXT\n"
    );
    assert_eq!(
        store.counts().await.unwrap(),
        StatusCounts { done: 3, failed: 0 }
    );
    let record = store.status("a.txt").await.unwrap().unwrap();
    assert_eq!(record.state, FileState::Done);
    assert_eq!(record.uploaded.unwrap().size, 6);
    assert_eq!(
        store.lease().await.unwrap(),
        None,
        "the run released its lease"
    );

    // A fault of the store fails the scan with the store's own message.
    store.fail_lookups.store(1, Ordering::SeqCst);
    let err = flow.scan(&cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Repository);
    assert!(
        err.to_string()
            .contains("status store map: injected lookup fault"),
        "{err}"
    );

    // Once the store answers again, the next run finds one changed file and nothing else.
    write(&root, "dir/c.txt", "changed\n");
    let scan = flow.scan(&cancel).await.unwrap();
    assert_eq!((scan.matched, scan.queued), (3, 1));
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 1);
    assert_eq!(
        std::fs::read_to_string(root.join("dir/c.txt")).unwrap(),
        "CHANGED\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("a.txt")).unwrap(),
        "A.TXT\n",
        "an unchanged file is not processed again"
    );
}
