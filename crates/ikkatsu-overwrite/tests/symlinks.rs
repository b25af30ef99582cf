//! Symbolic links in the overwrite flow (docs/adr/0012-symbolic-links.md): links are read
//! through only with `follow_symlinks`, never written through in place, never replaced by a
//! plain file, and nothing outside the source root changes.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::{CancellationToken, Error};
use ikkatsu_overwrite::{
    OverwriteFlow, OverwriteOptions, ProcessFn, ScanSummary, StatusStoreOptions, open_status_store,
    process_fn,
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

/// `data/` with plain files, links inside and outside it, and `outside/` beside it.
struct Tree {
    _dir: tempfile::TempDir,
    base: PathBuf,
    data: PathBuf,
}

const LINKS: [&str; 4] = ["link-in.txt", "link-out.txt", "dir-in", "dir-out"];

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let data = base.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/o.txt"), "outside\n").unwrap();
    std::fs::write(data.join("real.txt"), "real\n").unwrap();
    std::fs::write(data.join("sub/plain.txt"), "plain\n").unwrap();
    // A file link and a directory link inside the root, and each pointing outside it.
    symlink("real.txt", data.join("link-in.txt")).unwrap();
    symlink("../outside/o.txt", data.join("link-out.txt")).unwrap();
    symlink("sub", data.join("dir-in")).unwrap();
    symlink(base.join("outside"), data.join("dir-out")).unwrap();
    Tree {
        _dir: dir,
        base,
        data,
    }
}

impl Tree {
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.base.join(rel)).unwrap()
    }

    /// The links are still links, pointing where they did; nothing outside changed; the
    /// plain files were transformed exactly once.
    fn assert_links_intact(&self) {
        for link in LINKS {
            let meta = std::fs::symlink_metadata(self.data.join(link)).unwrap();
            assert!(meta.file_type().is_symlink(), "{link} is still a link");
        }
        assert_eq!(
            std::fs::read_link(self.data.join("link-in.txt")).unwrap(),
            Path::new("real.txt")
        );
        assert_eq!(self.read("outside/o.txt"), "outside\n");
        let outside: Vec<_> = std::fs::read_dir(self.base.join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["o.txt"], "no temporary file outside the root");
        assert_eq!(self.read("data/real.txt"), "real\nprocessed\n");
        assert_eq!(self.read("data/sub/plain.txt"), "plain\nprocessed\n");
    }
}

fn options(state: &Path, follow: bool) -> OverwriteOptions {
    let mut options = OverwriteOptions::new(state);
    options.walk = WalkOptions::new().include("*.txt").follow_symlinks(follow);
    options.concurrency = Some(2);
    options.retry.initial_backoff = Duration::from_millis(5);
    options
}

async fn flow(tree: &Tree, follow: bool) -> OverwriteFlow {
    let storage = Storage::open(&format!("file://{}", tree.data.display())).unwrap();
    let status = open_status_store("memory:", StatusStoreOptions::new("links"))
        .await
        .unwrap();
    OverwriteFlow::new(
        storage,
        status,
        append_line(),
        options(&tree.base.join("state"), follow),
    )
}

#[tokio::test]
async fn without_follow_symlinks_links_are_skipped_with_a_count() {
    let tree = tree();
    let flow = flow(&tree, false).await;
    let cancel = CancellationToken::new();
    let scan = flow.scan(&cancel).await.unwrap();
    assert_eq!(
        scan,
        ScanSummary {
            matched: 2,
            queued: 2,
            links_skipped: 4
        }
    );
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!(summary.progress.done, 2);
    assert_eq!(summary.progress.symlinks, 0);
    assert_eq!(summary.progress.failed + summary.progress.conflicts, 0);
    tree.assert_links_intact();
}

#[tokio::test]
async fn following_symlinks_in_place_reads_through_them_but_never_writes_through_them() {
    let tree = tree();
    let flow = flow(&tree, true).await;
    let cancel = CancellationToken::new();
    let scan = flow.scan(&cancel).await.unwrap();
    // real.txt, sub/plain.txt, and through the links link-in.txt, link-out.txt,
    // dir-in/plain.txt, dir-out/o.txt.
    assert_eq!(
        scan,
        ScanSummary {
            matched: 6,
            queued: 6,
            links_skipped: 0
        }
    );
    let summary = flow.process(&cancel, None).await.unwrap();
    let p = &summary.progress;
    assert_eq!((p.done, p.symlinks, p.failed, p.conflicts), (2, 4, 0, 0));
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    tree.assert_links_intact();

    // A second run writes nothing, and says again why the links were not written.
    flow.scan(&cancel).await.unwrap();
    let again = flow.process(&cancel, None).await.unwrap();
    assert_eq!((again.progress.done, again.progress.symlinks), (0, 4));
    tree.assert_links_intact();
}

#[tokio::test]
async fn following_symlinks_to_another_target_writes_there_as_plain_files() {
    let tree = tree();
    let target_dir = tree.base.join("target");
    std::fs::create_dir_all(&target_dir).unwrap();
    let target = Storage::open(&format!("file://{}", target_dir.display())).unwrap();
    let flow = flow(&tree, true).await.with_target(target);
    let cancel = CancellationToken::new();
    assert_eq!(flow.scan(&cancel).await.unwrap().matched, 6);
    let summary = flow.process(&cancel, None).await.unwrap();
    let p = &summary.progress;
    assert_eq!((p.done, p.symlinks, p.failed, p.conflicts), (6, 0, 0, 0));
    for (rel, text) in [
        ("real.txt", "real\nprocessed\n"),
        ("link-in.txt", "real\nprocessed\n"),
        ("link-out.txt", "outside\nprocessed\n"),
        ("dir-out/o.txt", "outside\nprocessed\n"),
        ("dir-in/plain.txt", "plain\nprocessed\n"),
        ("sub/plain.txt", "plain\nprocessed\n"),
    ] {
        let path = target_dir.join(rel);
        assert!(
            std::fs::symlink_metadata(&path).unwrap().is_file(),
            "{rel} is a plain file in the target"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{rel}");
    }
    // The source is only read.
    assert_eq!(tree.read("data/real.txt"), "real\n");
    assert_eq!(tree.read("outside/o.txt"), "outside\n");
    for link in LINKS {
        let meta = std::fs::symlink_metadata(tree.data.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} is still a link");
    }
}

#[tokio::test]
async fn links_in_a_local_target_are_neither_written_through_nor_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let source_dir = base.join("source");
    let target_dir = base.join("target");
    std::fs::create_dir_all(source_dir.join("sub")).unwrap();
    std::fs::create_dir_all(&target_dir).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/o.txt"), "outside\n").unwrap();
    for rel in ["o.txt", "sub/plain.txt", "new.txt"] {
        std::fs::write(source_dir.join(rel), "source\n").unwrap();
    }
    // In the target: o.txt is a link out of it, sub a linked directory out of it.
    symlink("../outside/o.txt", target_dir.join("o.txt")).unwrap();
    symlink(base.join("outside"), target_dir.join("sub")).unwrap();
    let source = Storage::open(&format!("file://{}", source_dir.display())).unwrap();
    let target = Storage::open(&format!("file://{}", target_dir.display())).unwrap();
    let status = open_status_store("memory:", StatusStoreOptions::new("target"))
        .await
        .unwrap();
    let flow = OverwriteFlow::new(
        source,
        status,
        append_line(),
        options(&base.join("state"), false),
    )
    .with_target(target);
    let cancel = CancellationToken::new();
    assert_eq!(flow.scan(&cancel).await.unwrap().queued, 3);
    let summary = flow.process(&cancel, None).await.unwrap();
    let p = &summary.progress;
    assert_eq!((p.done, p.symlinks, p.failed, p.conflicts), (1, 2, 0, 0));
    assert_eq!(
        std::fs::read_to_string(target_dir.join("new.txt")).unwrap(),
        "source\nprocessed\n"
    );
    for link in ["o.txt", "sub"] {
        let meta = std::fs::symlink_metadata(target_dir.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} is still a link");
    }
    let outside: Vec<_> = std::fs::read_dir(base.join("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["o.txt"], "nothing written outside the target");
    assert_eq!(
        std::fs::read_to_string(base.join("outside/o.txt")).unwrap(),
        "outside\n"
    );
}
