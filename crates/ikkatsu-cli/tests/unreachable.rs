//! An unreachable remote server is an error, never an empty folder: `ikkatsu overwrite` on a
//! closed port or an unknown host of every directory-listing backend (FTP, FTPS, SFTP,
//! WebDAV) and of S3 exits 1 with the URL (password masked) and the cause, and a job whose
//! CSV reader reads a glob on such a storage ends FAILED. No test server is needed for those:
//! nothing listens on the port. A server that refuses the credentials (the FTP and WebDAV
//! test servers) fails the run the same way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// The password of the URLs: it must not appear in any output.
const SECRET: &str = "s3cr3t-pw";

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", dir.join("ikkatsu.db").display()),
        )
        .env("IKKATSU_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("panicked"), "ikkatsu panicked:\n{all}");
    out
}

/// The unreachable storages: the URL given and how messages show it.
fn unreachable_storages(dir: &Path) -> Vec<(String, String)> {
    let port = closed_port();
    let key = dir.join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let ssh = format!(
        "key-file={}&known-hosts={}&retries=1",
        key.display(),
        known_hosts.display()
    );
    vec![
        (
            format!("ftp://user:{SECRET}@127.0.0.1:{port}/x?retries=1"),
            format!("ftp://user:***@127.0.0.1:{port}/x"),
        ),
        (
            format!("ftps://user:{SECRET}@127.0.0.1:{port}/x?retries=1"),
            format!("ftps://user:***@127.0.0.1:{port}/x"),
        ),
        (
            format!("ftp://user:{SECRET}@no-such-host.invalid/x?retries=1"),
            "ftp://user:***@no-such-host.invalid/x".to_string(),
        ),
        (
            format!("webdav+http://user:{SECRET}@127.0.0.1:{port}/x?retries=1"),
            format!("webdav+http://user:***@127.0.0.1:{port}/x"),
        ),
        (
            format!("sftp://user@127.0.0.1:{port}/x?{ssh}"),
            format!("sftp://user@127.0.0.1:{port}/x"),
        ),
        (
            format!(
                "s3://bucket/x?endpoint=http://127.0.0.1:{port}&region=us-east-1&\
                 access-key-id=id&secret-access-key={SECRET}&retries=1"
            ),
            "s3://bucket/x".to_string(),
        ),
    ]
}

#[test]
fn overwrite_on_an_unreachable_server_exits_1_with_the_masked_url_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (url, shown)) in unreachable_storages(dir.path()).into_iter().enumerate() {
        let dir = dir.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        let state = dir.join("state");
        let out = run(
            &dir,
            &[
                "overwrite",
                &url,
                "--include",
                "*.txt",
                "--exec",
                "cp {in} {out}",
                "--state-dir",
                &state.display().to_string(),
                "--status-store",
                &dir.join("status.redb").display().to_string(),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}:\n{stdout}\n{stderr}");
        assert!(!stdout.contains("files match"), "{url}: {stdout}");
        assert!(stderr.contains(&shown), "{url}: the masked URL:\n{stderr}");
        assert!(
            stderr.contains("cannot reach the server"),
            "{url}: the cause:\n{stderr}"
        );
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "{url}: the password in the output:\n{stdout}\n{stderr}"
        );
    }
}

fn job(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("job.yaml");
    let output = dir.join("out.csv");
    std::fs::write(
        &path,
        format!(
            r#"id: unreachable
steps:
  - name: copy
    chunk:
      chunk-size: 10
      reader:
        type: csv
        properties:
          storage: "{url}"
          path: "in/**/*.csv"
      writer:
        type: csv
        properties:
          path: {output}
"#,
            output = output.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn job_reading_a_glob_on_an_unreachable_storage_fails() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (url, shown)) in unreachable_storages(dir.path()).into_iter().enumerate() {
        let dir = dir.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        let job = job(&dir, &url);
        let out = run(&dir, &["run", &job.display().to_string()]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{url}:\n{all}");
        assert!(
            !all.contains("nothing to read"),
            "{url}: read as empty:\n{all}"
        );
        assert!(all.contains("FAILED"), "{url}:\n{all}");
        assert!(all.contains(&shown), "{url}: the masked URL:\n{all}");
        assert!(
            all.contains("cannot reach the server"),
            "{url}: the cause:\n{all}"
        );
        assert!(
            !all.contains(SECRET),
            "{url}: the password in the output:\n{all}"
        );
    }
}

fn server_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the storage test servers and load their settings with \
             `scripts/test-servers start && eval \"$(scripts/test-servers env)\"`"
        )
    })
}

/// A server that answers but refuses the credentials (the FTP and WebDAV test servers with a
/// wrong password) fails the run as an unreachable one does: exit code 1 (a run-time
/// failure, not a usage error), the masked URL and the cause, never "files match".
#[test]
fn overwrite_refused_by_the_server_exits_1_with_the_masked_url_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let webdav = server_var("IKKATSU_TEST_WEBDAV_URL");
    let webdav_host = webdav.trim_start_matches("http://").trim_end_matches('/');
    let ftp_host = format!(
        "{}:{}",
        server_var("IKKATSU_TEST_FTP_HOST"),
        server_var("IKKATSU_TEST_FTP_PORT")
    );
    let ftp_user = server_var("IKKATSU_TEST_FTP_USER");
    let webdav_user = server_var("IKKATSU_TEST_WEBDAV_USER");
    let storages = [
        (
            format!("ftp://{ftp_user}:{SECRET}@{ftp_host}/x?retries=1"),
            format!("ftp://{ftp_user}:***@{ftp_host}/x"),
        ),
        (
            format!("webdav+http://{webdav_user}:{SECRET}@{webdav_host}/x?retries=1"),
            format!("webdav+http://{webdav_user}:***@{webdav_host}/x"),
        ),
    ];
    for (i, (url, shown)) in storages.into_iter().enumerate() {
        let dir = dir.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        let out = run(
            &dir,
            &[
                "overwrite",
                &url,
                "--include",
                "*.txt",
                "--exec",
                "cp {in} {out}",
                "--state-dir",
                &dir.join("state").display().to_string(),
                "--status-store",
                &dir.join("status.redb").display().to_string(),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}:\n{stdout}\n{stderr}");
        assert!(!stdout.contains("files match"), "{url}: {stdout}");
        assert!(stderr.contains(&shown), "{url}: the masked URL:\n{stderr}");
        assert!(
            stderr.contains("credentials") || stderr.contains("permission"),
            "{url}: the cause:\n{stderr}"
        );
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "{url}: the password in the output:\n{stdout}\n{stderr}"
        );
    }
}
