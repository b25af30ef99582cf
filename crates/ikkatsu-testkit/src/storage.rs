//! The [`Storage`] conformance suite: one async function per behaviour, each taking a fresh,
//! empty storage. [`storage_behaviours!`](crate::storage_behaviours) lists them so a backend's
//! tests can generate one test per behaviour; [`run_all`] runs them all in order.
//!
//! Two behaviours are large on purpose: [`walk_counts_10000_files_exactly`] and
//! [`streams_100_mb_in_flat_memory`]. Their sized forms ([`walk_counts_files_exactly`],
//! [`streams_in_flat_memory`]) let a slow backend run them smaller, saying why in its test.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::ErrorKind;
use ikkatsu_storage::{ConditionalWrite, FileInfo, Storage, WalkOptions};
use sha2::{Digest, Sha256};

mod walk;
pub use walk::*;

/// Calls `$m!(name, name, …)` with the name of every behaviour of this suite.
#[macro_export]
macro_rules! storage_behaviours {
    ($m:ident) => {
        $m!(
            write_stat_read_round_trip,
            overwrite_and_delete,
            special_names,
            missing_path_is_not_found,
            unsafe_paths_are_refused,
            streaming_upload_and_download,
            walk_yields_files_only,
            walk_include_exclude,
            walk_max_depth,
            walk_hidden,
            walk_reports_what_stat_reports,
            empty_directories,
            walk_counts_10000_files_exactly,
            streams_100_mb_in_flat_memory,
            conditional_write_accepted_when_unchanged,
            conditional_write_refused_after_change,
            conditional_write_refused_after_delete,
            conditional_write_uses_the_backend_condition,
            download_listed_reads_what_is_there_now
        );
    };
}

/// Runs every behaviour, each on a fresh storage made by `factory`.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Storage>,
{
    macro_rules! run {
        ($($name:ident),*) => {
            $( $name(factory().await).await; )*
        };
    }
    storage_behaviours!(run);
}

async fn walk_paths(storage: &Storage, options: WalkOptions) -> Vec<String> {
    let mut paths: Vec<String> = storage
        .walk(options)
        .expect("walk starts")
        .map_ok(|info| info.path)
        .try_collect()
        .await
        .expect("walk succeeds");
    paths.sort();
    paths
}

async fn put(storage: &Storage, paths: &[&str]) {
    for path in paths {
        storage
            .write(path, format!("content of {path}").into_bytes())
            .await
            .expect("write");
    }
}

/// Write, stat, read and exists agree.
pub async fn write_stat_read_round_trip(storage: Storage) {
    let info = storage.write("a.txt", &b"hello"[..]).await.expect("write");
    assert_eq!(info.path, "a.txt");
    assert_eq!(info.size, 5);
    assert_eq!(info.name(), "a.txt");
    let stat = storage.stat("a.txt").await.expect("stat");
    assert_eq!(stat, info);
    assert_eq!(
        storage.read("a.txt").await.expect("read").as_ref(),
        b"hello"
    );
    assert!(storage.exists("a.txt").await.expect("exists"));
    assert!(!storage.exists("b.txt").await.expect("exists"));
    let empty = storage
        .write("empty", Vec::new())
        .await
        .expect("empty write");
    assert_eq!(empty.size, 0);
    assert!(storage.read("empty").await.expect("read").is_empty());
}

/// A write replaces the content; a delete removes the file; deleting twice succeeds.
pub async fn overwrite_and_delete(storage: Storage) {
    storage
        .write("d/f", &b"first version"[..])
        .await
        .expect("write");
    let info = storage
        .write("d/f", &b"second"[..])
        .await
        .expect("overwrite");
    assert_eq!(info.size, 6);
    assert_eq!(storage.read("d/f").await.expect("read").as_ref(), b"second");
    storage.delete("d/f").await.expect("delete");
    assert!(!storage.exists("d/f").await.expect("exists"));
    storage.delete("d/f").await.expect("second delete");
    let err = storage.read("d/f").await.expect_err("deleted");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Names with spaces, unicode, `#` and `%`, in nested directories, survive every operation.
pub async fn special_names(storage: Storage) {
    let names = [
        "with space.txt",
        "日本語/ファイル.txt",
        "hash#tag/x#y.txt",
        "per%cent/100%.txt",
        "deep/er/and deeper/ü é.txt",
        "plus+and&amp=.txt",
    ];
    for name in names {
        let info = storage
            .write(name, name.as_bytes().to_vec())
            .await
            .expect(name);
        assert_eq!(info.path, name);
        assert_eq!(
            storage.stat(name).await.expect(name).size,
            name.len() as u64
        );
        assert_eq!(
            storage.read(name).await.expect(name).as_ref(),
            name.as_bytes()
        );
    }
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(walk_paths(&storage, WalkOptions::new()).await, expected);
    for name in names {
        storage.delete(name).await.expect(name);
        assert!(!storage.exists(name).await.expect(name));
    }
}

/// Stat and read of a missing path fail with [`ErrorKind::NotFound`], naming the path.
pub async fn missing_path_is_not_found(storage: Storage) {
    let err = storage.stat("no/such/file").await.expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("no/such/file"), "{}", err.message());
    assert!(!err.is_temporary());
    let err = storage.read("missing").await.expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let local = tempfile::tempdir().expect("tempdir");
    let err = storage
        .download("missing", &local.path().join("x"))
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Paths that could leave the root are refused before the backend sees them.
pub async fn unsafe_paths_are_refused(storage: Storage) {
    for path in ["../x", "/etc/passwd", "a/../../b", "a//b", "a\0b", "..\\x"] {
        let err = storage.write(path, &b"x"[..]).await.expect_err(path);
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{path}");
        let err = storage.stat(path).await.expect_err(path);
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{path}");
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// Upload from and download to local files keep the content exactly, across chunks.
pub async fn streaming_upload_and_download(storage: Storage) {
    let local = tempfile::tempdir().expect("tempdir");
    let data = pattern(3 * 1024 * 1024 + 17);
    let source = local.path().join("source");
    std::fs::write(&source, &data).expect("local write");
    let uploaded = storage
        .upload(&source, "big/file.bin")
        .await
        .expect("upload");
    assert_eq!(uploaded.size, data.len() as u64);
    let target = local.path().join("target");
    let downloaded = storage
        .download("big/file.bin", &target)
        .await
        .expect("download");
    assert_eq!(downloaded, uploaded);
    assert_eq!(std::fs::read(&target).expect("local read"), data);
    let chunks: Vec<_> = storage
        .reader("big/file.bin")
        .await
        .expect("reader")
        .try_collect()
        .await
        .expect("stream");
    let streamed: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(streamed, data);
}

/// 100 MiB generated on the fly are written through [`Storage::write_stream`] and read back
/// through [`Storage::reader`], compared by SHA-256, while the resident memory of the process
/// grows by far less than the file: nothing buffered the whole file.
pub async fn streams_100_mb_in_flat_memory(storage: Storage) {
    streams_in_flat_memory(storage, 100 * 1024 * 1024).await;
}

/// [`streams_100_mb_in_flat_memory`] with `size` bytes. The memory bound is 48 MiB, or the
/// half of `size` when that is more; the `memory` backend keeps the file itself in this
/// process, so its bound is the file's size more.
pub async fn streams_in_flat_memory(storage: Storage, size: u64) {
    const CHUNK: u64 = 1024 * 1024;
    let mut limit = (48 * 1024 * 1024).max(size / 2);
    if storage.capabilities().scheme == "memory" {
        limit += size;
    }
    let sampler = RssSampler::start();
    let baseline = sampler.baseline();

    let written = Arc::new(std::sync::Mutex::new(Sha256::new()));
    let hasher = written.clone();
    let generated = futures::stream::iter(0..size.div_ceil(CHUNK)).map(move |n| {
        let len = CHUNK.min(size - n * CHUNK) as usize;
        let chunk = generated_chunk(n, len);
        hasher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(&chunk);
        Ok::<_, ikkatsu_core::Error>(Bytes::from(chunk))
    });
    let info = storage
        .write_stream("big/generated.bin", generated)
        .await
        .expect("streamed write");
    assert_eq!(info.size, size);
    let written = std::mem::take(&mut *written.lock().unwrap_or_else(|p| p.into_inner()))
        .finalize()
        .to_vec();

    let mut read = Sha256::new();
    let mut count = 0u64;
    let mut chunks = storage.reader("big/generated.bin").await.expect("reader");
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("chunk");
        count += chunk.len() as u64;
        read.update(&chunk);
    }
    drop(chunks);
    assert_eq!(count, size, "bytes read back");
    assert_eq!(read.finalize().to_vec(), written, "content read back");

    let peak = sampler.stop();
    if let (Some(baseline), Some(peak)) = (baseline, peak) {
        let growth = peak.saturating_sub(baseline);
        assert!(
            growth < limit,
            "resident memory grew by {} MiB while streaming {} MiB (limit {} MiB): something \
             buffered the file",
            growth / (1024 * 1024),
            size / (1024 * 1024),
            limit / (1024 * 1024)
        );
    }
    storage.delete("big/generated.bin").await.expect("delete");
}

/// Deterministic bytes for chunk `n` (xorshift), different in every chunk.
fn generated_chunk(n: u64, len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (n.wrapping_mul(0xA24B_AED4_963E_E407) | 1);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let bytes = state.to_le_bytes();
        let take = bytes.len().min(len - out.len());
        out.extend_from_slice(&bytes[..take]);
    }
    out
}

/// Samples the resident set size of this process (Linux `/proc/self/statm`) every 5 ms on a
/// thread of its own, keeping the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(resident_bytes().unwrap_or(0)));
        let thread = resident_bytes().is_some().then(|| {
            let stop = stop.clone();
            let peak = peak.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = resident_bytes() {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            })
        });
        RssSampler { stop, peak, thread }
    }

    /// The resident size when sampling started; `None` where it cannot be read.
    fn baseline(&self) -> Option<u64> {
        self.thread.as_ref()?;
        Some(self.peak.load(Ordering::Relaxed))
    }

    /// Stops sampling and gives the peak.
    fn stop(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take()?;
        let _ = thread.join();
        if let Some(rss) = resident_bytes() {
            self.peak.fetch_max(rss, Ordering::Relaxed);
        }
        Some(self.peak.load(Ordering::Relaxed))
    }
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// An unchanged file is replaced by the conditional write.
pub async fn conditional_write_accepted_when_unchanged(storage: Storage) {
    storage
        .write("f.txt", &b"original"[..])
        .await
        .expect("write");
    let local = tempfile::tempdir().expect("tempdir");
    let downloaded = local.path().join("f");
    let expected = storage
        .download("f.txt", &downloaded)
        .await
        .expect("download");
    std::fs::write(&downloaded, b"transformed content").expect("local write");
    let new = storage
        .write_if_unchanged("f.txt", &downloaded, &expected)
        .await
        .expect("unchanged file is written");
    assert_eq!(new.size, 19);
    assert_eq!(
        storage.read("f.txt").await.expect("read").as_ref(),
        b"transformed content"
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().include_hidden(true)).await,
        ["f.txt"],
        "no temporary file is left"
    );
}

/// A file changed after it was read is not clobbered: [`ErrorKind::Conflict`].
pub async fn conditional_write_refused_after_change(storage: Storage) {
    storage
        .write("f.txt", &b"original"[..])
        .await
        .expect("write");
    let local = tempfile::tempdir().expect("tempdir");
    let downloaded = local.path().join("f");
    let expected = storage
        .download("f.txt", &downloaded)
        .await
        .expect("download");
    storage
        .write("f.txt", &b"changed by someone else"[..])
        .await
        .expect("concurrent write");
    std::fs::write(&downloaded, b"transformed").expect("local write");
    let err = storage
        .write_if_unchanged("f.txt", &downloaded, &expected)
        .await
        .expect_err("changed file is refused");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("f.txt"), "{}", err.message());
    assert_eq!(
        storage.read("f.txt").await.expect("read").as_ref(),
        b"changed by someone else"
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().include_hidden(true)).await,
        ["f.txt"],
        "no temporary file is left"
    );
}

/// [`Storage::download_listed`] of a file as the walk listed it downloads it and returns
/// info that describes it. After the file changed, it either downloads the new content and
/// returns the new info, or returns the listed info, and then the overwrite that follows
/// is refused: a change is never taken for the listed file. A deleted file is
/// [`ErrorKind::NotFound`].
pub async fn download_listed_reads_what_is_there_now(storage: Storage) {
    put(&storage, &["l/a.txt", "l/b.txt", "l/c.txt"]).await;
    let listed: Vec<FileInfo> = storage
        .walk(WalkOptions::new())
        .expect("walk starts")
        .try_collect()
        .await
        .expect("walk succeeds");
    assert_eq!(listed.len(), 3);
    let local = tempfile::tempdir().expect("tempdir");
    let file = local.path().join("f");
    for info in &listed {
        let downloaded = storage
            .download_listed(info, &file)
            .await
            .expect("download");
        assert!(
            downloaded.same_content_as(info),
            "{downloaded:?} vs {info:?}"
        );
        assert_eq!(
            std::fs::read(&file).expect("read"),
            format!("content of {}", info.path).into_bytes()
        );
    }
    let listed_as = |path: &str| listed.iter().find(|i| i.path == path).expect(path);
    // Shorter, and longer, than listed.
    for (path, content) in [
        ("l/a.txt", &b"short"[..]),
        ("l/b.txt", &b"changed after the listing, and longer"[..]),
    ] {
        let now = storage.write(path, content).await.expect("write");
        let downloaded = storage
            .download_listed(listed_as(path), &file)
            .await
            .expect("download after change");
        if downloaded.same_content_as(&now) {
            assert_eq!(std::fs::read(&file).expect("read"), content, "{path}");
            continue;
        }
        assert_eq!(
            &downloaded,
            listed_as(path),
            "{path}: neither listed nor current"
        );
        std::fs::write(&file, b"transformed").expect("local write");
        let err = storage
            .write_if_unchanged(path, &file, &downloaded)
            .await
            .expect_err("a change since the listing is refused");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{path}");
        assert_eq!(storage.read(path).await.expect("read").as_ref(), content);
    }
    storage.delete("l/c.txt").await.expect("delete");
    let err = storage
        .download_listed(listed_as("l/c.txt"), &file)
        .await
        .expect_err("deleted");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// A file deleted after it was read is not recreated: [`ErrorKind::Conflict`].
pub async fn conditional_write_refused_after_delete(storage: Storage) {
    storage
        .write("f.txt", &b"original"[..])
        .await
        .expect("write");
    let expected = storage.stat("f.txt").await.expect("stat");
    storage.delete("f.txt").await.expect("delete");
    let local = tempfile::tempdir().expect("tempdir");
    let file = local.path().join("f");
    std::fs::write(&file, b"transformed").expect("local write");
    let err = storage
        .write_if_unchanged("f.txt", &file, &expected)
        .await
        .expect_err("deleted file is refused");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(!storage.exists("f.txt").await.expect("exists"));
}

/// Where the backend refuses changed objects itself ([`ConditionalWrite::IfMatch`],
/// [`ConditionalWrite::IfVersionMatch`]), what stat reports carries what that needs (an etag,
/// a version), so the atomic path is the one taken; and the refusal is a
/// [`ErrorKind::Conflict`] that leaves the object alone.
pub async fn conditional_write_uses_the_backend_condition(storage: Storage) {
    let info = storage.write("c.txt", &b"one"[..]).await.expect("write");
    match storage.capabilities().conditional_write {
        ConditionalWrite::IfMatch => assert!(info.etag.is_some(), "no etag: {info:?}"),
        ConditionalWrite::IfVersionMatch => {
            assert!(info.version.is_some(), "no version: {info:?}")
        }
        _ => {}
    }
    // Same size, new content: only the backend's condition (or the modification time)
    // can tell.
    storage
        .write("c.txt", &b"two"[..])
        .await
        .expect("concurrent write");
    let local = tempfile::tempdir().expect("tempdir");
    let file = local.path().join("c");
    std::fs::write(&file, b"new").expect("local write");
    match storage.capabilities().conditional_write {
        ConditionalWrite::IfMatch | ConditionalWrite::IfVersionMatch => {
            let err = storage
                .write_if_unchanged("c.txt", &file, &info)
                .await
                .expect_err("the backend refuses the changed object");
            assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
            assert_eq!(storage.read("c.txt").await.expect("read").as_ref(), b"two");
        }
        // Same size: a backend that reports whole seconds or minutes may not see the change;
        // the stat-compare modes are documented as best effort.
        _ => {}
    }
}
