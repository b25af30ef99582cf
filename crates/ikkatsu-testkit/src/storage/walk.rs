//! The walk behaviours of the [`Storage`] conformance suite: what
//! [`Storage::walk`] yields, its filters (rclone's rules), depth and hidden names, and
//! exact counts over large listings.

use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::ErrorKind;
use ikkatsu_storage::{FileInfo, Storage, WalkOptions};

use super::{put, walk_paths};

/// Only files are yielded; directories (also empty ones) are not.
pub async fn walk_yields_files_only(storage: Storage) {
    put(&storage, &["top", "d1/a", "d1/d2/b"]).await;
    // Backends without directories (memory) refuse to create one: that is fine.
    let _ = storage.operator().create_dir("empty/").await;
    let _ = storage.operator().create_dir("d1/empty/").await;
    assert_eq!(
        walk_paths(&storage, WalkOptions::new()).await,
        ["d1/a", "d1/d2/b", "top"]
    );
}

const TREE: &[&str] = &[
    "a.txt",
    "b.csv",
    "docs/c.txt",
    "docs/d.csv",
    "docs/old/e.txt",
    "docs/old/f.log",
    "tmp/g.txt",
    "x/y/z/h.txt",
];

/// Include and exclude patterns follow rclone: a name pattern matches at any depth, a
/// leading `/` anchors at the root, `**` crosses directories, `dir/` is a whole directory.
pub async fn walk_include_exclude(storage: Storage) {
    put(&storage, TREE).await;
    let txt = WalkOptions::new().include("*.txt");
    assert_eq!(
        walk_paths(&storage, txt.clone()).await,
        [
            "a.txt",
            "docs/c.txt",
            "docs/old/e.txt",
            "tmp/g.txt",
            "x/y/z/h.txt"
        ]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().include("/*.txt")).await,
        ["a.txt"]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().include("**/*.txt")).await,
        ["docs/c.txt", "docs/old/e.txt", "tmp/g.txt", "x/y/z/h.txt"]
    );
    assert_eq!(
        walk_paths(
            &storage,
            WalkOptions::new()
                .exclude("tmp/**")
                .exclude("docs/old/")
                .exclude("*.{csv,log}")
        )
        .await,
        ["a.txt", "docs/c.txt", "x/y/z/h.txt"]
    );
    assert_eq!(
        walk_paths(
            &storage,
            WalkOptions::new().include("/docs/*.csv").include("/*.csv")
        )
        .await,
        ["b.csv", "docs/d.csv"]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().exclude("*.txt")).await,
        ["b.csv", "docs/d.csv", "docs/old/f.log"]
    );
    assert_eq!(
        walk_paths(
            &storage,
            WalkOptions::new()
                .filter("- old/")
                .filter("+ /docs/**")
                .filter("- *")
        )
        .await,
        ["docs/c.txt", "docs/d.csv"]
    );
    assert!(
        walk_paths(&storage, WalkOptions::new().include("nothing/**"))
            .await
            .is_empty()
    );
}

/// `max_depth` counts path components of the yielded file.
pub async fn walk_max_depth(storage: Storage) {
    put(&storage, TREE).await;
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().max_depth(1)).await,
        ["a.txt", "b.csv"]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().max_depth(2)).await,
        ["a.txt", "b.csv", "docs/c.txt", "docs/d.csv", "tmp/g.txt"]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().max_depth(3).include("*.txt")).await,
        ["a.txt", "docs/c.txt", "docs/old/e.txt", "tmp/g.txt"]
    );
    assert!(
        walk_paths(&storage, WalkOptions::new().max_depth(0))
            .await
            .is_empty()
    );
}

/// Hidden files and directories are skipped unless asked for.
pub async fn walk_hidden(storage: Storage) {
    put(
        &storage,
        &[
            "visible",
            ".hidden",
            ".git/config",
            "d/.env",
            "d/ok",
            "d/.cache/x",
        ],
    )
    .await;
    assert_eq!(
        walk_paths(&storage, WalkOptions::new()).await,
        ["d/ok", "visible"]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().include_hidden(true)).await,
        [
            ".git/config",
            ".hidden",
            "d/.cache/x",
            "d/.env",
            "d/ok",
            "visible"
        ]
    );
    assert_eq!(
        walk_paths(
            &storage,
            WalkOptions::new().include_hidden(true).include("**/.env")
        )
        .await,
        ["d/.env"]
    );
}

/// What the walker reports about a file is what stat reports, as far as the status store
/// compares them: path, size, modification time and etag. (Content type and version are
/// reported where the backend's listing has them; a stat may know more.)
pub async fn walk_reports_what_stat_reports(storage: Storage) {
    put(&storage, &["one", "dir/two", "dir/sub/three"]).await;
    let walked: Vec<FileInfo> = storage
        .walk(WalkOptions::new())
        .expect("walk")
        .try_collect()
        .await
        .expect("walk succeeds");
    assert_eq!(walked.len(), 3);
    let identity = |f: &FileInfo| (f.path.clone(), f.size, f.modified, f.etag.clone());
    for info in walked {
        let stat = storage.stat(&info.path).await.expect("stat");
        assert_eq!(identity(&stat), identity(&info), "{stat:?} / {info:?}");
    }
}

/// Directories, empty or not, are never yielded; a directory whose files were all deleted
/// walks as nothing, and the files beside empty directories are found at every depth limit.
pub async fn empty_directories(storage: Storage) {
    // Backends without directories (object stores keep `dir/` markers, memory refuses) may
    // refuse to create one: what matters is that none is ever yielded as a file.
    for dir in ["empty/", "a/b/c/", "a/empty/", "x/"] {
        let _ = storage.operator().create_dir(dir).await;
    }
    put(&storage, &["a/b/file", "x/y"]).await;
    assert_eq!(
        walk_paths(&storage, WalkOptions::new()).await,
        ["a/b/file", "x/y"]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().max_depth(2)).await,
        ["x/y"]
    );
    assert!(
        walk_paths(&storage, WalkOptions::new().include("empty/**"))
            .await
            .is_empty()
    );
    storage.delete("x/y").await.expect("delete");
    storage.delete("a/b/file").await.expect("delete");
    assert!(
        walk_paths(&storage, WalkOptions::new().include_hidden(true))
            .await
            .is_empty(),
        "directories left empty are not files"
    );
    if let Ok(true) = storage.exists("a/b/c/").await {
        let err = storage
            .stat("a/b/c")
            .await
            .expect_err("a directory is not a file");
        assert!(
            matches!(err.kind(), ErrorKind::InvalidState | ErrorKind::NotFound),
            "{err}"
        );
    }
}

/// A listing of 10,000 files over 20 directories yields each exactly once.
pub async fn walk_counts_10000_files_exactly(storage: Storage) {
    walk_counts_files_exactly(storage, 10_000).await;
}

/// A listing of `count` files (a multiple of 20) over 20 directories yields each exactly
/// once. The files (one byte each) are written 16 at a time through the operator, without
/// the stat [`Storage::write`] adds: this behaviour is about listing.
pub async fn walk_counts_files_exactly(storage: Storage, count: usize) {
    assert!(count.is_multiple_of(20), "count must be a multiple of 20");
    futures::stream::iter(0..count)
        .map(|i| {
            let op = storage.operator().clone();
            async move {
                let path = format!("d{:02}/f{i:05}", i % 20);
                op.write(&path, &b"x"[..]).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await
        .expect("write");
    let paths = walk_paths(&storage, WalkOptions::new()).await;
    assert_eq!(paths.len(), count);
    let unique: std::collections::BTreeSet<_> = paths.iter().collect();
    assert_eq!(unique.len(), count);
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().include("d07/**"))
            .await
            .len(),
        count / 20
    );
}
