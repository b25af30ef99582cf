//! `open_status_store_read_only`, the status store of a dry run: an embedded file is read
//! as it is and never written (every write refused, the file's bytes unchanged), a missing
//! file is not created and reads as empty.

use std::time::Duration;

use ikkatsu_core::ErrorKind;
use ikkatsu_overwrite::{
    Lease, StatusStoreOptions, open_status_store, open_status_store_read_only,
};
use ikkatsu_storage::FileInfo;

fn file(path: &str) -> FileInfo {
    FileInfo::new(path, 3)
}

#[tokio::test]
async fn an_embedded_store_is_read_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.redb");
    let url = path.to_str().unwrap();
    let store = open_status_store(url, StatusStoreOptions::new("ns"))
        .await
        .unwrap();
    store
        .report_done(&file("done.txt"), &file("done.txt"))
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);
    let before = std::fs::read(&path).unwrap();

    let store = open_status_store_read_only(url, StatusStoreOptions::new("ns"))
        .await
        .unwrap();
    let needed = store
        .needs_processing(vec![file("done.txt"), file("new.txt")])
        .await
        .unwrap();
    assert_eq!(
        needed.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["new.txt"]
    );
    let err = store
        .report_done(&file("new.txt"), &file("new.txt"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.to_string().contains("open to read only"), "{err}");
    let me = Lease::new("host", 1, Duration::from_secs(60));
    let err = store.acquire_lease(&me, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(store.lease().await.unwrap().is_none());
    store.close().await.unwrap();
    drop(store);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is unchanged"
    );
}

#[tokio::test]
async fn a_missing_embedded_store_is_not_created_and_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none/status.redb");
    let store = open_status_store_read_only(path.to_str().unwrap(), StatusStoreOptions::new("ns"))
        .await
        .unwrap();
    assert!(store.is_empty().await.unwrap());
    assert_eq!(
        store
            .needs_processing(vec![file("a.txt")])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!path.exists());
    assert!(!dir.path().join("none").exists());
}
