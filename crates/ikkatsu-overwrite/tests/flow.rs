//! The overwrite flow end to end on a local tree, with the memory and embedded stores.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ikkatsu_core::{CancellationToken, Error, ErrorKind};
use ikkatsu_overwrite::journal::{Journal, JournalEntry};
use ikkatsu_overwrite::{
    OverwriteFlow, OverwriteOptions, ProcessFn, REMOTE_CONCURRENCY, StatusStore,
    StatusStoreOptions, open_status_store, process_fn,
};
use ikkatsu_storage::{Storage, WalkOptions};

/// Appends one line: applying it twice would show.
fn append_line() -> Arc<dyn ProcessFn> {
    process_fn(|input: PathBuf, output: PathBuf| async move {
        let mut text = tokio::fs::read_to_string(&input)
            .await
            .map_err(|e| Error::io("in", e))?;
        text.push_str("processed\n");
        tokio::fs::write(&output, text)
            .await
            .map_err(|e| Error::io("out", e))
    })
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn tree(root: &Path) -> Vec<&'static str> {
    let matching = vec![
        "a.txt",
        "dir/b.txt",
        "dir/deep/er/c.txt",
        "日本語/ファイル.txt",
        "with space/name with space.txt",
    ];
    for rel in &matching {
        write(root, rel, &format!("{rel}\n"));
    }
    write(root, "dir/not-text.bin", "binary\n");
    write(root, "skip/excluded.txt", "excluded\n");
    write(root, ".hidden/h.txt", "hidden\n");
    write(root, "dir/.dot.txt", "dot\n");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("dir"), root.join("dir/deep/loop")).unwrap();
    matching
}

fn options(state: &Path) -> OverwriteOptions {
    let mut options = OverwriteOptions::new(state);
    // rclone's order: an include would be tried before an exclude, so the rules say it.
    options.walk = WalkOptions::new()
        .filter("- /skip/")
        .filter("+ *.txt")
        .filter("- *")
        .follow_symlinks(true);
    options.concurrency = Some(3);
    options.retry.initial_backoff = Duration::from_millis(5);
    options
}

async fn store(state: &Path) -> Arc<dyn StatusStore> {
    let url = format!("redb://{}", state.join("status.redb").display());
    open_status_store(&url, StatusStoreOptions::new("test"))
        .await
        .unwrap()
}

#[tokio::test]
async fn transforms_exactly_the_matching_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let state = dir.path().join("state");
    let matching = tree(&root);
    let storage = Storage::open(&format!("file://{}", root.display())).unwrap();
    let status = store(dir.path()).await;
    let flow = OverwriteFlow::new(storage, status.clone(), append_line(), options(&state));
    let cancel = CancellationToken::new();

    let scan = flow.scan(&cancel).await.unwrap();
    assert_eq!(scan.queued, matching.len() as u64);
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let summary = flow
        .process(
            &cancel,
            Some(Arc::new(move |_p: &ikkatsu_overwrite::Progress| {
                seen.fetch_add(1, Ordering::SeqCst);
            })),
        )
        .await
        .unwrap();
    assert_eq!(summary.progress.done, matching.len() as u64);
    assert_eq!(summary.progress.failed + summary.progress.conflicts, 0);
    assert_eq!(calls.load(Ordering::SeqCst), matching.len() as u32);
    for rel in &matching {
        assert_eq!(
            std::fs::read_to_string(root.join(rel)).unwrap(),
            format!("{rel}\nprocessed\n"),
            "{rel}"
        );
    }
    for (rel, text) in [
        ("dir/not-text.bin", "binary\n"),
        ("skip/excluded.txt", "excluded\n"),
        (".hidden/h.txt", "hidden\n"),
        ("dir/.dot.txt", "dot\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(root.join(rel)).unwrap(),
            text,
            "{rel}"
        );
    }
    assert_eq!(std::fs::read_dir(state.join("journal")).unwrap().count(), 0);
    assert!(!state.join("work").exists(), "temporary files are removed");

    // A second run finds nothing to do.
    let scan = flow.scan(&cancel).await.unwrap();
    assert_eq!(
        scan,
        ikkatsu_overwrite::ScanSummary {
            matched: 5,
            queued: 0,
            links_skipped: 0
        }
    );

    // Touching one file makes only that file be processed again.
    std::thread::sleep(Duration::from_millis(20));
    write(&root, "dir/b.txt", "new content\n");
    let scan = flow.scan(&cancel).await.unwrap();
    assert_eq!(scan.queued, 1);
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 1);
    assert_eq!(
        std::fs::read_to_string(root.join("dir/b.txt")).unwrap(),
        "new content\nprocessed\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("a.txt")).unwrap(),
        "a.txt\nprocessed\n"
    );
}

#[tokio::test]
async fn a_file_changed_during_processing_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let state = dir.path().join("state");
    write(&root, "x.txt", "original\n");
    write(&root, "y.txt", "other\n");
    let storage = Storage::open(&format!("file://{}", root.display())).unwrap();
    let target_file = root.join("x.txt");
    let meddling = process_fn(move |input: PathBuf, output: PathBuf| {
        let target_file = target_file.clone();
        async move {
            let text = tokio::fs::read_to_string(&input)
                .await
                .map_err(|e| Error::io("in", e))?;
            if text.starts_with("original") {
                // Someone else rewrites the file while it is being processed.
                tokio::fs::write(&target_file, "someone else's longer edit\n")
                    .await
                    .map_err(|e| Error::io("x", e))?;
            }
            tokio::fs::write(&output, text.to_uppercase())
                .await
                .map_err(|e| Error::io("out", e))
        }
    });
    let status = open_status_store("memory:", StatusStoreOptions::new("c"))
        .await
        .unwrap();
    let flow = OverwriteFlow::new(storage, status.clone(), meddling, options(&state));
    let cancel = CancellationToken::new();
    flow.scan(&cancel).await.unwrap();
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.conflicts, 1);
    assert_eq!(summary.progress.done, 1);
    assert_eq!(summary.failures.len(), 1);
    assert!(summary.failures[0].conflict);
    assert_eq!(summary.failures[0].path, "x.txt");
    assert_eq!(
        std::fs::read_to_string(root.join("x.txt")).unwrap(),
        "someone else's longer edit\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("y.txt")).unwrap(),
        "OTHER\n"
    );
    let failures = std::fs::read_to_string(&summary.failures_file).unwrap();
    assert_eq!(failures.lines().count(), 1);
    assert!(failures.contains("x.txt"));
}

#[tokio::test]
async fn temporary_errors_are_retried_permanent_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let state = dir.path().join("state");
    write(&root, "flaky.txt", "f\n");
    write(&root, "broken.txt", "b\n");
    write(&root, "fine.txt", "ok\n");
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let broken_calls = Arc::new(AtomicU32::new(0));
    let (fc, bc) = (flaky_calls.clone(), broken_calls.clone());
    let faulty = process_fn(move |input: PathBuf, output: PathBuf| {
        let (fc, bc) = (fc.clone(), bc.clone());
        async move {
            let name = input.parent().unwrap().to_path_buf();
            let text = tokio::fs::read_to_string(&input)
                .await
                .map_err(|e| Error::io("in", e))?;
            let _ = name;
            if text == "f\n" && fc.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(Error::new(ErrorKind::Io, "server busy").set_temporary(true));
            }
            if text == "b\n" {
                bc.fetch_add(1, Ordering::SeqCst);
                return Err(Error::new(ErrorKind::Component, "cannot parse"));
            }
            tokio::fs::write(&output, text.to_uppercase())
                .await
                .map_err(|e| Error::io("out", e))
        }
    });
    let status = open_status_store("memory:", StatusStoreOptions::new("f"))
        .await
        .unwrap();
    let flow = OverwriteFlow::new(
        Storage::open(&format!("file://{}", root.display())).unwrap(),
        status.clone(),
        faulty,
        options(&state),
    );
    let cancel = CancellationToken::new();
    flow.scan(&cancel).await.unwrap();
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 2);
    assert_eq!(summary.progress.failed, 1);
    assert_eq!(
        flaky_calls.load(Ordering::SeqCst),
        3,
        "two temporary failures, then success"
    );
    assert_eq!(
        broken_calls.load(Ordering::SeqCst),
        1,
        "a permanent error is not retried"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("flaky.txt")).unwrap(),
        "F\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("broken.txt")).unwrap(),
        "b\n"
    );
    let record = status.status("broken.txt").await.unwrap().unwrap();
    assert_eq!(record.error_count, 1);
    assert!(record.last_error.unwrap().contains("cannot parse"));
}

#[tokio::test]
async fn an_upload_journalled_before_a_crash_is_not_transformed_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let state = dir.path().join("state");
    write(&root, "done-before-crash.txt", "v1\n");
    write(&root, "not-uploaded.txt", "v1\n");
    let storage = Storage::open(&format!("file://{}", root.display())).unwrap();
    let status = open_status_store("memory:", StatusStoreOptions::new("j"))
        .await
        .unwrap();
    let flow = OverwriteFlow::new(
        storage.clone(),
        status.clone(),
        append_line(),
        options(&state),
    );
    let cancel = CancellationToken::new();
    flow.scan(&cancel).await.unwrap();

    // A crashed run had begun both uploads; only the first reached the storage.
    let journal = Journal::open(state.join("journal")).unwrap();
    for name in ["done-before-crash.txt", "not-uploaded.txt"] {
        let info = storage.stat(name).await.unwrap();
        journal
            .begin(&JournalEntry {
                source: info.clone(),
                before: Some(info),
            })
            .await
            .unwrap();
    }
    write(&root, "done-before-crash.txt", "v1\nprocessed\n");
    std::fs::create_dir_all(state.join("work/file-leftover")).unwrap();
    // The crashed upload's temporary copy beside the file.
    write(&root, ".not-uploaded.txt.ikkatsu-999999-0.tmp", "partial");

    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.recovered, 1);
    assert_eq!(summary.progress.skipped, 1);
    assert_eq!(summary.progress.done, 1);
    for name in ["done-before-crash.txt", "not-uploaded.txt"] {
        assert_eq!(
            std::fs::read_to_string(root.join(name)).unwrap(),
            "v1\nprocessed\n",
            "{name} transformed exactly once"
        );
    }
    assert!(journal.pending().unwrap().is_empty());
    assert!(!state.join("work").exists());
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["done-before-crash.txt", "not-uploaded.txt"]);
}

#[tokio::test]
async fn dry_run_and_copy_to_another_target() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    write(&root, "a/one.txt", "1\n");
    let source = Storage::open(&format!("file://{}", root.display())).unwrap();
    let status = open_status_store("memory:", StatusStoreOptions::new("d"))
        .await
        .unwrap();
    let state = dir.path().join("s1");
    let flow = OverwriteFlow::new(
        source.clone(),
        status.clone(),
        append_line(),
        options(&state),
    );
    let cancel = CancellationToken::new();
    let mut listed = Vec::new();
    let summary = flow
        .dry_run(&cancel, |file| listed.push(file.path.clone()))
        .await
        .unwrap();
    assert_eq!(listed, ["a/one.txt"]);
    assert_eq!((summary.matched, summary.would_process), (1, 1));
    assert_eq!(
        std::fs::read_to_string(root.join("a/one.txt")).unwrap(),
        "1\n"
    );
    assert!(!state.exists(), "a dry run creates no state directory");
    assert!(status.lease().await.unwrap().is_none(), "nor a run lease");

    let flow = OverwriteFlow::new(
        source,
        status,
        append_line(),
        options(&dir.path().join("s2")),
    )
    .with_target(Storage::open(&format!("file://{}", out.display())).unwrap());
    flow.scan(&cancel).await.unwrap();
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 1);
    assert_eq!(
        std::fs::read_to_string(root.join("a/one.txt")).unwrap(),
        "1\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("a/one.txt")).unwrap(),
        "1\nprocessed\n"
    );
    assert_eq!(
        flow.scan(&cancel).await.unwrap().queued,
        0,
        "keyed by source path"
    );
}

#[tokio::test]
async fn a_stopped_run_resumes_from_its_backlog_position() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let state = dir.path().join("state");
    for i in 0..40 {
        write(&root, &format!("f{i:02}.txt"), &format!("{i}\n"));
    }
    let status = open_status_store("memory:", StatusStoreOptions::new("p"))
        .await
        .unwrap();
    let mut opts = options(&state);
    opts.batch_size = 5;
    opts.concurrency = Some(2);
    let flow = OverwriteFlow::new(
        Storage::open(&format!("file://{}", root.display())).unwrap(),
        status,
        append_line(),
        opts,
    );
    let cancel = CancellationToken::new();
    assert_eq!(flow.scan(&cancel).await.unwrap().queued, 40);
    let stopper = cancel.clone();
    let first = flow
        .process(
            &cancel,
            Some(Arc::new(move |p: &ikkatsu_overwrite::Progress| {
                if p.done >= 12 {
                    stopper.cancel();
                }
            })),
        )
        .await
        .unwrap();
    assert!(first.stopped);
    assert!(
        first.position >= 10 && first.position < 40,
        "{}",
        first.position
    );
    assert_eq!(first.position % 5, 0, "whole batches only");
    let rest = flow
        .process_from(first.position, &CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(!rest.stopped);
    assert_eq!(rest.position, 40);
    assert_eq!(rest.progress.total, 40 - first.position);
    assert_eq!(first.progress.done + rest.progress.done, 40);
    for i in 0..40 {
        assert_eq!(
            std::fs::read_to_string(root.join(format!("f{i:02}.txt"))).unwrap(),
            format!("{i}\nprocessed\n")
        );
    }
}

/// A status store whose reports of successes fail while `failing` is set: the files are
/// replaced but never recorded, as when the process dies between the two.
struct LosesReports {
    inner: Arc<dyn StatusStore>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl StatusStore for LosesReports {
    async fn needs_processing(
        &self,
        files: Vec<ikkatsu_storage::FileInfo>,
    ) -> ikkatsu_core::Result<Vec<ikkatsu_storage::FileInfo>> {
        self.inner.needs_processing(files).await
    }

    async fn report_done(
        &self,
        source: &ikkatsu_storage::FileInfo,
        uploaded: &ikkatsu_storage::FileInfo,
    ) -> ikkatsu_core::Result<()> {
        self.report_done_all(&[(source.clone(), uploaded.clone())])
            .await
    }

    async fn report_done_all(
        &self,
        done: &[(ikkatsu_storage::FileInfo, ikkatsu_storage::FileInfo)],
    ) -> ikkatsu_core::Result<()> {
        if self.failing.load(Ordering::SeqCst) && !done.is_empty() {
            return Err(Error::new(
                ErrorKind::Repository,
                "the status store is gone",
            ));
        }
        self.inner.report_done_all(done).await
    }

    async fn report_error(
        &self,
        file: &ikkatsu_storage::FileInfo,
        error: &str,
    ) -> ikkatsu_core::Result<u32> {
        self.inner.report_error(file, error).await
    }

    async fn status(
        &self,
        path: &str,
    ) -> ikkatsu_core::Result<Option<ikkatsu_overwrite::FileStatus>> {
        self.inner.status(path).await
    }

    async fn counts(&self) -> ikkatsu_core::Result<ikkatsu_overwrite::StatusCounts> {
        self.inner.counts().await
    }

    fn options(&self) -> &StatusStoreOptions {
        self.inner.options()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn clear(&self) -> ikkatsu_core::Result<()> {
        self.inner.clear().await
    }

    async fn acquire_lease(
        &self,
        me: &ikkatsu_overwrite::Lease,
        take_over: Option<&str>,
    ) -> ikkatsu_core::Result<ikkatsu_overwrite::LeaseAttempt> {
        self.inner.acquire_lease(me, take_over).await
    }

    async fn renew_lease(&self, me: &ikkatsu_overwrite::Lease) -> ikkatsu_core::Result<bool> {
        self.inner.renew_lease(me).await
    }

    async fn release_lease(&self, token: &str) -> ikkatsu_core::Result<()> {
        self.inner.release_lease(token).await
    }

    async fn lease(&self) -> ikkatsu_core::Result<Option<ikkatsu_overwrite::Lease>> {
        self.inner.lease().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_replaced_but_not_recorded_are_recovered_not_transformed_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let state = dir.path().join("state");
    let names: Vec<String> = (0..60).map(|i| format!("d{}/f{i:02}.txt", i % 3)).collect();
    for name in &names {
        write(&root, name, "v1\n");
    }
    let memory = open_status_store("memory:", StatusStoreOptions::new("lost"))
        .await
        .unwrap();
    let store = Arc::new(LosesReports {
        inner: memory,
        failing: std::sync::atomic::AtomicBool::new(true),
    });
    let flow = OverwriteFlow::new(
        Storage::open(&format!("file://{}", root.display())).unwrap(),
        store.clone(),
        append_line(),
        options(&state),
    );
    let cancel = CancellationToken::new();
    assert_eq!(flow.scan(&cancel).await.unwrap().queued, 60);
    let err = flow.process(&cancel, None).await.unwrap_err();
    assert!(err.to_string().contains("gone"), "{err}");
    let transformed = names
        .iter()
        .filter(|n| std::fs::read_to_string(root.join(n.as_str())).unwrap() == "v1\nprocessed\n")
        .count();
    assert!(transformed > 0, "the first group was replaced");
    let journal = Journal::open(state.join("journal")).unwrap();
    assert!(
        journal.pending().unwrap().len() >= transformed,
        "every replaced file is still journalled"
    );

    // The next run (the store works again) records them instead of transforming them again.
    store.failing.store(false, Ordering::SeqCst);
    let scan = flow.scan(&cancel).await.unwrap();
    assert_eq!(scan.queued, 60, "nothing was recorded");
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.recovered, transformed as u64);
    assert_eq!(summary.progress.skipped, transformed as u64);
    assert_eq!(summary.progress.done, 60 - transformed as u64);
    for name in &names {
        assert_eq!(
            std::fs::read_to_string(root.join(name.as_str())).unwrap(),
            "v1\nprocessed\n",
            "{name} transformed exactly once"
        );
    }
    assert!(journal.pending().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(state.join("journal")).unwrap().count(), 0);
    for d in ["d0", "d1", "d2"] {
        assert_eq!(
            std::fs::read_dir(root.join(d)).unwrap().count(),
            20,
            "no temporary file left in {d}"
        );
    }
    assert_eq!(flow.scan(&cancel).await.unwrap().queued, 0, "all recorded");
}

#[test]
fn default_concurrency_is_higher_on_remote_storages_and_a_set_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let local = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let remote = Storage::open("memory:").unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut options = OverwriteOptions::new(dir.path().join("state"));
    assert_eq!(options.concurrency_for(&local), 2 * cores);
    assert_eq!(
        options.concurrency_for(&remote),
        (2 * cores).max(REMOTE_CONCURRENCY)
    );
    options.concurrency = Some(3);
    assert_eq!(options.concurrency_for(&local), 3);
    assert_eq!(options.concurrency_for(&remote), 3);
    options.concurrency = Some(0);
    assert_eq!(options.concurrency_for(&remote), 1);
}
