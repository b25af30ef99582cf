//! The journal of in-flight uploads: an entry is written before a file's new content can
//! reach the storage, made durable before the upload (or rename) happens, and ended only
//! after the file's status is durable in the status store. After a crash,
//! [`Journal::pending`] lists the files whose upload may or may not have happened; the flow
//! compares each with the storage to decide, so that no file is transformed twice.
//!
//! The journal is an append-only log in segments (`NNNNNNNNNNNNNNNNNNNN.log` in its
//! directory), one JSON line per event: `{"begin":{"source":…,"before":…}}` or
//! `{"end":"path"}`; an end is always written to the segment of its begin. **Group commit**:
//! [`Journal::record`] only writes (a process killed with `kill -9` loses nothing written),
//! and one [`Journal::sync`] makes every entry recorded so far durable with a single
//! `fdatasync`, however many concurrent uploads it covers. A segment is deleted once every
//! entry in it has ended and a newer segment has taken over, so the journal's size stays
//! bounded by the number of files in flight. Ends are not synced on their own: an end lost
//! in a power failure only makes the next run look at that (already recorded) file again.
//!
//! A line cut off by a crash in the middle of a write is ignored (its upload had not started).
//! Journals of earlier versions (one `HASH.json` file per entry) are still read.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;
use serde::{Deserialize, Serialize};

/// One in-flight upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The source file as downloaded (the status store's key is its path).
    pub source: FileInfo,
    /// The target file before the upload (`None`: it did not exist).
    pub before: Option<FileInfo>,
}

/// A segment is closed for new entries once it holds this many bytes.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// One line of a segment, as written.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum LineOut<'a> {
    Begin(&'a JournalEntry),
    End(&'a str),
}

/// One line of a segment, as read.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum LineIn {
    Begin(Box<JournalEntry>),
    End(String),
}

/// The journal of in-flight uploads in a directory (see the [module docs](self)).
///
/// Every method may be called from many tasks at once. [`Journal::record`] and
/// [`Journal::end`] append one line to a file under a lock (a write to the page cache,
/// without waiting for the disk); [`Journal::sync`] waits for the disk on a blocking thread.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
    /// Held by the one task that syncs; others wait and usually find their entries synced.
    sync_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    segments: BTreeMap<u64, Segment>,
    /// The segment new entries go to.
    current: Option<u64>,
    next_id: u64,
    /// Open entries: path → segment.
    open: HashMap<String, u64>,
    /// Entries recorded so far, and how many of them are known durable.
    recorded: u64,
    synced: u64,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Entries begun and not ended.
    open: usize,
    bytes: u64,
    /// Holds entries recorded since the last sync.
    unsynced: bool,
    /// Its name in the directory is durable.
    named: bool,
}

impl Journal {
    /// Opens (creating it if needed) the journal in `dir`. Entries left by an earlier run are
    /// not read: see [`Journal::pending`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|err| dir_error(&dir, err))?;
        let mut next_id = 0;
        for entry in std::fs::read_dir(&dir).map_err(|err| dir_error(&dir, err))? {
            let entry = entry.map_err(|err| dir_error(&dir, err))?;
            if let Some(id) = segment_id(&entry.path()) {
                next_id = next_id.max(next_segment_id(&dir, id)?);
            }
        }
        Ok(Journal {
            dir,
            state: Mutex::new(State {
                next_id,
                ..State::default()
            }),
            sync_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is completed before the lock is released, and a failed
        // write leaves the state as it was: a poisoned lock holds a consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records, durably, that the upload of `entry.source.path` is about to start:
    /// [`Journal::record`] then [`Journal::sync`].
    pub async fn begin(&self, entry: &JournalEntry) -> Result<()> {
        self.record(entry)?;
        self.sync().await
    }

    /// Records that the upload of `entry.source.path` may start once [`Journal::sync`] has
    /// returned. Written at once (a killed process loses nothing), not yet flushed to disk.
    /// A path already in flight is refused.
    pub fn record(&self, entry: &JournalEntry) -> Result<()> {
        let mut line = serde_json::to_vec(&LineOut::Begin(entry))?;
        line.push(b'\n');
        let path = &entry.source.path;
        let mut state = self.lock();
        if state.open.contains_key(path) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "journal {}: `{path}` is already being uploaded (is it twice in the backlog?)",
                    self.dir.display()
                ),
            ));
        }
        let id = self.writable_segment(&mut state)?;
        let segment = state
            .segments
            .get_mut(&id)
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "journal: segment vanished"))?;
        (&*segment.file)
            .write_all(&line)
            .map_err(|err| entry_error(&segment.path, err))?;
        segment.bytes += line.len() as u64;
        segment.open += 1;
        segment.unsynced = true;
        state.recorded += 1;
        state.open.insert(path.clone(), id);
        Ok(())
    }

    /// The segment to append a new entry to, starting a new one when there is none or the
    /// current one is full (deleting the old one if nothing in it is open).
    fn writable_segment(&self, state: &mut State) -> Result<u64> {
        if let Some(id) = state.current
            && state
                .segments
                .get(&id)
                .is_some_and(|s| s.bytes < SEGMENT_BYTES)
        {
            return Ok(id);
        }
        if let Some(old) = state.current.take() {
            remove_if_done(state, old);
        }
        let id = state.next_id;
        let next_id = next_segment_id(&self.dir, id)?;
        let path = self.dir.join(format!("{id:020}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|err| entry_error(&path, err))?;
        state.next_id = next_id;
        state.segments.insert(
            id,
            Segment {
                path,
                file: Arc::new(file),
                open: 0,
                bytes: 0,
                unsynced: false,
                named: false,
            },
        );
        state.current = Some(id);
        Ok(id)
    }

    /// Makes every entry recorded so far durable. Concurrent callers share one flush.
    pub async fn sync(&self) -> Result<()> {
        {
            let state = self.lock();
            if state.synced >= state.recorded {
                return Ok(());
            }
        }
        self.sync_with(|flush| match flush {
            Some(flush) => flush.flush_here(),
            None => Ok(()),
        })
        .await
    }

    /// [`Journal::sync`], with the flush done by `flush` on a blocking thread: given what
    /// must reach the disk (`None`: nothing, another caller flushed it meanwhile), it
    /// calls [`JournalFlush::flush_here`] or makes those files durable itself together
    /// with other files (one `syncfs` of a file system that holds them all covers them:
    /// one journal commit of the file system instead of two). Concurrent callers share
    /// one flush. Returns what `flush` returns.
    pub async fn sync_with<F, T>(&self, flush: F) -> Result<T>
    where
        F: FnOnce(Option<JournalFlush>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let target = self.lock().recorded;
        let _turn = self.sync_lock.lock().await;
        let request = {
            let mut state = self.lock();
            if state.synced >= target {
                None
            } else {
                let mut files = Vec::new();
                let mut name_dir = false;
                for segment in state.segments.values_mut().filter(|s| s.unsynced) {
                    files.push((segment.path.clone(), Arc::clone(&segment.file)));
                    segment.unsynced = false;
                    name_dir |= !segment.named;
                    segment.named = true;
                }
                Some((
                    JournalFlush {
                        dir: self.dir.clone(),
                        files,
                        name_dir,
                    },
                    state.recorded,
                ))
            }
        };
        let upto = request.as_ref().map(|(_, upto)| *upto);
        let flushed = tokio::task::spawn_blocking(move || flush(request.map(|(r, _)| r)))
            .await
            .map_err(|err| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("journal {}: the flushing thread: {err}", self.dir.display()),
                )
            })?;
        let Some(upto) = upto else {
            return flushed;
        };
        let mut state = self.lock();
        match flushed {
            Ok(value) => {
                state.synced = state.synced.max(upto);
                Ok(value)
            }
            Err(err) => {
                // Flush again next time.
                for segment in state.segments.values_mut() {
                    segment.unsynced = true;
                    segment.named = false;
                }
                Err(err)
            }
        }
    }

    /// Removes the record of `path`'s upload (nothing if there is none).
    pub async fn end(&self, path: &str) -> Result<()> {
        self.end_all([path])
    }

    /// Removes the records of the uploads of `paths` (unknown paths are ignored), with one
    /// write per segment.
    pub fn end_all<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let mut state = self.lock();
        let mut lines: BTreeMap<u64, (Vec<u8>, Vec<String>)> = BTreeMap::new();
        for path in paths {
            if let Some((path, id)) = state.open.remove_entry(path) {
                let (bytes, ended) = lines.entry(id).or_default();
                serde_json::to_writer(&mut *bytes, &LineOut::End(&path))?;
                bytes.push(b'\n');
                ended.push(path);
            }
        }
        let state = &mut *state;
        let mut failure = None;
        for (id, (bytes, ended)) in lines {
            let Some(segment) = state.segments.get_mut(&id) else {
                continue;
            };
            if failure.is_none() {
                match (&*segment.file).write_all(&bytes) {
                    Ok(()) => {
                        segment.bytes += bytes.len() as u64;
                        segment.open = segment.open.saturating_sub(ended.len());
                        if segment.open == 0 && state.current != Some(id) {
                            remove_if_done(state, id);
                        }
                        continue;
                    }
                    Err(err) => failure = Some(entry_error(&segment.path, err)),
                }
            }
            // Not written: still open.
            state.open.extend(ended.into_iter().map(|path| (path, id)));
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// How many uploads are in flight (recorded and not ended) in this process.
    pub fn in_flight(&self) -> usize {
        self.lock().open.len()
    }

    /// Deletes the segments in which every entry has ended (at the end of a run): an empty
    /// journal is an empty directory.
    pub fn finish(&self) {
        let mut state = self.lock();
        if let Some(id) = state.current.take() {
            remove_if_done(&mut state, id);
        }
    }

    /// Deletes the whole journal, open entries included: once a run has resolved every
    /// pending entry (and recorded the outcome durably).
    pub fn clear(&self) -> Result<()> {
        let mut state = self.lock();
        state.segments.clear();
        state.current = None;
        state.open.clear();
        for entry in std::fs::read_dir(&self.dir).map_err(|err| dir_error(&self.dir, err))? {
            let path = entry.map_err(|err| dir_error(&self.dir, err))?.path();
            let ours = segment_id(&path).is_some()
                || matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("json" | "tmp")
                );
            if ours {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(entry_error(&path, err)),
                }
            }
        }
        Ok(())
    }

    /// The uploads that were begun and not ended, as written on disk (by an earlier run that
    /// crashed, usually), sorted by path.
    pub fn pending(&self) -> Result<Vec<JournalEntry>> {
        let mut segments = Vec::new();
        let mut out: BTreeMap<String, JournalEntry> = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|err| dir_error(&self.dir, err))? {
            let path = entry.map_err(|err| dir_error(&self.dir, err))?.path();
            if let Some(id) = segment_id(&path) {
                segments.push((id, path));
                continue;
            }
            match path.extension().and_then(|e| e.to_str()) {
                // One entry per file: the format of earlier versions.
                Some("json") => {
                    let bytes = std::fs::read(&path).map_err(|err| entry_error(&path, err))?;
                    let parsed: JournalEntry =
                        serde_json::from_slice(&bytes).map_err(|err| corrupt(&path, err))?;
                    out.insert(parsed.source.path.clone(), parsed);
                }
                // A torn write of that format: the upload had not started.
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        segments.sort();
        for (_, path) in segments {
            let bytes = std::fs::read(&path).map_err(|err| entry_error(&path, err))?;
            let mut lines = bytes.split_inclusive(|b| *b == b'\n').peekable();
            while let Some(line) = lines.next() {
                let complete = line.ends_with(b"\n");
                if !complete && lines.peek().is_none() {
                    // Cut off by a crash while it was written: that upload had not started.
                    break;
                }
                match serde_json::from_slice::<LineIn>(line) {
                    Ok(LineIn::Begin(entry)) => {
                        out.insert(entry.source.path.clone(), *entry);
                    }
                    Ok(LineIn::End(ended)) => {
                        out.remove(&ended);
                    }
                    Err(err) => return Err(corrupt(&path, err)),
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// What a [`Journal::sync_with`] must make durable: the segment files written since the
/// last flush, and the journal directory when a segment is new in it.
#[derive(Debug)]
pub struct JournalFlush {
    dir: PathBuf,
    files: Vec<(PathBuf, Arc<File>)>,
    name_dir: bool,
}

impl JournalFlush {
    /// The files to make durable (and, when [`JournalFlush::dir_too`], the directory's
    /// entries).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(path, _)| path.as_path())
    }

    /// Whether the journal directory's entries must be made durable too.
    pub fn dir_too(&self) -> bool {
        self.name_dir
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes the files (`fdatasync`) and, if needed, the directory (`fsync`).
    pub fn flush_here(self) -> Result<()> {
        for (path, file) in &self.files {
            file.sync_data().map_err(|err| entry_error(path, err))?;
        }
        if self.name_dir {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Deletes segment `id` if nothing in it is open.
fn remove_if_done(state: &mut State, id: u64) {
    if state.segments.get(&id).is_some_and(|s| s.open == 0)
        && let Some(segment) = state.segments.remove(&id)
    {
        // Left behind, it would only hold ended entries: harmless.
        let _ = std::fs::remove_file(&segment.path);
    }
}

fn segment_id(path: &Path) -> Option<u64> {
    if path.extension().and_then(|e| e.to_str()) != Some("log") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// The id of the segment after segment `id`; an error for the largest id (which only a
/// file put there by hand can have: ids count up from 0, one per 4 MiB of journal).
fn next_segment_id(dir: &Path, id: u64) -> Result<u64> {
    id.checked_add(1).ok_or_else(|| {
        Error::new(
            ErrorKind::Parse,
            format!(
                "journal directory `{}`: the segment `{id:020}.log` has the largest possible \
                 number, so no segment can follow it; it was not written by ikkatsu: move it \
                 away after checking the files it names",
                dir.display()
            ),
        )
    })
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| dir_error(dir, err))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

fn dir_error(dir: &Path, err: std::io::Error) -> Error {
    Error::io(format_args!("journal directory `{}`", dir.display()), err)
}

fn entry_error(path: &Path, err: std::io::Error) -> Error {
    Error::io(format_args!("journal `{}`", path.display()), err)
}

fn corrupt(path: &Path, err: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Parse,
        format!(
            "journal `{}` is corrupt: {err}; delete it after checking the files it names",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64) -> JournalEntry {
        JournalEntry {
            source: FileInfo::new(path, size),
            before: Some(FileInfo::new(path, size)),
        }
    }

    #[tokio::test]
    async fn begin_end_pending() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("j")).unwrap();
        let a = JournalEntry {
            source: FileInfo::new("dir/a b.txt", 3),
            before: None,
        };
        let b = entry("c.txt", 4);
        journal.begin(&a).await.unwrap();
        journal.begin(&b).await.unwrap();
        assert_eq!(journal.pending().unwrap(), vec![b.clone(), a.clone()]);
        assert!(journal.record(&b).is_err(), "already in flight");
        journal.end("c.txt").await.unwrap();
        journal.end("c.txt").await.unwrap();
        assert_eq!(journal.pending().unwrap(), vec![a.clone()]);
        assert_eq!(journal.in_flight(), 1);

        // Another process (a resumed run) reads the same.
        let again = Journal::open(dir.path().join("j")).unwrap();
        assert_eq!(again.pending().unwrap(), vec![a.clone()]);
        again.clear().unwrap();
        assert!(again.pending().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path().join("j")).unwrap().count(), 0);

        std::fs::write(journal.dir().join("x.json"), "{").unwrap();
        let err = journal.pending().unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }

    #[tokio::test]
    async fn a_line_cut_off_by_a_crash_is_ignored_a_corrupt_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.begin(&entry("a", 1)).await.unwrap();
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| segment_id(p).is_some())
            .unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap();
        file.write_all(b"{\"begin\":{\"source\":{\"pa").unwrap();
        assert_eq!(journal.pending().unwrap(), vec![entry("a", 1)]);
        file.write_all(b"\n{\"end\":\"a\"}\n").unwrap();
        let err = journal.pending().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
    }

    #[tokio::test]
    async fn segments_of_ended_entries_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let big = "x".repeat(64 * 1024);
        // Enough entries to fill several segments; every other one stays open a while.
        let count = (3 * SEGMENT_BYTES / (64 * 1024)) as usize;
        for i in 0..count {
            journal
                .record(&entry(&format!("{big}{i}"), i as u64))
                .unwrap();
            if i % 2 == 1 {
                journal
                    .end_all([format!("{big}{}", i - 1).as_str()])
                    .unwrap();
                journal.end_all([format!("{big}{i}").as_str()]).unwrap();
            }
        }
        journal.sync().await.unwrap();
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files <= 2, "{files} segments left");
        assert!(journal.pending().unwrap().is_empty());
        journal.finish();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn concurrent_begins_share_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move { journal.begin(&entry(&format!("f{i}"), i)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(journal.pending().unwrap().len(), 50);
        let state = journal.lock();
        assert_eq!(state.synced, 50);
    }
}
