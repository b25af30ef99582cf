//! `ikkatsu overwrite` end to end on every remote backend, against the test servers that
//! `scripts/test-servers start` runs on 127.0.0.1 (their addresses and credentials come from
//! the `IKKATSU_TEST_*` variables: `eval "$(scripts/test-servers env)"`; `scripts/test` does
//! both). Each test works on its own prefix (and bucket or container): scan → backlog →
//! process → status, a second run that does nothing, a changed file processed again, and, on
//! SFTP and S3, a `kill -9` in the middle of the processing followed by a resume.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use ikkatsu_storage::{Storage, WalkOptions};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// Files matching `*.txt` in the generated tree (as many `.dat` files are left alone).
const FILES: usize = 24;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the storage test servers and load their settings with \
             `scripts/test-servers start && eval \"$(scripts/test-servers env)\"`"
        )
    })
}

/// A name no other test (or earlier run) uses: lower case, digits and `-`.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a command for set-up (bucket creation); fails the test with its output.
fn setup_command(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The storage URL of a fresh prefix on `backend`, its bucket or container created.
fn remote_url(backend: &str) -> String {
    let prefix = unique(&format!("overwrite-{backend}"));
    match backend {
        "sftp" => format!(
            "sftp://{}@{}:{}{}/{prefix}?key-file={}&known-hosts={}",
            var("IKKATSU_TEST_SFTP_USER"),
            var("IKKATSU_TEST_SFTP_HOST"),
            var("IKKATSU_TEST_SFTP_PORT"),
            var("IKKATSU_TEST_SFTP_ROOT").trim_end_matches('/'),
            var("IKKATSU_TEST_SFTP_KEY"),
            var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"),
        ),
        "s3" => {
            let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
            let bucket = unique("overwrite");
            // The S3 test server does not check signatures when creating a bucket.
            setup_command(Command::new("curl").args([
                "-sf",
                "-X",
                "PUT",
                &format!("{endpoint}/{bucket}"),
            ]));
            format!(
                "s3://{bucket}/{prefix}?endpoint={endpoint}&region={}&access-key-id={}&\
                 secret-access-key={}",
                var("IKKATSU_TEST_S3_REGION"),
                var("IKKATSU_TEST_S3_ACCESS_KEY"),
                var("IKKATSU_TEST_S3_SECRET_KEY"),
            )
        }
        "ftp" => format!(
            "ftp://{}:{}@{}:{}/{prefix}",
            var("IKKATSU_TEST_FTP_USER"),
            var("IKKATSU_TEST_FTP_PASSWORD"),
            var("IKKATSU_TEST_FTP_HOST"),
            var("IKKATSU_TEST_FTP_PORT"),
        ),
        "webdav" => {
            let base = var("IKKATSU_TEST_WEBDAV_URL");
            let host = base.trim_start_matches("http://");
            format!(
                "webdav+http://{}:{}@{host}/{prefix}",
                var("IKKATSU_TEST_WEBDAV_USER"),
                var("IKKATSU_TEST_WEBDAV_PASSWORD"),
            )
        }
        "gcs" => {
            let endpoint = var("IKKATSU_TEST_GCS_ENDPOINT");
            let bucket = unique("overwrite");
            setup_command(Command::new("curl").args([
                "-sf",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                &format!("{{\"name\":\"{bucket}\"}}"),
                &format!("{endpoint}/storage/v1/b"),
            ]));
            format!("gcs://{bucket}/{prefix}?endpoint={endpoint}&anonymous=true")
        }
        "azblob" => {
            let endpoint = var("IKKATSU_TEST_AZBLOB_ENDPOINT");
            let account = var("IKKATSU_TEST_AZBLOB_ACCOUNT");
            let key = var("IKKATSU_TEST_AZBLOB_KEY");
            let container = unique("overwrite");
            create_azure_container(&endpoint, &account, &key, &container);
            format!(
                "azblob://{container}/{prefix}?endpoint={endpoint}&account={account}&\
                 account-key={}",
                key.replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            )
        }
        other => panic!("no test server for `{other}`"),
    }
}

/// Creates `container` on Azurite with a Shared Key signed request (openssl computes the
/// signature, curl sends it).
fn create_azure_container(endpoint: &str, account: &str, key: &str, container: &str) {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    // Azurite is path-style: the resource is /account/account/container.
    let path = endpoint
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or(String::new(), |(_, p)| format!("/{p}"));
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{account}{path}/{container}\nrestype:container"
    );
    let script = r#"key=$(printf %s "$KEY" | base64 -d | od -An -tx1 | tr -d ' \n')
sig=$(printf %s "$TO_SIGN" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64 -w0)
curl -sf -X PUT -H "x-ms-date: $DATE" -H "x-ms-version: $VERSION" \
  -H "Authorization: SharedKey $ACCOUNT:$sig" -H "Content-Length: 0" "$URL""#;
    setup_command(
        Command::new("sh")
            .args(["-c", script])
            .env("KEY", key)
            .env("TO_SIGN", to_sign)
            .env("DATE", date)
            .env("VERSION", version)
            .env("ACCOUNT", account)
            .env("URL", format!("{endpoint}/{container}?restype=container")),
    );
}

/// Relative path of matching file `i`: nested, with spaces and non-ASCII names.
fn txt_path(i: usize) -> String {
    format!("d{}/e {}/ファイル {i}.txt", i % 3, i % 2)
}

fn dat_path(i: usize) -> String {
    format!("d{}/other {i}.dat", i % 3)
}

/// Writes the tree: `FILES` matching files and as many that must stay untouched.
async fn make_tree(storage: &Storage) {
    for i in 0..FILES {
        storage
            .write(&txt_path(i), format!("line {i}\n").into_bytes())
            .await
            .unwrap();
        storage
            .write(&dat_path(i), b"keep\n".to_vec())
            .await
            .unwrap();
    }
}

/// Every matching file was transformed exactly once, the others not at all, and nothing
/// else (no temporary copy) is left.
async fn assert_exactly_once(storage: &Storage) {
    for i in 0..FILES {
        let text = String::from_utf8(storage.read(&txt_path(i)).await.unwrap().to_vec()).unwrap();
        assert_eq!(
            text.matches("processed").count(),
            1,
            "{} transformed exactly once: {text:?}",
            txt_path(i)
        );
        let kept = storage.read(&dat_path(i)).await.unwrap();
        assert_eq!(&kept[..], b"keep\n", "{} untouched", dat_path(i));
    }
    let all: Vec<String> = storage
        .walk(WalkOptions::new().include_hidden(true))
        .unwrap()
        .map_ok(|f| f.path)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 2 * FILES, "only the tree is left: {all:?}");
}

/// Deletes the test's files.
async fn clean(storage: &Storage) {
    let all: Vec<String> = storage
        .walk(WalkOptions::new().include_hidden(true))
        .unwrap()
        .map_ok(|f| f.path)
        .try_collect()
        .await
        .unwrap();
    for path in all {
        storage.delete(&path).await.unwrap();
    }
}

fn ikkatsu(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", dir.join("ikkatsu.db").display()),
        )
        .env_remove("IKKATSU_STATUS_STORE")
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let out = ikkatsu(dir, args).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("panicked"), "{all}");
    assert_eq!(out.status.code(), Some(0), "{all}");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    (out, json)
}

fn overwrite_args<'a>(url: &'a str, exec: &'a str) -> Vec<&'a str> {
    vec![
        "overwrite",
        url,
        "--include",
        "*.txt",
        "--exec",
        exec,
        "--shell",
        "--concurrency",
        "4",
        "--json",
    ]
}

/// Scan → process → status on `backend`; a second run does nothing; a rewritten file is the
/// only one processed again.
fn overwrite_end_to_end(backend: &str) {
    let rt = runtime();
    let url = remote_url(backend);
    let storage = Storage::open(&url).unwrap();
    rt.block_on(make_tree(&storage));
    let dir = tempfile::tempdir().unwrap();
    let exec = "cat {in} > {out} && echo processed >> {out}";
    let args = overwrite_args(&url, exec);

    let (_, json) = run(dir.path(), &args);
    assert_eq!(json["scan"]["matched"], FILES, "{json}");
    assert_eq!(json["process"]["progress"]["done"], FILES, "{json}");
    rt.block_on(assert_exactly_once(&storage));

    let (_, json) = run(dir.path(), &args);
    assert_eq!(
        json["scan"]["queued"], 0,
        "a second run does nothing: {json}"
    );

    rt.block_on(async {
        // Some servers keep modification times in whole seconds: make the change visible.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        storage
            .write(&txt_path(5), b"rewritten\n".to_vec())
            .await
            .unwrap();
    });
    let (_, json) = run(dir.path(), &args);
    assert_eq!(json["scan"]["queued"], 1, "{json}");
    rt.block_on(async {
        let text = storage.read(&txt_path(5)).await.unwrap();
        assert_eq!(&text[..], b"rewritten\nprocessed\n");
        assert_exactly_once(&storage).await;
        clean(&storage).await;
    });
}

/// `kill -9` while files are being processed on `backend`, at several points, then a resume:
/// every matching file is transformed exactly once.
fn kill_9_then_resume(backend: &str) {
    let rt = runtime();
    for kill_after in [1usize, FILES / 2] {
        let url = remote_url(backend);
        let storage = Storage::open(&url).unwrap();
        rt.block_on(make_tree(&storage));
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("calls");
        let exec = format!(
            "cat {{in}} > {{out}} && sleep 0.05 && echo processed >> {{out}} && echo . >> '{}'",
            marker.display()
        );
        let args = overwrite_args(&url, &exec);
        let reached = common::kill_9_when(
            &mut ikkatsu(dir.path(), &args),
            Duration::from_secs(120),
            Duration::from_millis(5),
            || {
                let calls = std::fs::read_to_string(&marker)
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                calls >= kill_after
            },
        );
        assert!(reached, "kill point {kill_after}: the run ended first");

        let (_, json) = run(dir.path(), &args);
        assert_eq!(json["process"]["progress"]["failed"], 0, "{json}");
        rt.block_on(assert_exactly_once(&storage));
        common::assert_nothing_in_flight(dir.path());
        rt.block_on(clean(&storage));
    }
}

#[test]
fn overwrite_on_sftp() {
    overwrite_end_to_end("sftp");
}

#[test]
fn overwrite_on_s3() {
    overwrite_end_to_end("s3");
}

#[test]
fn overwrite_on_ftp() {
    overwrite_end_to_end("ftp");
}

#[test]
fn overwrite_on_webdav() {
    overwrite_end_to_end("webdav");
}

#[test]
fn overwrite_on_gcs() {
    overwrite_end_to_end("gcs");
}

#[test]
fn overwrite_on_azblob() {
    overwrite_end_to_end("azblob");
}

#[test]
fn kill_9_then_resume_on_sftp() {
    kill_9_then_resume("sftp");
}

#[test]
fn kill_9_then_resume_on_s3() {
    kill_9_then_resume("s3");
}
