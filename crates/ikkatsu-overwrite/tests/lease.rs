//! The run lease of the overwrite flow (see `ikkatsu_overwrite::lease`): one run per
//! namespace and per state directory; a run that loses its lease stops and fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::{CancellationToken, Error, ErrorKind};
use ikkatsu_overwrite::{
    Lease, LeaseAttempt, MemoryStatusStore, OverwriteFlow, OverwriteOptions, ProcessFn,
    StatusStore, StatusStoreOptions, process_fn,
};
use ikkatsu_storage::{Storage, WalkOptions};

/// Appends a line after `delay`.
fn slow_append(delay: Duration) -> Arc<dyn ProcessFn> {
    process_fn(move |input: PathBuf, output: PathBuf| async move {
        tokio::time::sleep(delay).await;
        let mut text = tokio::fs::read_to_string(&input)
            .await
            .map_err(|e| Error::io("in", e))?;
        text.push_str("processed\n");
        tokio::fs::write(&output, text)
            .await
            .map_err(|e| Error::io("out", e))
    })
}

fn tree(root: &Path, files: usize) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        std::fs::write(root.join(format!("f{i:03}.txt")), format!("{i}\n")).unwrap();
    }
}

/// A lease time to live far beyond what a loaded machine takes between two heartbeats: only
/// the test of a taken lease wants a short one (it must notice the loss within its run).
const TTL: Duration = Duration::from_secs(20);

fn flow(root: &Path, state: &Path, store: Arc<dyn StatusStore>, delay: Duration) -> OverwriteFlow {
    flow_with(root, state, store, delay, (false, TTL))
}

fn flow_with(
    root: &Path,
    state: &Path,
    store: Arc<dyn StatusStore>,
    delay: Duration,
    (cooperate, ttl): (bool, Duration),
) -> OverwriteFlow {
    let mut options = OverwriteOptions::new(state);
    options.cooperate = cooperate;
    options.walk = WalkOptions::new().include("*.txt");
    options.concurrency = Some(1);
    options.lease_ttl = ttl;
    OverwriteFlow::new(
        Storage::open(&format!("file://{}", root.display())).unwrap(),
        store,
        slow_append(delay),
        options,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_a_namespace_or_a_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    tree(&root, 5);
    let base = MemoryStatusStore::new(StatusStoreOptions::new("flow"));
    let first = flow(
        &root,
        &dir.path().join("s1"),
        Arc::new(base.clone()),
        Duration::ZERO,
    );
    let cancel = CancellationToken::new();
    first.scan(&cancel).await.unwrap();

    // Same namespace, its own state directory: the lease refuses it.
    let second = flow(
        &root,
        &dir.path().join("s2"),
        Arc::new(base.clone()),
        Duration::ZERO,
    );
    let err = second.scan(&cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(ikkatsu_overwrite::ALREADY_RUNNING),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("heartbeat last seen"), "{text}");

    // Another namespace, the same state directory: its lock refuses it.
    let other = Arc::new(base.share(StatusStoreOptions::new("other")));
    let third = flow(&root, &dir.path().join("s1"), other, Duration::ZERO);
    let err = third.scan(&cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning, "{err}");
    assert!(err.to_string().contains("state directory"), "{err}");

    // The first run ends and releases both; then the second may run (nothing left).
    let summary = first.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 5);
    assert_eq!(base.lease().await.unwrap(), None);
    assert_eq!(second.scan(&cancel).await.unwrap().queued, 0);
    second.release_lease().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_dropped_after_its_scan_leaves_no_lease_behind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    tree(&root, 3);
    let base = MemoryStatusStore::new(StatusStoreOptions::new("flow"));
    let state = dir.path().join("state");
    let cancel = CancellationToken::new();
    {
        let scanned = flow(&root, &state, Arc::new(base.clone()), Duration::ZERO);
        assert_eq!(scanned.scan(&cancel).await.unwrap().queued, 3);
    }
    let next = flow(&root, &state, Arc::new(base.clone()), Duration::ZERO);
    let summary = next.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_taken_stops_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    tree(&root, 40);
    let base = MemoryStatusStore::new(StatusStoreOptions::new("flow"));
    let running = flow_with(
        &root,
        &dir.path().join("state"),
        Arc::new(base.clone()),
        Duration::from_millis(50),
        (false, Duration::from_millis(600)),
    );
    let cancel = CancellationToken::new();
    running.scan(&cancel).await.unwrap();
    let held = base.lease().await.unwrap().unwrap();
    // Another run (on another host) takes the lease over.
    let thief = Lease::new("elsewhere", 1, Duration::from_secs(60));
    assert_eq!(
        base.acquire_lease(&thief, Some(&held.token)).await.unwrap(),
        LeaseAttempt::Acquired {
            replaced: Some(held)
        }
    );
    let err = running.process(&cancel, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning, "{err}");
    assert!(err.to_string().contains("lost its lease"), "{err}");
    let processed = (0..40)
        .filter(|i| {
            std::fs::read_to_string(root.join(format!("f{i:03}.txt")))
                .unwrap()
                .contains("processed")
        })
        .count();
    assert!(
        processed < 40,
        "it stopped before the end ({processed} done)"
    );
    assert_eq!(
        base.lease().await.unwrap(),
        Some(thief),
        "the thief's lease stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperating_and_exclusive_runs_refuse_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    tree(&root, 4);
    let base = MemoryStatusStore::new(StatusStoreOptions::new("flow"));
    let cancel = CancellationToken::new();
    let cooperating = |state: &str| {
        flow_with(
            &root,
            &dir.path().join(state),
            Arc::new(base.clone()),
            Duration::ZERO,
            (true, TTL),
        )
    };
    let a = cooperating("a");
    let b = cooperating("b");
    a.scan(&cancel).await.unwrap();
    b.scan(&cancel).await.unwrap();
    let exclusive = flow(
        &root,
        &dir.path().join("x"),
        Arc::new(base.clone()),
        Duration::ZERO,
    );
    let err = exclusive.scan(&cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning, "{err}");
    assert!(err.to_string().contains("with --cooperate"), "{err}");
    assert_eq!(
        base.lease().await.unwrap(),
        None,
        "the refused run let go of the lease"
    );
    let done_a = a.process(&cancel, None).await.unwrap().progress.done;
    let done_b = b.process(&cancel, None).await.unwrap().progress.done;
    assert_eq!(done_a + done_b, 4);

    exclusive.scan(&cancel).await.unwrap();
    let c = cooperating("c");
    let err = c.scan(&cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning, "{err}");
    assert!(err.to_string().contains("without --cooperate"), "{err}");
    exclusive.release_lease().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_cannot_cooperate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    tree(&root, 1);
    let url = format!("redb://{}", dir.path().join("s.redb").display());
    let store = ikkatsu_overwrite::open_status_store(&url, StatusStoreOptions::new("flow"))
        .await
        .unwrap();
    let flow = flow_with(
        &root,
        &dir.path().join("state"),
        store,
        Duration::ZERO,
        (true, TTL),
    );
    let err = flow.scan(&CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("--cooperate"), "{err}");
}

/// Three cooperating flows of one process, started at once on one status store, split the
/// work: none takes another for a flow that let go (and its claims for a dead run's), so no
/// file fails, none is transformed twice, and together they do every file once.
async fn cooperating_flows_of_one_process_split_the_work(store: Arc<dyn StatusStore>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    tree(&root, 150);
    let runs = (0..3).map(|i| {
        let flow = flow_with(
            &root,
            &dir.path().join(format!("s{i}")),
            Arc::clone(&store),
            Duration::from_millis(2),
            (true, TTL),
        );
        tokio::spawn(async move {
            let cancel = CancellationToken::new();
            flow.scan(&cancel).await?;
            flow.process(&cancel, None).await
        })
    });
    let mut done = 0;
    for run in futures::future::join_all(runs).await {
        let summary = run.unwrap().unwrap();
        assert_eq!(
            (summary.progress.failed, summary.progress.conflicts),
            (0, 0),
            "{:?}",
            summary.failures
        );
        done += summary.progress.done;
    }
    assert_eq!(done, 150);
    for i in 0..150 {
        let text = std::fs::read_to_string(root.join(format!("f{i:03}.txt"))).unwrap();
        assert_eq!(text, format!("{i}\nprocessed\n"), "f{i:03}.txt");
    }
    store.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperating_flows_of_one_process_split_the_work_in_memory() {
    let store = MemoryStatusStore::new(StatusStoreOptions::new("coop-in-process"));
    cooperating_flows_of_one_process_split_the_work(Arc::new(store)).await;
}

/// The same on the Redis Cluster of `scripts/redis-cluster`
/// (`IKKATSU_TEST_REDIS_CLUSTER_URL`).
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperating_flows_of_one_process_split_the_work_on_a_redis_cluster() {
    let url = std::env::var("IKKATSU_TEST_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103/".to_string()
    });
    let namespace = format!("coop-in-process-{}", std::process::id());
    let store = ikkatsu_overwrite::open_status_store(&url, StatusStoreOptions::new(&namespace))
        .await
        .unwrap();
    cooperating_flows_of_one_process_split_the_work(store).await;
}
