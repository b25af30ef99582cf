//! The [`Storage`] conformance suite: one async function per behaviour, each taking a fresh,
//! empty storage. [`storage_behaviours!`](crate::storage_behaviours) lists them so a backend's
//! tests can generate one test per behaviour; [`run_all`] runs them all in order.

use std::future::Future;

use futures::TryStreamExt;
use ikkatsu_core::ErrorKind;
use ikkatsu_storage::{FileInfo, Storage, WalkOptions};

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
            walk_counts_2000_files_exactly,
            conditional_write_accepted_when_unchanged,
            conditional_write_refused_after_change,
            conditional_write_refused_after_delete
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

/// Include and exclude globs match the whole relative path, `**` crossing directories.
pub async fn walk_include_exclude(storage: Storage) {
    put(&storage, TREE).await;
    let txt = WalkOptions::new().include("**/*.txt");
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
        walk_paths(&storage, WalkOptions::new().include("*.txt")).await,
        ["a.txt"]
    );
    assert_eq!(
        walk_paths(&storage, txt.exclude("tmp/**").exclude("docs/old/**")).await,
        ["a.txt", "docs/c.txt", "x/y/z/h.txt"]
    );
    assert_eq!(
        walk_paths(
            &storage,
            WalkOptions::new().include("docs/*.csv").include("*.csv")
        )
        .await,
        ["b.csv", "docs/d.csv"]
    );
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().exclude("**/*.txt")).await,
        ["b.csv", "docs/d.csv", "docs/old/f.log"]
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
        walk_paths(
            &storage,
            WalkOptions::new().max_depth(3).include("**/*.txt")
        )
        .await,
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

/// What the walker reports about a file is what stat reports: the status store compares them.
pub async fn walk_reports_what_stat_reports(storage: Storage) {
    put(&storage, &["one", "dir/two", "dir/sub/three"]).await;
    let walked: Vec<FileInfo> = storage
        .walk(WalkOptions::new())
        .expect("walk")
        .try_collect()
        .await
        .expect("walk succeeds");
    assert_eq!(walked.len(), 3);
    for info in walked {
        assert_eq!(storage.stat(&info.path).await.expect("stat"), info);
    }
}

/// A listing of 2,000 files over 20 directories yields each exactly once.
pub async fn walk_counts_2000_files_exactly(storage: Storage) {
    for i in 0..2000 {
        let path = format!("d{:02}/f{i:04}", i % 20);
        storage.write(&path, Vec::new()).await.expect("write");
    }
    let paths = walk_paths(&storage, WalkOptions::new()).await;
    assert_eq!(paths.len(), 2000);
    let unique: std::collections::BTreeSet<_> = paths.iter().collect();
    assert_eq!(unique.len(), 2000);
    assert_eq!(
        walk_paths(&storage, WalkOptions::new().include("d07/**"))
            .await
            .len(),
        100
    );
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
