//! The [`StatusStore`] conformance suite: one async function per behaviour, each given a
//! [`StatusStoreFactory`] that opens stores of one backend by namespace.
//! [`status_store_behaviours!`](crate::status_store_behaviours) lists them so a backend's
//! tests can generate one test per behaviour; [`run_all`] runs them all in order.
//!
//! Every behaviour uses its own namespaces, so all of them may share one database; a
//! factory for a shared server should prefix the namespaces with a per-run random tag and
//! delete them afterwards.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use ikkatsu_overwrite::{FileState, StatusCounts, StatusStore};
use ikkatsu_storage::FileInfo;

mod lease;
pub use lease::{
    claims_split_the_work, concurrent_acquires_one_wins, expired_lease_is_taken_over,
    expired_run_claims_are_taken_over, lease_is_exclusive, leases_are_per_namespace,
    named_lease_is_taken_over,
};

/// Opens stores of the backend under test.
#[async_trait]
pub trait StatusStoreFactory: Send + Sync {
    /// A store for `namespace` (which the factory may prefix) with `max_errors`.
    async fn open(&self, namespace: &str, max_errors: u32) -> Arc<dyn StatusStore>;

    /// For persistent backends: lets go of everything the factory holds open, so that the
    /// next [`StatusStoreFactory::open`] reads the records back from storage, and returns
    /// true. Non-persistent backends return false (and the persistence behaviour is not
    /// applicable).
    async fn reopen(&self) -> bool;
}

/// Calls `$m!(name, name, …)` with the name of every behaviour of this suite.
#[macro_export]
macro_rules! status_store_behaviours {
    ($m:ident) => {
        $m!(
            new_files_need_processing,
            done_files_are_skipped,
            changed_files_need_processing,
            errors_below_max_are_retried,
            failed_files_retried_when_changed,
            done_resets_errors,
            concurrent_errors_are_counted,
            namespaces_are_isolated,
            order_is_kept,
            paths_are_exact,
            large_batch,
            done_in_groups,
            persists_across_reopen,
            lease_is_exclusive,
            expired_lease_is_taken_over,
            named_lease_is_taken_over,
            leases_are_per_namespace,
            concurrent_acquires_one_wins,
            claims_split_the_work,
            expired_run_claims_are_taken_over
        );
    };
}

/// Runs every behaviour against stores made by `factory`.
pub async fn run_all(factory: &dyn StatusStoreFactory) {
    new_files_need_processing(factory).await;
    done_files_are_skipped(factory).await;
    changed_files_need_processing(factory).await;
    errors_below_max_are_retried(factory).await;
    failed_files_retried_when_changed(factory).await;
    done_resets_errors(factory).await;
    concurrent_errors_are_counted(factory).await;
    namespaces_are_isolated(factory).await;
    order_is_kept(factory).await;
    paths_are_exact(factory).await;
    large_batch(factory).await;
    done_in_groups(factory).await;
    persists_across_reopen(factory).await;
    lease_is_exclusive(factory).await;
    expired_lease_is_taken_over(factory).await;
    named_lease_is_taken_over(factory).await;
    leases_are_per_namespace(factory).await;
    concurrent_acquires_one_wins(factory).await;
    claims_split_the_work(factory).await;
    expired_run_claims_are_taken_over(factory).await;
}

fn time(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A file with a size and a modification time (seconds after a fixed instant).
pub fn file(path: &str, size: u64, modified: i64) -> FileInfo {
    let mut f = FileInfo::new(path, size);
    f.modified = Some(time(modified));
    f
}

fn paths(files: &[FileInfo]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

async fn needs(store: &Arc<dyn StatusStore>, files: &[FileInfo]) -> Vec<FileInfo> {
    store
        .needs_processing(files.to_vec())
        .await
        .unwrap_or_else(|err| panic!("needs_processing on {}: {err}", store.describe()))
}

async fn done(store: &Arc<dyn StatusStore>, source: &FileInfo, uploaded: &FileInfo) {
    store
        .report_done(source, uploaded)
        .await
        .unwrap_or_else(|err| panic!("report_done on {}: {err}", store.describe()));
}

async fn error(store: &Arc<dyn StatusStore>, file: &FileInfo, text: &str) -> u32 {
    store
        .report_error(file, text)
        .await
        .unwrap_or_else(|err| panic!("report_error on {}: {err}", store.describe()))
}

async fn empty(store: &Arc<dyn StatusStore>) -> bool {
    store
        .is_empty()
        .await
        .unwrap_or_else(|err| panic!("is_empty on {}: {err}", store.describe()))
}

async fn counts(store: &Arc<dyn StatusStore>) -> StatusCounts {
    store
        .counts()
        .await
        .unwrap_or_else(|err| panic!("counts on {}: {err}", store.describe()))
}

/// Files never seen need processing; an empty batch gives an empty answer.
pub async fn new_files_need_processing(factory: &dyn StatusStoreFactory) {
    let store = factory.open("new", 3).await;
    let files = vec![
        file("a.txt", 1, 0),
        file("dir/b.txt", 2, 0),
        file("c", 0, 0),
    ];
    assert_eq!(needs(&store, &files).await, files);
    assert_eq!(needs(&store, &[]).await, Vec::<FileInfo>::new());
    assert_eq!(store.status("a.txt").await.ok(), Some(None));
    assert_eq!(counts(&store).await, StatusCounts::default());
}

/// A done file is skipped while the walk sees the file as uploaded; the info before the
/// upload (the source) no longer matches.
pub async fn done_files_are_skipped(factory: &dyn StatusStoreFactory) {
    let store = factory.open("done", 3).await;
    let source = file("a.txt", 5, 0);
    let uploaded = file("a.txt", 9, 60);
    let other = file("b.txt", 1, 0);
    done(&store, &source, &uploaded).await;
    assert_eq!(
        needs(&store, &[uploaded.clone(), other.clone()]).await,
        vec![other.clone()]
    );
    assert_eq!(
        needs(&store, std::slice::from_ref(&source)).await,
        vec![source.clone()]
    );
    let status = store.status("a.txt").await.ok().flatten();
    let status = status.unwrap_or_else(|| panic!("no status for a.txt on {}", store.describe()));
    assert_eq!(status.state, FileState::Done);
    assert_eq!(status.uploaded.as_ref(), Some(&uploaded));
    assert_eq!(status.error_count, 0);
    assert_eq!(status.last_error, None);
    assert_eq!(counts(&store).await, StatusCounts { done: 1, failed: 0 });
    // Done again (same file reported twice): still one record.
    done(&store, &source, &uploaded).await;
    assert_eq!(counts(&store).await, StatusCounts { done: 1, failed: 0 });
}

/// A change of size, modification time or etag since the upload makes a done file need
/// processing again; a side without a time or etag decides nothing.
pub async fn changed_files_need_processing(factory: &dyn StatusStoreFactory) {
    let store = factory.open("changed", 3).await;
    let mut uploaded = file("a.txt", 10, 0);
    uploaded.etag = Some("\"e1\"".into());
    done(&store, &uploaded, &uploaded).await;
    assert!(
        needs(&store, std::slice::from_ref(&uploaded))
            .await
            .is_empty()
    );

    let mut bigger = uploaded.clone();
    bigger.size = 11;
    assert_eq!(
        needs(&store, std::slice::from_ref(&bigger)).await,
        vec![bigger]
    );

    let mut touched = uploaded.clone();
    touched.modified = Some(time(1));
    assert_eq!(
        needs(&store, std::slice::from_ref(&touched)).await,
        vec![touched]
    );

    let mut retagged = uploaded.clone();
    retagged.etag = Some("\"e2\"".into());
    assert_eq!(
        needs(&store, std::slice::from_ref(&retagged)).await,
        vec![retagged]
    );

    let mut sparse = uploaded.clone();
    sparse.modified = None;
    sparse.etag = None;
    assert!(
        needs(&store, &[sparse]).await.is_empty(),
        "same size, nothing else known"
    );
}

/// A failing file is retried while it failed fewer than `max_errors` times, then skipped.
pub async fn errors_below_max_are_retried(factory: &dyn StatusStoreFactory) {
    let store = factory.open("errors", 3).await;
    let f = file("bad.txt", 3, 0);
    assert_eq!(error(&store, &f, "first").await, 1);
    assert_eq!(
        needs(&store, std::slice::from_ref(&f)).await,
        vec![f.clone()]
    );
    assert_eq!(error(&store, &f, "second").await, 2);
    assert_eq!(
        needs(&store, std::slice::from_ref(&f)).await,
        vec![f.clone()]
    );
    assert_eq!(error(&store, &f, "third: exit code 2").await, 3);
    assert!(needs(&store, std::slice::from_ref(&f)).await.is_empty());
    let status = store.status("bad.txt").await.ok().flatten();
    let status = status.unwrap_or_else(|| panic!("no status for bad.txt on {}", store.describe()));
    assert_eq!(status.state, FileState::Failed);
    assert_eq!(status.error_count, 3);
    assert_eq!(status.last_error.as_deref(), Some("third: exit code 2"));
    assert_eq!(status.failed.as_ref(), Some(&f));
    assert_eq!(status.uploaded, None);
    assert_eq!(counts(&store).await, StatusCounts { done: 0, failed: 1 });

    // With max_errors 1, one failure is enough to skip.
    let strict = factory.open("errors-strict", 1).await;
    assert_eq!(error(&strict, &f, "once").await, 1);
    assert!(needs(&strict, std::slice::from_ref(&f)).await.is_empty());
}

/// A file skipped for its failures is retried once it changes; changing again after it
/// fails again retries it again.
pub async fn failed_files_retried_when_changed(factory: &dyn StatusStoreFactory) {
    let store = factory.open("retry-changed", 2).await;
    let f = file("x.csv", 3, 0);
    error(&store, &f, "a").await;
    error(&store, &f, "b").await;
    assert!(needs(&store, std::slice::from_ref(&f)).await.is_empty());
    let fixed = file("x.csv", 4, 10);
    assert_eq!(
        needs(&store, std::slice::from_ref(&fixed)).await,
        vec![fixed.clone()]
    );
    assert_eq!(error(&store, &fixed, "c").await, 3);
    assert!(needs(&store, std::slice::from_ref(&fixed)).await.is_empty());
    let fixed_again = file("x.csv", 4, 20);
    assert_eq!(
        needs(&store, std::slice::from_ref(&fixed_again)).await,
        vec![fixed_again]
    );
}

/// A success after failures clears the count and the last error, and keeps the uploaded
/// info when the file later fails again.
pub async fn done_resets_errors(factory: &dyn StatusStoreFactory) {
    let store = factory.open("reset", 2).await;
    let f = file("r.txt", 1, 0);
    error(&store, &f, "boom").await;
    let uploaded = file("r.txt", 2, 5);
    done(&store, &f, &uploaded).await;
    let status = store.status("r.txt").await.ok().flatten();
    let status = status.unwrap_or_else(|| panic!("no status for r.txt on {}", store.describe()));
    assert_eq!(status.state, FileState::Done);
    assert_eq!(status.error_count, 0);
    assert_eq!(status.last_error, None);
    assert_eq!(status.failed, None);

    let changed = file("r.txt", 3, 9);
    assert_eq!(error(&store, &changed, "again").await, 1);
    let status = store.status("r.txt").await.ok().flatten();
    let status = status.unwrap_or_else(|| panic!("no status for r.txt on {}", store.describe()));
    assert_eq!(status.state, FileState::Failed);
    assert_eq!(status.uploaded.as_ref(), Some(&uploaded));
    assert_eq!(status.failed.as_ref(), Some(&changed));
    assert_eq!(counts(&store).await, StatusCounts { done: 0, failed: 1 });
}

/// Failures reported concurrently by several workers are all counted.
pub async fn concurrent_errors_are_counted(factory: &dyn StatusStoreFactory) {
    let store = factory.open("concurrent", 1_000).await;
    let f = file("hot.txt", 1, 0);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = Arc::clone(&store);
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for attempt in 0..5 {
                seen.push(error(&store, &f, &format!("worker {worker} attempt {attempt}")).await);
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(
            task.await
                .unwrap_or_else(|err| panic!("worker task: {err}")),
        );
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=40).collect::<Vec<u32>>(),
        "every count returned once"
    );
    let status = store.status("hot.txt").await.ok().flatten();
    assert_eq!(status.map(|s| s.error_count), Some(40));
}

/// Records of one namespace are invisible in another; clearing one leaves the other.
pub async fn namespaces_are_isolated(factory: &dyn StatusStoreFactory) {
    let a = factory.open("ns-a", 3).await;
    let b = factory.open("ns-b", 3).await;
    let f = file("shared/name.txt", 7, 0);
    done(&a, &f, &f).await;
    error(&a, &file("other", 1, 0), "x").await;
    assert!(needs(&a, std::slice::from_ref(&f)).await.is_empty());
    assert_eq!(needs(&b, std::slice::from_ref(&f)).await, vec![f.clone()]);
    assert_eq!(b.status("shared/name.txt").await.ok(), Some(None));
    assert_eq!(counts(&b).await, StatusCounts::default());
    assert_eq!(counts(&a).await, StatusCounts { done: 1, failed: 1 });
    b.clear()
        .await
        .unwrap_or_else(|err| panic!("clear on {}: {err}", b.describe()));
    assert_eq!(counts(&a).await, StatusCounts { done: 1, failed: 1 });
    a.clear()
        .await
        .unwrap_or_else(|err| panic!("clear on {}: {err}", a.describe()));
    assert_eq!(counts(&a).await, StatusCounts::default());
    assert_eq!(needs(&a, std::slice::from_ref(&f)).await, vec![f]);
}

/// The answer keeps the order of the batch.
pub async fn order_is_kept(factory: &dyn StatusStoreFactory) {
    let store = factory.open("order", 3).await;
    // Deliberately not sorted.
    let files: Vec<FileInfo> = (0..200)
        .map(|i| file(&format!("d{}/f{:03}", (i * 7) % 13, (i * 37) % 200), i, 0))
        .collect();
    for f in files.iter().step_by(3) {
        done(&store, f, f).await;
    }
    let expected: Vec<FileInfo> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, f)| f.clone())
        .collect();
    let got = needs(&store, &files).await;
    assert_eq!(paths(&got), paths(&expected));
    assert_eq!(got, expected);
    let mut reversed = files.clone();
    reversed.reverse();
    let mut expected_reversed = expected;
    expected_reversed.reverse();
    assert_eq!(needs(&store, &reversed).await, expected_reversed);
}

/// Paths are exact keys: case, trailing spaces, unicode, `:` and glob characters matter.
pub async fn paths_are_exact(factory: &dyn StatusStoreFactory) {
    let store = factory.open("exact", 3).await;
    let names = [
        "Case.txt",
        "case.txt",
        "space ",
        "space",
        "日本語/ファイル 1.txt",
        "colon:in:name",
        "glob*?[x]\\",
        "deep/a/b/c/d/e/f/g.txt",
    ];
    let files: Vec<FileInfo> = names.iter().map(|n| file(n, 1, 0)).collect();
    for f in files.iter().step_by(2) {
        done(&store, f, f).await;
    }
    let got = needs(&store, &files).await;
    let expected: Vec<&str> = names.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(paths(&got), expected);
    for f in files.iter().step_by(2) {
        let status = store.status(&f.path).await.ok().flatten();
        assert_eq!(status.map(|s| s.state), Some(FileState::Done), "{}", f.path);
    }
    assert_eq!(store.status("CASE.TXT").await.ok(), Some(None));
    assert_eq!(counts(&store).await, StatusCounts { done: 4, failed: 0 });
}

/// A batch of 10,000 files is answered in one call, in order.
pub async fn large_batch(factory: &dyn StatusStoreFactory) {
    let store = factory.open("large", 2).await;
    let files: Vec<FileInfo> = (0..10_000u64)
        .map(|i| file(&format!("batch/{:02}/file-{i:05}.dat", i % 97), i, 0))
        .collect();
    let mut skipped = std::collections::HashSet::new();
    for i in (0..10_000).step_by(101) {
        done(&store, &files[i], &files[i]).await;
        skipped.insert(i);
    }
    for i in (55..10_000).step_by(1_000) {
        error(&store, &files[i], "one").await;
        error(&store, &files[i], "two").await;
        skipped.insert(i);
    }
    let expected: Vec<FileInfo> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| !skipped.contains(i))
        .map(|(_, f)| f.clone())
        .collect();
    let got = needs(&store, &files).await;
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    assert_eq!(
        counts(&store).await,
        StatusCounts {
            done: 100,
            failed: 10
        }
    );
}

/// `report_done_all` records a group of successes as `report_done` records each: errors
/// cleared, the uploaded file skipped afterwards; an empty group changes nothing. The group
/// is larger than what SQL stores put in one statement.
/// `is_empty` is true only for a namespace without records.
pub async fn done_in_groups(factory: &dyn StatusStoreFactory) {
    let store = factory.open("groups", 2).await;
    assert!(empty(&store).await, "a new namespace is empty");
    let failed = file("g/failed.txt", 1, 0);
    error(&store, &failed, "once").await;
    assert!(!empty(&store).await, "a failure is a record");
    assert!(
        empty(&factory.open("groups-other", 2).await).await,
        "other namespaces do not count"
    );
    let group: Vec<(FileInfo, FileInfo)> = (0..1200u64)
        .map(|i| {
            let path = format!("g/{i:04}.txt");
            (file(&path, i, 0), file(&path, i + 1, 60))
        })
        .chain([(failed.clone(), file("g/failed.txt", 2, 60))])
        .collect();
    store
        .report_done_all(&[])
        .await
        .unwrap_or_else(|err| panic!("report_done_all on {}: {err}", store.describe()));
    assert_eq!(counts(&store).await, StatusCounts { done: 0, failed: 1 });
    store
        .report_done_all(&group)
        .await
        .unwrap_or_else(|err| panic!("report_done_all on {}: {err}", store.describe()));
    let uploaded: Vec<FileInfo> = group.iter().map(|(_, u)| u.clone()).collect();
    let sources: Vec<FileInfo> = group.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(needs(&store, &uploaded).await, Vec::<FileInfo>::new());
    assert_eq!(needs(&store, &sources).await, sources);
    let status = store.status("g/failed.txt").await.ok().flatten();
    let status =
        status.unwrap_or_else(|| panic!("no status for g/failed.txt on {}", store.describe()));
    assert_eq!(status.state, FileState::Done);
    assert_eq!(status.error_count, 0);
    assert_eq!(status.last_error, None);
    assert_eq!(
        counts(&store).await,
        StatusCounts {
            done: 1201,
            failed: 0
        }
    );
}

/// Records survive closing and reopening the store (persistent backends only).
pub async fn persists_across_reopen(factory: &dyn StatusStoreFactory) {
    let store = factory.open("persist", 2).await;
    let ok = file("ok.txt", 1, 0);
    let uploaded = file("ok.txt", 2, 30);
    let bad = file("bad.txt", 1, 0);
    done(&store, &ok, &uploaded).await;
    error(&store, &bad, "one").await;
    error(&store, &bad, "two").await;
    store
        .close()
        .await
        .unwrap_or_else(|err| panic!("close on {}: {err}", store.describe()));
    drop(store);
    if !factory.reopen().await {
        return;
    }
    let store = factory.open("persist", 2).await;
    let fresh = file("new.txt", 1, 0);
    assert_eq!(
        needs(&store, &[uploaded.clone(), bad.clone(), fresh.clone()]).await,
        vec![fresh]
    );
    let status = store.status("bad.txt").await.ok().flatten();
    let status = status.unwrap_or_else(|| panic!("no status for bad.txt on {}", store.describe()));
    assert_eq!(status.error_count, 2);
    assert_eq!(status.last_error.as_deref(), Some("two"));
    let status = store.status("ok.txt").await.ok().flatten();
    let status = status.unwrap_or_else(|| panic!("no status for ok.txt on {}", store.describe()));
    assert_eq!(status.uploaded, Some(uploaded));
    assert!(status.updated > Utc::now() - Duration::days(1));
    assert_eq!(counts(&store).await, StatusCounts { done: 1, failed: 1 });
}
