//! A listing that fails must fail the walk and `Storage::list` (what item readers use), on
//! every remote backend: a closed port, an unknown host, wrong credentials and a server
//! stopped in the middle of the listing. Only a listing the server answered is trusted.
//!
//! Start the test servers first: `scripts/test-servers start`, then
//! `eval "$(scripts/test-servers env)"`. The server stopped mid-listing is a TCP proxy of the
//! test's own in front of the test server, cut once half of the listing has gone through.
#![cfg(all(
    feature = "ftp",
    feature = "sftp",
    feature = "s3",
    feature = "webdav",
    feature = "gcs",
    feature = "azblob"
))]

mod support;

use futures::{StreamExt, TryStreamExt};
use ikkatsu_core::{Error, ErrorKind};
use ikkatsu_storage::{FileInfo, Storage, WalkOptions};

use support::{Backend, Cut, Proxy, unique};

/// A host name that never resolves (RFC 2606).
const UNKNOWN_HOST: &str = "no-such-host.invalid";

/// The backends of the matrix.
const BACKENDS: [Backend; 7] = [
    Backend::Ftp,
    Backend::Ftps,
    Backend::Sftp,
    Backend::S3,
    Backend::Webdav,
    Backend::Gcs,
    Backend::Azblob,
];

/// What a walk gave: the files before the first error, and that error.
async fn walk(storage: &Storage) -> (Vec<FileInfo>, Option<Error>) {
    let mut files = Vec::new();
    let mut stream = storage.walk(WalkOptions::new()).expect("walk");
    while let Some(item) = stream.next().await {
        match item {
            Ok(file) => files.push(file),
            Err(err) => {
                assert!(
                    stream.next().await.is_none(),
                    "the walk went on after {}",
                    err.report()
                );
                return (files, Some(err));
            }
        }
    }
    (files, None)
}

/// `storage`'s walk and recursive listing both fail; returns the walk's error.
async fn both_fail(backend: Backend, case: &str, storage: &Storage) -> Error {
    let (files, err) = walk(storage).await;
    let err = err.unwrap_or_else(|| {
        panic!(
            "{backend:?} {case}: the walk ended without an error after {} files",
            files.len()
        )
    });
    assert!(files.is_empty(), "{backend:?} {case}: {files:?}");
    let listed: Result<Vec<FileInfo>, Error> =
        storage.list("in", true).expect("list").try_collect().await;
    let list_err = listed.expect_err(&format!("{backend:?} {case}: Storage::list succeeded"));
    assert_eq!(list_err.kind(), err.kind(), "{}", list_err.report());
    let message = err.message();
    assert!(
        message.contains("list"),
        "{backend:?} {case}: {}",
        err.report()
    );
    assert!(
        message.contains(&support::shown(storage)),
        "{backend:?} {case}: the message names the storage: {}",
        err.report()
    );
    for secret in backend.secrets() {
        assert!(
            !err.report().contains(&secret),
            "{backend:?} {case}: a secret in {}",
            err.report()
        );
    }
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_port_fails_the_listing_after_its_retries() {
    let closed = support::free_port();
    for backend in BACKENDS {
        let storage = backend.open(&format!("127.0.0.1:{closed}"), &unique("closed"), true);
        let err = both_fail(backend, "closed port", &storage).await;
        assert_eq!(err.kind(), ErrorKind::Io, "{backend:?}: {}", err.report());
        assert!(
            err.message().contains("cannot reach the server"),
            "{backend:?}: {}",
            err.report()
        );
        assert!(
            storage.retry_count() >= 1,
            "{backend:?}: the listing was not retried: {}",
            err.report()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_host_fails_the_listing() {
    for backend in BACKENDS {
        let storage = backend.open(
            &format!("{UNKNOWN_HOST}:{}", backend.port()),
            &unique("dns"),
            true,
        );
        let err = both_fail(backend, "unknown host", &storage).await;
        assert_eq!(err.kind(), ErrorKind::Io, "{backend:?}: {}", err.report());
        assert!(
            err.message().contains("cannot reach the server"),
            "{backend:?}: {}",
            err.report()
        );
        assert!(
            err.report().contains(UNKNOWN_HOST),
            "{backend:?}: the cause names the host: {}",
            err.report()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_credentials_fail_the_listing_without_retries() {
    let moto = support::Moto::start_with_auth().await;
    let refuser = support::refusing_http_server().await;
    for backend in BACKENDS {
        let address = match backend {
            // The shared moto accepts any key, fake-gcs-server has no authentication: a moto
            // of the test's own that checks keys, and an HTTP server of the test's own that
            // answers every request as a GCS endpoint refusing the token would.
            Backend::S3 => format!("127.0.0.1:{}", moto.port),
            Backend::Gcs => format!("127.0.0.1:{refuser}"),
            _ => backend.address(),
        };
        let storage = backend.open(&address, &unique("creds"), false);
        let err = both_fail(backend, "wrong credentials", &storage).await;
        assert_eq!(
            err.kind(),
            ErrorKind::PermissionDenied,
            "{backend:?}: {}",
            err.report()
        );
        assert!(!err.is_temporary(), "{backend:?}: {}", err.report());
        assert_eq!(
            storage.retry_count(),
            0,
            "{backend:?}: a refusal was retried: {}",
            err.report()
        );
    }
}

/// The tree listed through the proxy: 12 directories of 5 files (60 files).
async fn write_tree(storage: &Storage) -> usize {
    let writes = (0..12).flat_map(|d| (0..5).map(move |f| format!("in/d{d:02}/f{f}.txt")));
    futures::stream::iter(writes)
        .map(|path| async move { storage.write(&path, &b"x"[..]).await.expect("write") })
        .buffer_unordered(8)
        .count()
        .await
}

/// One test per backend (each lists a tree three times through a proxy).
macro_rules! server_stopped_mid_listing {
    ($($name:ident => $backend:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                server_stopped_mid_listing_fails_the_walk($backend).await;
            }
        )*
    };
}

server_stopped_mid_listing! {
    server_stopped_mid_listing_ftp => Backend::Ftp,
    server_stopped_mid_listing_ftps => Backend::Ftps,
    server_stopped_mid_listing_sftp => Backend::Sftp,
    server_stopped_mid_listing_s3 => Backend::S3,
    server_stopped_mid_listing_webdav => Backend::Webdav,
    server_stopped_mid_listing_gcs => Backend::Gcs,
    server_stopped_mid_listing_azblob => Backend::Azblob,
}

async fn server_stopped_mid_listing_fails_the_walk(backend: Backend) {
    let prefix = unique("cut");
    let direct = backend.fixture(&prefix).await;
    let total = write_tree(&direct).await;

    // Through a proxy that is never cut: the whole tree, and how many bytes the server
    // sent before the first file and in all.
    let proxy = Proxy::start(backend.port(), u64::MAX, Cut::Stop).await;
    let storage = backend.open_at(&proxy, &prefix);
    let mut first = None;
    let mut stream = storage.walk(WalkOptions::new()).expect("walk");
    let mut seen = 0;
    while let Some(item) = stream.next().await {
        item.unwrap_or_else(|e| panic!("{backend:?} through the proxy: {}", e.report()));
        first.get_or_insert(proxy.bytes());
        seen += 1;
    }
    assert_eq!(seen, total, "{backend:?}: the whole tree through the proxy");
    let (first, all) = (first.unwrap_or(0), proxy.bytes());
    drop(stream);
    drop(storage);
    proxy.stop();

    // Cut in the middle: after the first file and before the end where the backend
    // lists one directory at a time, in the middle of the one page otherwise.
    let mut cut = if backend.lists_pages() {
        all / 2
    } else {
        (first + all) / 2
    };
    // The connections cut once, in the middle: the storage's retries list the rest (a
    // failed directory listing is repeated whole), or the walk fails; never a partial
    // listing that ends as if complete. The measured walk may have sent more bytes than
    // this one needs (a request it repeated on a loaded machine): then this walk ends
    // before the cut, and the cut moves earlier.
    for attempt in 1.. {
        let proxy = Proxy::start(backend.port(), cut, Cut::Once).await;
        let storage = backend.open_at(&proxy, &prefix);
        let (files, err) = walk(&storage).await;
        if err.is_none() {
            assert_eq!(
                files.len(),
                total,
                "{backend:?}: a walk cut once after {cut} of {all} bytes ended without an \
                 error but without every file"
            );
        }
        let was_cut = proxy.was_cut();
        drop(storage);
        proxy.stop();
        if was_cut {
            break;
        }
        assert!(attempt < 4, "{backend:?}: the proxy was not cut");
        cut = if backend.lists_pages() {
            cut / 2
        } else {
            first + (cut - first) / 2
        };
    }

    // The server stopped in the middle: the walk fails.
    let proxy = Proxy::start(backend.port(), cut, Cut::Stop).await;
    let storage = backend.open_at(&proxy, &prefix);
    let (files, err) = walk(&storage).await;
    let err = err.unwrap_or_else(|| {
        panic!(
            "{backend:?}: the walk cut after {cut} of {all} bytes ended without an error, \
             with {} of {total} files",
            files.len()
        )
    });
    assert!(proxy.was_cut(), "{backend:?}: the proxy was not cut");
    assert!(files.len() < total, "{backend:?}: {} files", files.len());
    if !backend.lists_pages() {
        assert!(!files.is_empty(), "{backend:?}: cut before the first file");
    }
    assert_eq!(err.kind(), ErrorKind::Io, "{backend:?}: {}", err.report());
    assert!(
        err.message().contains("list \""),
        "{backend:?}: {}",
        err.report()
    );
    proxy.stop();
    backend.cleanup(direct).await;
}

/// A listing the server answered is trusted: a missing start directory is empty (object
/// stores have no directories; WebDAV answers 404), and an empty directory too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listing_that_succeeded_and_found_nothing_is_empty() {
    for backend in BACKENDS {
        let storage = backend.fixture(&unique("empty")).await;
        let (files, err) = walk(&storage).await;
        assert!(
            err.is_none(),
            "{backend:?}: {}",
            err.map(|e| e.report()).unwrap_or_default()
        );
        assert!(files.is_empty(), "{backend:?}: {files:?}");
        let listed: Vec<FileInfo> = storage
            .list("missing/dir", true)
            .expect("list")
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {}", e.report()));
        assert!(listed.is_empty(), "{backend:?}: {listed:?}");
        backend.cleanup(storage).await;
    }
}

/// An FTP or SFTP root that can neither be entered nor created (below a file) is refused,
/// not read as an empty directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_that_cannot_be_created_is_refused() {
    for backend in [Backend::Ftp, Backend::Sftp] {
        let prefix = unique("file-root");
        let direct = backend.fixture(&prefix).await;
        direct.write("file", &b"x"[..]).await.expect("write");
        let storage = backend.open(&backend.address(), &format!("{prefix}/file/sub"), true);
        let (files, err) = walk(&storage).await;
        let err =
            err.unwrap_or_else(|| panic!("{backend:?}: walk of a root below a file: {files:?}"));
        assert_eq!(
            err.kind(),
            ErrorKind::PermissionDenied,
            "{backend:?}: {}",
            err.report()
        );
        assert!(
            err.report().contains("can neither be entered nor created"),
            "{backend:?}: {}",
            err.report()
        );
        backend.cleanup(direct).await;
    }
}

/// A directory deleted during a recursive listing (the walk's) is not an error: the server
/// answered that it is not there, and the listing goes on with the others (the backends that list one directory at a
/// time; object stores list a prefix in one go).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_deleted_during_the_walk_is_skipped() {
    for backend in [Backend::Ftp, Backend::Sftp, Backend::Webdav] {
        let storage = backend.fixture(&unique("deleted")).await;
        for d in ["a", "b", "c"] {
            for f in 0..2 {
                storage
                    .write(&format!("{d}/f{f}.txt"), &b"x"[..])
                    .await
                    .expect("write");
            }
        }
        // `list` asks for the next directory only when the entries before are consumed (the
        // walk hands files over in batches, so it may read ahead).
        let mut stream = storage.list("", true).expect("list");
        let first = stream
            .next()
            .await
            .expect("a first file")
            .unwrap_or_else(|e| panic!("{backend:?}: {}", e.report()));
        let first_dir = first.path.split('/').next().unwrap_or_default().to_string();
        // Delete the directories not listed yet but one; the walk still lists that one.
        let mut others: Vec<&str> = ["a", "b", "c"]
            .into_iter()
            .filter(|d| *d != first_dir)
            .collect();
        let kept = others.pop().expect("another directory");
        let deleted = others.pop().expect("a third directory");
        for f in 0..2 {
            storage
                .delete(&format!("{deleted}/f{f}.txt"))
                .await
                .expect("delete");
        }
        let _ = storage.operator().delete(&format!("{deleted}/")).await;
        let mut rest: Vec<String> = stream
            .map_ok(|f| f.path)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {}", e.report()));
        rest.push(first.path);
        rest.sort();
        let mut expected: Vec<String> = [first_dir.as_str(), kept]
            .iter()
            .flat_map(|d| (0..2).map(move |f| format!("{d}/f{f}.txt")))
            .collect();
        expected.sort();
        assert_eq!(rest, expected, "{backend:?}");
        backend.cleanup(storage).await;
    }
}
