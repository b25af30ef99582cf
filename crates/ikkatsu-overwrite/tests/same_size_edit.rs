//! An edit made while a file is processed that keeps the file's size and restores its
//! modification time is still seen as a change: on the local file system by the inode and
//! the status-change time (ctime), on object stores by the ETag or generation. See the table
//! in docs/storage.md for what each backend can detect.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ikkatsu_core::{CancellationToken, Error};
use ikkatsu_overwrite::{
    OverwriteFlow, OverwriteOptions, ProcessFn, StatusStoreOptions, open_status_store, process_fn,
};
use ikkatsu_storage::{Storage, WalkOptions};

fn options(state: &Path) -> OverwriteOptions {
    let mut options = OverwriteOptions::new(state);
    options.walk = WalkOptions::new().include("*.txt");
    options.concurrency = Some(2);
    options.retry.initial_backoff = Duration::from_millis(5);
    options
}

#[cfg(unix)]
fn ctime(path: &Path) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    (meta.ctime(), meta.ctime_nsec())
}

/// Waits until the file system's clock (which stamps ctimes, in ticks of a few
/// milliseconds) has moved past `path`'s ctime, so that a change made now shows.
#[cfg(unix)]
fn wait_for_a_later_ctime(path: &Path, probe: &Path) {
    let before = ctime(path);
    loop {
        std::fs::write(probe, "tick").unwrap();
        if ctime(probe) > before {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Rewrites `path` with `text` (of the same size) and gives it back `mtime`: in place
/// (same inode) or, like an editor saving through a new file, by a rename over it.
fn rewrite_keeping_size_and_mtime(path: &Path, text: &str, mtime: SystemTime, by_rename: bool) {
    assert_eq!(std::fs::metadata(path).unwrap().len(), text.len() as u64);
    if by_rename {
        let new = path.with_extension("saving");
        std::fs::write(&new, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&new)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&new, path).unwrap();
    } else {
        std::fs::write(path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

#[cfg(unix)]
#[tokio::test]
async fn a_local_edit_that_keeps_size_and_mtime_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    for name in ["in-place.txt", "renamed.txt"] {
        std::fs::write(root.join(name), "ORIG 1\n").unwrap();
    }
    std::fs::write(root.join("other.txt"), "other\n").unwrap();
    let probe = state.join("clock-probe");
    let data = root.clone();
    // While processing, someone edits the original: same size, modification time restored
    // (`printf 'ORIG 4\n' > f; touch -r ref f`, or an editor saving through a new file).
    let meddling: Arc<dyn ProcessFn> = process_fn(move |input: PathBuf, output: PathBuf| {
        let (data, probe) = (data.clone(), probe.clone());
        async move {
            let text = tokio::fs::read_to_string(&input)
                .await
                .map_err(|e| Error::io("in", e))?;
            let name = input.file_name().unwrap().to_string_lossy().into_owned();
            if name != "other.txt" {
                let original = data.join(&name);
                let mtime = std::fs::metadata(&original).unwrap().modified().unwrap();
                wait_for_a_later_ctime(&original, &probe);
                rewrite_keeping_size_and_mtime(&original, "ORIG 4\n", mtime, name == "renamed.txt");
            }
            tokio::fs::write(&output, text.to_lowercase())
                .await
                .map_err(|e| Error::io("out", e))
        }
    });
    let status = open_status_store("memory:", StatusStoreOptions::new("edit"))
        .await
        .unwrap();
    let storage = Storage::open(&format!("file://{}", root.display())).unwrap();
    let flow = OverwriteFlow::new(storage, status, meddling, options(&state));
    let cancel = CancellationToken::new();
    assert_eq!(flow.scan(&cancel).await.unwrap().queued, 3);
    let summary = flow.process(&cancel, None).await.unwrap();
    let p = &summary.progress;
    assert_eq!((p.done, p.conflicts, p.failed), (1, 2, 0), "{summary:?}");
    let mut conflicts: Vec<&str> = summary
        .failures
        .iter()
        .filter(|f| f.conflict)
        .map(|f| f.path.as_str())
        .collect();
    conflicts.sort();
    assert_eq!(conflicts, ["in-place.txt", "renamed.txt"]);
    assert!(
        summary.failures[0]
            .error
            .contains("inode or status-change time"),
        "{}",
        summary.failures[0].error
    );
    for name in ["in-place.txt", "renamed.txt"] {
        assert_eq!(
            std::fs::read_to_string(root.join(name)).unwrap(),
            "ORIG 4\n",
            "{name}: the edit is kept"
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join("other.txt")).unwrap(),
        "other\n"
    );
    let left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// The memory store keeps sizes only: a same-size edit is not seen (see docs/storage.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_edit_in_memory_is_not_seen() {
    let source = Storage::open("memory:same-size-edit").unwrap();
    source.write("edited.txt", "ORIG 1\n").await.unwrap();
    let meddler = source.clone();
    let meddling: Arc<dyn ProcessFn> = process_fn(move |input: PathBuf, output: PathBuf| {
        let meddler = meddler.clone();
        async move {
            let text = tokio::fs::read_to_string(&input)
                .await
                .map_err(|e| Error::io("in", e))?;
            meddler.write("edited.txt", "ORIG 4\n").await?;
            tokio::fs::write(&output, text.to_lowercase())
                .await
                .map_err(|e| Error::io("out", e))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let status = open_status_store("memory:", StatusStoreOptions::new("edit"))
        .await
        .unwrap();
    let flow = OverwriteFlow::new(source.clone(), status, meddling, options(dir.path()));
    let cancel = CancellationToken::new();
    flow.scan(&cancel).await.unwrap();
    let summary = flow.process(&cancel, None).await.unwrap();
    assert_eq!((summary.progress.done, summary.progress.conflicts), (1, 0));
    assert_eq!(
        source.read("edited.txt").await.unwrap().as_ref(),
        b"orig 1\n"
    );
}

/// On S3 (the moto test server), a same-size rewrite during processing is refused by the
/// conditional upload (`If-Match` on the ETag), whatever its modification time.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_edit_on_s3_is_a_conflict() {
    let source = Storage::open(&s3_url()).unwrap();
    assert_refused_by_the_server(&same_size_remote_edit_is_a_conflict(source).await);
}

/// On GCS the upload is conditional on the generation (`ifGenerationMatch`). The test
/// server (fake-gcs-server) ignores that precondition, so it runs with
/// `conditional-write=false`: a comparison right before the upload, where the ETag (the
/// content's MD5) differs.
#[cfg(feature = "gcs")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_edit_on_gcs_is_a_conflict() {
    let source = Storage::open(&gcs_url()).unwrap();
    same_size_remote_edit_is_a_conflict(source).await;
}

/// On Azure Blob (the Azurite test server), as on S3: the upload carries `If-Match` with
/// the ETag read, and the server refuses it after a same-size rewrite.
#[cfg(feature = "azblob")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_edit_on_azure_blob_is_a_conflict() {
    let source = Storage::open(&azblob_url()).unwrap();
    assert_eq!(
        source.capabilities().conditional_write,
        ikkatsu_storage::ConditionalWrite::IfMatch
    );
    assert_refused_by_the_server(&same_size_remote_edit_is_a_conflict(source).await);
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azblob"))]
async fn same_size_remote_edit_is_a_conflict(source: Storage) -> String {
    let dir = tempfile::tempdir().unwrap();
    source.write("edited.txt", "ORIG 1\n").await.unwrap();
    source.write("other.txt", "other\n").await.unwrap();
    let meddler = source.clone();
    let meddling: Arc<dyn ProcessFn> = process_fn(move |input: PathBuf, output: PathBuf| {
        let meddler = meddler.clone();
        async move {
            let text = tokio::fs::read_to_string(&input)
                .await
                .map_err(|e| Error::io("in", e))?;
            if text == "ORIG 1\n" {
                meddler.write("edited.txt", "ORIG 4\n").await?;
            }
            tokio::fs::write(&output, text.to_lowercase())
                .await
                .map_err(|e| Error::io("out", e))
        }
    });
    let status = open_status_store("memory:", StatusStoreOptions::new("edit"))
        .await
        .unwrap();
    let flow = OverwriteFlow::new(source.clone(), status, meddling, options(dir.path()));
    let cancel = CancellationToken::new();
    assert_eq!(flow.scan(&cancel).await.unwrap().queued, 2);
    let summary = flow.process(&cancel, None).await.unwrap();
    let p = &summary.progress;
    assert_eq!((p.done, p.conflicts, p.failed), (1, 1, 0), "{summary:?}");
    assert_eq!(summary.failures[0].path, "edited.txt");
    assert!(summary.failures[0].conflict);
    assert_eq!(
        source.read("edited.txt").await.unwrap().as_ref(),
        b"ORIG 4\n"
    );
    assert_eq!(source.read("other.txt").await.unwrap().as_ref(), b"other\n");
    summary.failures[0].error.clone()
}

/// The conflict was the server's refusal of the conditional upload, not a comparison made
/// by the client.
#[cfg(any(feature = "s3", feature = "azblob"))]
fn assert_refused_by_the_server(error: &str) {
    assert!(
        error.contains("the backend refused the conditional write"),
        "{error}"
    );
}

/// FTP, SFTP and WebDAV (nginx) report a size and a modification time in whole seconds, and
/// nothing that follows the content: an edit made on the server's disk that keeps the size
/// and restores the time cannot be told apart, and the result overwrites it. (This test
/// documents that limitation; see the table in docs/storage.md.)
#[cfg(all(feature = "ftp", feature = "sftp", feature = "webdav"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_edit_with_the_time_restored_is_not_seen_on_ftp_sftp_and_webdav() {
    let servers = PathBuf::from(var("IKKATSU_TEST_SERVERS_DIR"));
    for backend in ["ftp", "sftp", "webdav"] {
        let prefix = unique(&format!("same-size-{backend}"));
        let (url, on_disk) = match backend {
            "ftp" => (
                format!(
                    "ftp://{}:{}@{}:{}/{prefix}",
                    var("IKKATSU_TEST_FTP_USER"),
                    var("IKKATSU_TEST_FTP_PASSWORD"),
                    var("IKKATSU_TEST_FTP_HOST"),
                    var("IKKATSU_TEST_FTP_PORT"),
                ),
                servers.join("ftp").join(&prefix),
            ),
            "sftp" => {
                let root = var("IKKATSU_TEST_SFTP_ROOT");
                let root = root.trim_matches('/');
                (
                    format!(
                        "sftp://{}@{}:{}/{root}/{prefix}?key-file={}&known-hosts={}",
                        var("IKKATSU_TEST_SFTP_USER"),
                        var("IKKATSU_TEST_SFTP_HOST"),
                        var("IKKATSU_TEST_SFTP_PORT"),
                        var("IKKATSU_TEST_SFTP_KEY"),
                        var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"),
                    ),
                    servers.join("sftp").join(root).join(&prefix),
                )
            }
            _ => {
                let base = var("IKKATSU_TEST_WEBDAV_URL");
                (
                    format!(
                        "webdav+http://{}:{}@{}/{prefix}",
                        var("IKKATSU_TEST_WEBDAV_USER"),
                        var("IKKATSU_TEST_WEBDAV_PASSWORD"),
                        base.trim_start_matches("http://"),
                    ),
                    servers.join("webdav").join(&prefix),
                )
            }
        };
        let source = Storage::open(&url).unwrap();
        source.write("edited.txt", "ORIG 1\n").await.unwrap();
        let edited = on_disk.join("edited.txt");
        assert_eq!(
            std::fs::read_to_string(&edited).unwrap(),
            "ORIG 1\n",
            "{backend}"
        );
        let meddling: Arc<dyn ProcessFn> = process_fn(move |input: PathBuf, output: PathBuf| {
            let edited = edited.clone();
            async move {
                let text = tokio::fs::read_to_string(&input)
                    .await
                    .map_err(|e| Error::io("in", e))?;
                let mtime = std::fs::metadata(&edited).unwrap().modified().unwrap();
                rewrite_keeping_size_and_mtime(&edited, "ORIG 4\n", mtime, false);
                tokio::fs::write(&output, text.to_lowercase())
                    .await
                    .map_err(|e| Error::io("out", e))
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let status = open_status_store("memory:", StatusStoreOptions::new("edit"))
            .await
            .unwrap();
        let flow = OverwriteFlow::new(source.clone(), status, meddling, options(dir.path()));
        let cancel = CancellationToken::new();
        assert_eq!(flow.scan(&cancel).await.unwrap().queued, 1, "{backend}");
        let summary = flow.process(&cancel, None).await.unwrap();
        let p = &summary.progress;
        assert_eq!(
            (p.done, p.conflicts, p.failed),
            (1, 0, 0),
            "{backend}: {summary:?}"
        );
        assert_eq!(
            source.read("edited.txt").await.unwrap().as_ref(),
            b"orig 1\n",
            "{backend}: the edit was overwritten"
        );
        let _ = std::fs::remove_dir_all(&on_disk);
    }
}

/// Why an ETag cannot help on the WebDAV test server (nginx): its `PROPFIND` reports no
/// `getetag`, the ETag of its `GET`/`HEAD` answers is made of the modification time (seconds)
/// and the size only, so it stays the same after a same-size edit with the time restored,
/// and its `PUT` ignores `If-Match`.
#[cfg(feature = "webdav")]
#[test]
fn nginx_webdav_etags_follow_size_and_time_only_and_put_ignores_if_match() {
    let base = var("IKKATSU_TEST_WEBDAV_URL");
    let auth = format!(
        "{}:{}",
        var("IKKATSU_TEST_WEBDAV_USER"),
        var("IKKATSU_TEST_WEBDAV_PASSWORD")
    );
    let prefix = unique("webdav-etag");
    let url = format!("{base}/{prefix}/edited.txt");
    let http = |args: &[&str]| -> String {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-u", &auth])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let etag = || -> String {
        http(&["-I", &url])
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .map(|e| e.trim().to_string())
            .expect("nginx sends an ETag")
    };
    assert_eq!(
        http(&[
            "-X",
            "MKCOL",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/{prefix}/")
        ]),
        "201"
    );
    let put = |body: &str, if_match: Option<&str>| -> String {
        let mut args = vec!["-X", "PUT", "--data-binary", body, "-o", "/dev/null"];
        let header = if_match.map(|tag| format!("If-Match: {tag}"));
        if let Some(header) = &header {
            args.extend(["-H", header.as_str()]);
        }
        args.extend(["-w", "%{http_code}", url.as_str()]);
        http(&args)
    };
    assert_eq!(put("ORIG 1\n", None), "201");
    let listing = http(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("{base}/{prefix}/"),
    ]);
    assert!(listing.contains("edited.txt"), "{listing}");
    assert!(!listing.contains("getetag"), "{listing}");
    let before = etag();
    let on_disk = PathBuf::from(var("IKKATSU_TEST_SERVERS_DIR"))
        .join("webdav")
        .join(&prefix)
        .join("edited.txt");
    let mtime = std::fs::metadata(&on_disk).unwrap().modified().unwrap();
    rewrite_keeping_size_and_mtime(&on_disk, "ORIG 4\n", mtime, false);
    assert_eq!(etag(), before, "the ETag did not follow the content");
    // A PUT conditional on an ETag the file does not have is accepted.
    assert_eq!(put("ORIG 5\n", Some("\"not-its-etag\"")), "204");
    assert_eq!(http(&[&url]), "ORIG 5\n");
    let _ = std::fs::remove_dir_all(on_disk.parent().unwrap());
}

#[cfg(any(
    feature = "s3",
    feature = "gcs",
    feature = "azblob",
    feature = "webdav",
    all(feature = "ftp", feature = "sftp", feature = "webdav")
))]
fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the storage test servers and load their settings with \
             `scripts/test-servers start && eval \"$(scripts/test-servers env)\"`"
        )
    })
}

#[cfg(any(
    feature = "s3",
    feature = "gcs",
    feature = "azblob",
    feature = "webdav",
    all(feature = "ftp", feature = "sftp", feature = "webdav")
))]
fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

#[cfg(any(feature = "s3", feature = "gcs"))]
fn curl(args: &[&str]) {
    let out = std::process::Command::new("curl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "s3")]
fn s3_url() -> String {
    let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
    let bucket = unique("same-size");
    // The S3 test server does not check signatures when creating a bucket.
    curl(&["-sf", "-X", "PUT", &format!("{endpoint}/{bucket}")]);
    format!(
        "s3://{bucket}/edit?endpoint={endpoint}&region={}&access-key-id={}&secret-access-key={}",
        var("IKKATSU_TEST_S3_REGION"),
        var("IKKATSU_TEST_S3_ACCESS_KEY"),
        var("IKKATSU_TEST_S3_SECRET_KEY"),
    )
}

#[cfg(feature = "gcs")]
fn gcs_url() -> String {
    let endpoint = var("IKKATSU_TEST_GCS_ENDPOINT");
    let bucket = unique("same-size");
    curl(&[
        "-sf",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &format!("{{\"name\":\"{bucket}\"}}"),
        &format!("{endpoint}/storage/v1/b"),
    ]);
    format!("gcs://{bucket}/edit?endpoint={endpoint}&anonymous=true&conditional-write=false")
}

/// A fresh container on Azurite (created with a Shared Key signed request: openssl computes
/// the signature, curl sends it) and the URL of a prefix in it.
#[cfg(feature = "azblob")]
fn azblob_url() -> String {
    let endpoint = var("IKKATSU_TEST_AZBLOB_ENDPOINT");
    let account = var("IKKATSU_TEST_AZBLOB_ACCOUNT");
    let key = var("IKKATSU_TEST_AZBLOB_KEY");
    let container = unique("same-size");
    // Azurite is path-style: the resource is /account/account/container.
    let path = endpoint
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or(String::new(), |(_, p)| format!("/{p}"));
    let script = r#"date=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')
version=2021-08-06
to_sign=$(printf 'PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:%s\n/%s%s/%s\nrestype:container' \
  "$date" "$version" "$ACCOUNT" "$RESOURCE" "$CONTAINER")
hex=$(printf %s "$KEY" | base64 -d | od -An -tx1 | tr -d ' \n')
sig=$(printf %s "$to_sign" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hex" -binary | base64 -w0)
curl -sf -X PUT -H "x-ms-date: $date" -H "x-ms-version: $version" \
  -H "Authorization: SharedKey $ACCOUNT:$sig" -H "Content-Length: 0" \
  "$ENDPOINT/$CONTAINER?restype=container""#;
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .env("KEY", &key)
        .env("ACCOUNT", &account)
        .env("RESOURCE", &path)
        .env("CONTAINER", &container)
        .env("ENDPOINT", &endpoint)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "creating container {container}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let escaped = key
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("azblob://{container}/edit?endpoint={endpoint}&account={account}&account-key={escaped}")
}
