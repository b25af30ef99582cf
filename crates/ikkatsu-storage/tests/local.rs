//! Behaviours only the local file system has: symbolic links, large streamed files.

use std::os::unix::fs::symlink;

use futures::TryStreamExt;
use ikkatsu_storage::{ConditionalWrite, LinkTarget, Storage, WalkCounts, WalkOptions};
use sha2::{Digest, Sha256};

async fn paths(storage: &Storage, options: WalkOptions) -> Vec<String> {
    let mut paths: Vec<String> = storage
        .walk(options)
        .expect("walk")
        .map_ok(|info| info.path)
        .try_collect()
        .await
        .expect("walk succeeds");
    paths.sort();
    paths
}

fn tree_with_loop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::fs::create_dir_all(root.join("other")).expect("mkdir");
    std::fs::write(root.join("top.txt"), "t").expect("write");
    std::fs::write(root.join("a/one.txt"), "1").expect("write");
    std::fs::write(root.join("a/b/two.txt"), "2").expect("write");
    std::fs::write(root.join("other/three.txt"), "3").expect("write");
    // a/b/up -> the root: a loop. a/b/self -> itself's parent: a loop.
    symlink(root, root.join("a/b/up")).expect("symlink");
    symlink("..", root.join("a/b/parent")).expect("symlink");
    // link-to-other -> other: a directory reached only through a link.
    symlink(root.join("other"), root.join("a/link-to-other")).expect("symlink");
    symlink(root.join("top.txt"), root.join("a/link.txt")).expect("symlink");
    symlink(root.join("missing"), root.join("dangling")).expect("symlink");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_loop_terminates_and_yields_each_file_once() {
    let dir = tree_with_loop();
    let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("open");
    assert_eq!(
        paths(&storage, WalkOptions::new().follow_symlinks(true)).await,
        [
            "a/b/two.txt",
            "a/link-to-other/three.txt",
            "a/link.txt",
            "a/one.txt",
            "other/three.txt",
            "top.txt"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_follow_symlinks_links_are_neither_entered_nor_yielded() {
    let dir = tree_with_loop();
    let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("open");
    assert_eq!(
        paths(&storage, WalkOptions::new()).await,
        ["a/b/two.txt", "a/one.txt", "other/three.txt", "top.txt"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_links_are_counted() {
    let dir = tree_with_loop();
    let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("open");
    // Not followed: the four links to a directory or a file (the dangling one leads nowhere).
    let counts = WalkCounts::new();
    let options = WalkOptions {
        counts: Some(counts.clone()),
        ..WalkOptions::new()
    };
    assert_eq!(paths(&storage, options).await.len(), 4);
    assert_eq!(counts.links_skipped(), 4);
    // A link to a file the globs drop is not worth a warning.
    let counts = WalkCounts::new();
    let options = WalkOptions {
        counts: Some(counts.clone()),
        ..WalkOptions::new().include("*.csv")
    };
    assert!(paths(&storage, options).await.is_empty());
    assert_eq!(counts.links_skipped(), 3, "the three directory links");
    // Followed: only the dangling link is skipped (loops are cut without a warning).
    let counts = WalkCounts::new();
    let options = WalkOptions {
        counts: Some(counts.clone()),
        ..WalkOptions::new().follow_symlinks(true)
    };
    assert_eq!(paths(&storage, options).await.len(), 6);
    assert_eq!(counts.links_skipped(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_links_tells_inside_from_outside_the_root() {
    let base = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(base.path().join("outside")).expect("mkdir");
    std::fs::write(base.path().join("outside/o.txt"), "o").expect("write");
    let dir = tree_with_loop();
    symlink(base.path().join("outside"), dir.path().join("out")).expect("symlink");
    // The root itself may be reached through a link.
    symlink(dir.path(), base.path().join("root-link")).expect("symlink");
    let storage =
        Storage::open(base.path().join("root-link").to_str().expect("utf-8")).expect("open");
    let local = storage.local_files().expect("local");
    assert_eq!(local.resolve_link("top.txt").expect("resolve"), None);
    assert_eq!(local.resolve_link("a/b/two.txt").expect("resolve"), None);
    let inside = |rel: &str| {
        local
            .resolve_link(rel)
            .expect("resolve")
            .and_then(|t| t.in_root)
    };
    assert_eq!(inside("a/link.txt").as_deref(), Some("top.txt"));
    assert_eq!(
        inside("a/link-to-other/three.txt").as_deref(),
        Some("other/three.txt")
    );
    let Some(LinkTarget { real, in_root }) = local.resolve_link("out/o.txt").expect("resolve")
    else {
        panic!("out/o.txt is reached through a link");
    };
    assert_eq!(in_root, None);
    assert_eq!(
        real,
        std::fs::canonicalize(base.path().join("outside/o.txt")).expect("canonical")
    );
    // A path that does not exist yet: plain below plain directories, not below a link.
    assert_eq!(local.resolve_link("a/new.txt").expect("resolve"), None);
    assert_eq!(local.resolve_link("new/dir/file").expect("resolve"), None);
    let below = local
        .resolve_link("out/new.txt")
        .expect("resolve")
        .expect("a link");
    assert_eq!(below.in_root, None);
    assert_eq!(
        below.real,
        std::fs::canonicalize(base.path().join("outside"))
            .expect("canonical")
            .join("new.txt")
    );
    // A dangling link leads nowhere known: outside.
    let dangling = local
        .resolve_link("dangling")
        .expect("resolve")
        .expect("a link");
    assert_eq!(dangling.in_root, None);
    assert_eq!(dangling.real, dir.path().join("missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_walk_stops_the_walker() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..3000 {
        std::fs::write(dir.path().join(format!("f{i}")), "").expect("write");
    }
    let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("open");
    let mut stream = storage.walk(WalkOptions::new()).expect("walk");
    let first = stream.try_next().await.expect("item").expect("some");
    assert!(first.path.starts_with('f'));
    drop(stream);
    // The walker sees the closed channel and ends; a new walk still sees everything.
    assert_eq!(paths(&storage, WalkOptions::new()).await.len(), 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_root_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let url = format!("file://{}", missing.display());
    let err = Storage::open(&url).expect_err("missing root");
    assert_eq!(err.kind(), ikkatsu_core::ErrorKind::NotFound);
    assert!(err.message().contains(&url), "{}", err.message());
    assert!(!missing.exists(), "the root is not created");
}

/// Found by the `storage_url` fuzz target: a URL whose scheme is not one (a NUL byte in it,
/// or `s_ftp`) is a relative path, and the error about that path showed its password.
#[test]
fn a_path_that_looks_like_a_url_keeps_its_password_out_of_errors() {
    for url in [
        "webdav\u{1}\0ttps://user:password@h/remote.php/dav#x",
        "s_ftp://user:password@host/dir",
    ] {
        let err = Storage::open(url).expect_err("no such directory");
        let message = err.to_string();
        assert!(!message.contains("password"), "{message}");
        assert!(message.contains("user:***@"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_of_local_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("open");
    let caps = storage.capabilities();
    assert_eq!(caps.scheme, "fs");
    assert_eq!(caps.conditional_write, ConditionalWrite::StatCompareRename);
    assert!(caps.local_walker);
    let memory = Storage::open("memory:").expect("open").capabilities();
    assert_eq!(memory.conditional_write, ConditionalWrite::StatCompare);
    assert!(!memory.local_walker);
}

fn sha256_file(path: &std::path::Path) -> Vec<u8> {
    let mut file = std::fs::File::open(path).expect("open");
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).expect("hash");
    hasher.finalize().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_stream_up_and_down_intact() {
    let storage_dir = tempfile::tempdir().expect("tempdir");
    let local = tempfile::tempdir().expect("tempdir");
    let source = local.path().join("source.bin");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).expect("create"));
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..(50 * 1024 * 1024 / 8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            file.write_all(&state.to_le_bytes()).expect("write");
        }
        file.flush().expect("flush");
    }
    let storage = Storage::open(storage_dir.path().to_str().expect("utf-8")).expect("open");
    let uploaded = storage
        .upload(&source, "big/data.bin")
        .await
        .expect("upload");
    assert_eq!(uploaded.size, 50 * 1024 * 1024);
    let target = local.path().join("target.bin");
    let info = storage
        .download("big/data.bin", &target)
        .await
        .expect("download");
    assert_eq!(info, uploaded);
    assert_eq!(sha256_file(&target), sha256_file(&source));
    assert_eq!(
        sha256_file(&storage_dir.path().join("big/data.bin")),
        sha256_file(&source)
    );
    // And the conditional write of the same size streams it back in place.
    let replaced = storage
        .write_if_unchanged("big/data.bin", &target, &info)
        .await
        .expect("unchanged");
    assert_eq!(replaced.size, info.size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_walker_yields_each_file_once_and_stats_only_when_asked() {
    use futures::StreamExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Vec::new();
    for a in 0..12 {
        for b in 0..4 {
            for c in 0..3 {
                let rel_dir = format!("a{a}/b{b}/c{c}");
                std::fs::create_dir_all(dir.path().join(&rel_dir)).expect("mkdir");
                for f in 0..5 {
                    let rel = format!("{rel_dir}/f{f}.txt");
                    std::fs::write(dir.path().join(&rel), "x".repeat(f + 1)).expect("write");
                    expected.push(rel);
                }
                std::fs::write(dir.path().join(format!("{rel_dir}/skip.dat")), "d").expect("write");
            }
            std::fs::write(dir.path().join(format!("a{a}/b{b}/top.txt")), "t").expect("write");
            expected.push(format!("a{a}/b{b}/top.txt"));
        }
    }
    expected.sort();
    let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("open");
    let txt = WalkOptions::new().include("*.txt");
    assert_eq!(paths(&storage, txt.clone()).await, expected);

    let mut stat_ed = Vec::new();
    let mut batches = storage.walk_batches(txt.clone()).expect("walk");
    while let Some(batch) = batches.next().await {
        assert!(!batch.is_empty(), "no empty batch");
        for info in batch {
            let info = info.expect("walk succeeds");
            assert_eq!(info, storage.stat(&info.path).await.expect("stat"));
            stat_ed.push(info.path);
        }
    }
    stat_ed.sort();
    assert_eq!(stat_ed, expected);

    let mut names = Vec::new();
    let mut batches = storage.walk_paths(txt).expect("walk");
    while let Some(batch) = batches.next().await {
        for info in batch {
            let info = info.expect("walk succeeds");
            assert_eq!((info.size, info.modified), (0, None), "{}", info.path);
            names.push(info.path);
        }
    }
    names.sort();
    assert_eq!(names, expected);
}
