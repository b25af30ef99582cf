//! [`MemoryStatusStore`]: records in process memory, lost at exit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;
use ikkatsu_core::Result;
use ikkatsu_storage::FileInfo;

use super::lease::{attempt, decide};
use super::{
    Claimed, FileState, FileStatus, Lease, LeaseAttempt, StatusCounts, StatusStore,
    StatusStoreOptions,
};

/// Cooperating runs and their claims, per namespace.
#[derive(Debug, Default)]
struct Coop {
    runs: HashMap<String, HashMap<String, Lease>>,
    /// Namespace → path → (token, the file as claimed).
    claims: HashMap<String, HashMap<String, (String, FileInfo)>>,
}

type Records = HashMap<String, HashMap<String, FileStatus>>;

/// A status store in process memory (URL `memory:`): for tests, dry runs and one-off runs
/// that need no resume.
///
/// Stores made with [`MemoryStatusStore::share`] see the same records, each in its own
/// namespace.
#[derive(Debug, Clone)]
pub struct MemoryStatusStore {
    records: Arc<Mutex<Records>>,
    /// The run lease of each namespace.
    leases: Arc<Mutex<HashMap<String, Lease>>>,
    coop: Arc<Mutex<Coop>>,
    options: StatusStoreOptions,
}

impl MemoryStatusStore {
    /// An empty store.
    pub fn new(options: StatusStoreOptions) -> Self {
        MemoryStatusStore {
            records: Arc::new(Mutex::new(HashMap::new())),
            leases: Arc::new(Mutex::new(HashMap::new())),
            coop: Arc::new(Mutex::new(Coop::default())),
            options,
        }
    }

    /// A store on the same records as `self`, with other options (another namespace).
    pub fn share(&self, options: StatusStoreOptions) -> Self {
        MemoryStatusStore {
            records: Arc::clone(&self.records),
            leases: Arc::clone(&self.leases),
            coop: Arc::clone(&self.coop),
            options,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock cannot leave a record half-written: every update
        // is a single insert.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn coop(&self) -> MutexGuard<'_, Coop> {
        self.coop
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl StatusStore for MemoryStatusStore {
    async fn needs_processing(&self, files: Vec<FileInfo>) -> Result<Vec<FileInfo>> {
        let records = self.lock();
        let namespace = records.get(&self.options.namespace);
        Ok(files
            .into_iter()
            .filter(|file| match namespace.and_then(|ns| ns.get(&file.path)) {
                Some(status) => status.needs_processing(file, self.options.max_errors),
                None => true,
            })
            .collect())
    }

    async fn report_done(&self, source: &FileInfo, uploaded: &FileInfo) -> Result<()> {
        let mut records = self.lock();
        records
            .entry(self.options.namespace.clone())
            .or_default()
            .insert(source.path.clone(), FileStatus::done(uploaded, Utc::now()));
        Ok(())
    }

    async fn is_empty(&self) -> Result<bool> {
        Ok(self
            .lock()
            .get(&self.options.namespace)
            .is_none_or(HashMap::is_empty))
    }

    async fn report_done_all(&self, done: &[(FileInfo, FileInfo)]) -> Result<()> {
        let now = Utc::now();
        let mut records = self.lock();
        let namespace = records.entry(self.options.namespace.clone()).or_default();
        for (source, uploaded) in done {
            namespace.insert(source.path.clone(), FileStatus::done(uploaded, now));
        }
        Ok(())
    }

    async fn report_error(&self, file: &FileInfo, error: &str) -> Result<u32> {
        let mut records = self.lock();
        let namespace = records.entry(self.options.namespace.clone()).or_default();
        let previous = namespace.remove(&file.path);
        let status = FileStatus::after_error(previous, file, error, Utc::now());
        let count = status.error_count;
        namespace.insert(file.path.clone(), status);
        Ok(count)
    }

    async fn status(&self, path: &str) -> Result<Option<FileStatus>> {
        Ok(self
            .lock()
            .get(&self.options.namespace)
            .and_then(|ns| ns.get(path))
            .cloned())
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let mut counts = StatusCounts::default();
        if let Some(ns) = self.lock().get(&self.options.namespace) {
            for status in ns.values() {
                match status.state {
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
        "memory:".to_string()
    }

    async fn clear(&self) -> Result<()> {
        self.lock().remove(&self.options.namespace);
        Ok(())
    }

    async fn acquire_lease(&self, me: &Lease, take_over: Option<&str>) -> Result<LeaseAttempt> {
        let mut leases = self.leases();
        let current = leases.get(&self.options.namespace).cloned();
        let decision = decide(me, current, take_over, Utc::now());
        if decision.is_ok() {
            leases.insert(self.options.namespace.clone(), me.clone());
        }
        Ok(attempt(decision))
    }

    async fn renew_lease(&self, me: &Lease) -> Result<bool> {
        let mut leases = self.leases();
        match leases.get_mut(&self.options.namespace) {
            Some(current) if current.token == me.token => {
                *current = me.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, token: &str) -> Result<()> {
        let mut leases = self.leases();
        if leases
            .get(&self.options.namespace)
            .is_some_and(|l| l.token == token)
        {
            leases.remove(&self.options.namespace);
        }
        Ok(())
    }

    async fn lease(&self) -> Result<Option<Lease>> {
        Ok(self.leases().get(&self.options.namespace).cloned())
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn join_run(&self, me: &Lease, renew: bool) -> Result<bool> {
        let mut coop = self.coop();
        let runs = coop.runs.entry(self.options.namespace.clone()).or_default();
        if renew && !runs.contains_key(&me.token) {
            return Ok(false);
        }
        runs.insert(me.token.clone(), me.clone());
        Ok(true)
    }

    async fn runs(&self) -> Result<Vec<Lease>> {
        Ok(self
            .coop()
            .runs
            .get(&self.options.namespace)
            .map(|runs| runs.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn leave_run(&self, token: &str) -> Result<()> {
        let mut coop = self.coop();
        if let Some(runs) = coop.runs.get_mut(&self.options.namespace) {
            runs.remove(token);
        }
        if let Some(claims) = coop.claims.get_mut(&self.options.namespace) {
            claims.retain(|_, (owner, _)| owner != token);
        }
        Ok(())
    }

    async fn claim(&self, me: &Lease, files: Vec<FileInfo>) -> Result<Vec<Claimed>> {
        let now = Utc::now();
        let mut coop = self.coop();
        let Coop { runs, claims } = &mut *coop;
        let runs = runs.get(&self.options.namespace);
        let claims = claims.entry(self.options.namespace.clone()).or_default();
        let mut granted = Vec::new();
        for file in files {
            let taken_from = match claims.get(&file.path) {
                None => None,
                Some((owner, _)) if *owner == me.token => None,
                Some((owner, claimed)) => {
                    let live = runs
                        .and_then(|runs| runs.get(owner))
                        .is_some_and(|run| !run.is_expired(now));
                    if live {
                        continue;
                    }
                    Some(claimed.clone())
                }
            };
            claims.insert(file.path.clone(), (me.token.clone(), file.clone()));
            granted.push(Claimed { file, taken_from });
        }
        Ok(granted)
    }

    async fn report_done_claimed(
        &self,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> Result<Vec<String>> {
        let now = Utc::now();
        let mut lost = Vec::new();
        let mut coop = self.coop();
        let claims = coop
            .claims
            .entry(self.options.namespace.clone())
            .or_default();
        let mut records = self.lock();
        let namespace = records.entry(self.options.namespace.clone()).or_default();
        for (source, uploaded) in done {
            if claims
                .get(&source.path)
                .is_some_and(|(owner, _)| owner == token)
            {
                claims.remove(&source.path);
                namespace.insert(source.path.clone(), FileStatus::done(uploaded, now));
            } else {
                lost.push(source.path.clone());
            }
        }
        Ok(lost)
    }
}
