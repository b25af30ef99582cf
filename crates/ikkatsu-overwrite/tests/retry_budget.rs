//! One retry budget per operation of a file: with `retries: N`, the user function runs at
//! most N + 1 times, and a storage operation that keeps failing with a temporary error
//! (here: a WebDAV server on a closed port) is retried exactly N times by the storage and
//! not once more by the flow (before, the flow's retries multiplied the storage's: up to 16
//! attempts per upload with the defaults).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ikkatsu_core::{CancellationToken, Error, ErrorKind};
use ikkatsu_overwrite::{
    OverwriteConfig, OverwriteFlow, StatusStoreOptions, open_status_store, process_fn,
    write_backlog,
};
use ikkatsu_storage::{FileInfo, Storage};

/// A config over `source` with `retries` and the given settings.
fn config(source: &str, retries: u32, state: &std::path::Path) -> OverwriteConfig {
    serde_json::from_value(serde_json::json!({
        "source": source,
        "exec": "true",
        "retries": retries,
        "state-dir": state,
    }))
    .unwrap()
}

#[tokio::test]
async fn the_function_runs_retries_plus_one_times() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "a\n").unwrap();
    let config = config(&root.display().to_string(), 2, &dir.path().join("state"));
    let mut options = config.flow_options();
    options.retry.initial_backoff = std::time::Duration::from_millis(1);
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let process = process_fn(move |_: PathBuf, _: PathBuf| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err(Error::new(ErrorKind::Io, "busy").set_temporary(true)) }
    });
    let status = open_status_store("memory:", config.status_store_options())
        .await
        .unwrap();
    let flow = OverwriteFlow::new(
        Storage::open_with(&root.display().to_string(), &config.storage_options()).unwrap(),
        status,
        process,
        options,
    );
    let cancel = CancellationToken::new();
    flow.scan(&cancel).await.unwrap();
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.failed, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        summary.failures[0]
            .error
            .contains("gave up after 3 attempts"),
        "{:?}",
        summary.failures
    );
}

#[cfg(feature = "webdav")]
#[tokio::test]
async fn a_download_is_retried_by_the_storage_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let state = dir.path().join("state");
    let config = config(&format!("webdav+http://127.0.0.1:{port}/x"), 2, &state);
    let source = Storage::open_with(&config.source, &config.storage_options()).unwrap();
    // A backlog entry from a listing (with a time): the process phase downloads it at once.
    let mut file = FileInfo::new("a.txt", 2);
    file.modified = Some(chrono::Utc::now());
    let options = config.flow_options();
    std::fs::create_dir_all(&state).unwrap();
    write_backlog(
        options.backlog_path(),
        None,
        futures::stream::iter([Ok(file)]),
    )
    .await
    .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let process = process_fn(move |_: PathBuf, _: PathBuf| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let status = open_status_store("memory:", StatusStoreOptions::new("budget"))
        .await
        .unwrap();
    let flow = OverwriteFlow::new(source.clone(), status, process, options);
    let summary = flow.process(&CancellationToken::new(), None).await.unwrap();
    assert_eq!(summary.progress.failed, 1, "{summary:?}");
    assert!(
        summary.failures[0].error.contains("downloading `a.txt`"),
        "{:?}",
        summary.failures
    );
    // Three attempts: the first and two retries, all by the storage.
    assert_eq!(source.retry_count(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
