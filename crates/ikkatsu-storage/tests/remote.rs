//! The storage conformance suite and the error-kind tests against the test servers.
//!
//! Start them first: `scripts/test-servers start`, then `eval "$(scripts/test-servers env)"`.
//! A missing `IKKATSU_TEST_*` variable fails the test, saying so: these tests never pass
//! without a server.
//!
//! Every test works on its own prefix (and its own bucket or container on S3, GCS and
//! Azure), so they run in parallel. FTPS and WebDAV over HTTPS differ from FTP and WebDAV
//! only by TLS: they run a subset of the suite (plus the TLS tests), the full suite runs
//! over the plain protocols. The private server of the restart test is a moto started by the
//! test on a free port.
#![cfg(any(
    feature = "ftp",
    feature = "sftp",
    feature = "s3",
    feature = "webdav",
    feature = "gcs",
    feature = "azblob"
))]

use std::sync::atomic::{AtomicU64, Ordering};

use ikkatsu_core::{Error, ErrorKind};
use ikkatsu_storage::{Storage, StorageConnection};

/// The value of a variable `scripts/test-servers env` exports; panics saying what to run.
fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: these tests need the storage test servers. Run \
             `scripts/test-servers start` and `eval \"$(scripts/test-servers env)\"`, then the \
             tests again"
        ),
    }
}

/// A name no other test uses, valid as a bucket or container name everywhere: lower case
/// letters, digits and single `-`, at most 63 characters.
fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut clean = String::new();
    for c in tag.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && (clean.is_empty() || clean.ends_with('-'))) && clean.len() < 20 {
            clean.push(c);
        }
    }
    let clean = clean.trim_end_matches('-');
    format!(
        "ikk-{clean}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Opens `connection`, failing the test with the error's report.
fn open(connection: &StorageConnection) -> Storage {
    connection
        .open()
        .unwrap_or_else(|e| panic!("open {:?}: {}", connection, e.report()))
}

/// A storage under test and how to clean up after it.
#[allow(dead_code)] // Not used with the `azblob` feature alone.
struct Fixture {
    storage: Storage,
    /// Delete everything under the storage root afterwards.
    clean: bool,
}

#[allow(dead_code)] // Not used with the `azblob` feature alone.
impl Fixture {
    async fn cleanup(self) {
        if self.clean {
            // Best effort: a failure here must not hide the test's own result.
            let _ = self
                .storage
                .operator()
                .delete_with("/")
                .recursive(true)
                .await;
        }
    }
}

/// One test per behaviour of the conformance suite, each on `fixture(name)`.
macro_rules! conformance {
    ($($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = fixture(stringify!($name)).await;
                ikkatsu_testkit::storage::$name(fixture.storage.clone()).await;
                fixture.cleanup().await;
            }
        )*
    };
}

/// A refusal: a permission error, not temporary, that the storage did not retry.
#[allow(dead_code)] // Not used with some features alone.
fn assert_refused_not_retried(storage: &Storage, err: &Error) {
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{}", err.report());
    assert!(!err.is_temporary(), "{}", err.report());
    assert_eq!(
        storage.retry_count(),
        0,
        "the refusal was retried: {}",
        err.report()
    );
}

/// Runs the test `name` (as the test harness names it: `module::test`) again in a child
/// process with `envs` set, and checks that it ran and passed. In that child, returns false
/// so the test runs its body. For settings that only the environment of a process can give
/// (`SSL_CERT_FILE` for FTPS's system store), without changing the environment of a running
/// process.
#[allow(dead_code)]
fn run_in_child(name: &str, envs: &[(&str, &str)]) -> bool {
    if std::env::var_os("IKKATSU_TEST_CHILD").is_some() {
        return false;
    }
    let exe = std::env::current_exe().expect("test binary");
    let output = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("IKKATSU_TEST_CHILD", "1")
        .envs(envs.iter().copied())
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} failed in its child process:\n{stdout}\n{stderr}"
    );
    true
}

/// A tokio runtime for tests that start as plain `#[test]`s.
#[allow(dead_code)]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[cfg(feature = "ftp")]
mod ftp {
    use super::*;

    pub(crate) fn connection(scheme: &str, prefix: &str, password: &str) -> StorageConnection {
        StorageConnection::new(format!(
            "{scheme}://{}@{}:{}/{prefix}",
            var("IKKATSU_TEST_FTP_USER"),
            var("IKKATSU_TEST_FTP_HOST"),
            var("IKKATSU_TEST_FTP_PORT"),
        ))
        .with_option("password", password)
    }

    async fn fixture(name: &str) -> Fixture {
        let storage = open(&connection(
            "ftp",
            &unique(name),
            &var("IKKATSU_TEST_FTP_PASSWORD"),
        ));
        Fixture {
            storage,
            clean: true,
        }
    }

    ikkatsu_testkit::storage_behaviours!(conformance);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn capabilities() {
        let storage = fixture("caps").await.storage;
        let caps = storage.capabilities();
        assert_eq!(caps.scheme, "ftp");
        assert_eq!(
            caps.conditional_write,
            ikkatsu_storage::ConditionalWrite::StatCompare
        );
        assert!(caps.modified);
    }

    /// Connections made at the same moment on a missing root all create it (and its
    /// parents) or find it made.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_first_connections_on_a_missing_root() {
        let prefix = format!("{}/a/b", unique("race"));
        let storage = open(&connection(
            "ftp",
            &prefix,
            &var("IKKATSU_TEST_FTP_PASSWORD"),
        ));
        let writes = (0..8).map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move { storage.write(&format!("f{i}"), &b"x"[..]).await })
        });
        for write in futures::future::join_all(writes).await {
            write.expect("task").expect("write");
        }
        for i in 0..8 {
            assert_eq!(
                storage.read(&format!("f{i}")).await.expect("read").as_ref(),
                b"x"
            );
        }
        Fixture {
            storage,
            clean: true,
        }
        .cleanup()
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_password_is_a_permission_error_not_retried() {
        let storage = open(&connection("ftp", &unique("wrong-pw"), "not-the-password"));
        let err = storage.stat("x").await.expect_err("wrong password");
        assert_refused_not_retried(&storage, &err);
        assert!(
            err.message().contains("authentication failed"),
            "{}",
            err.report()
        );
        assert!(
            !err.report().contains("not-the-password"),
            "{}",
            err.report()
        );
    }
}

/// The TLS tests of the backends whose plain protocol runs the whole suite (FTPS, WebDAV over
/// HTTPS): `connection(prefix)` is the test server over TLS.
#[cfg(any(feature = "ftp", feature = "webdav"))]
mod tls {
    use super::*;

    /// A subset of the suite, trusting the test CA with `ca-file`.
    pub(crate) async fn suite_subset_with_ca_file(
        tag: &str,
        connection: impl Fn(&str) -> StorageConnection,
    ) {
        use ikkatsu_testkit::storage as suite;
        for run in 0..7 {
            let storage = open(
                &connection(&unique(&format!("{tag}-{run}")))
                    .with_option("ca-file", var("IKKATSU_TEST_CA")),
            );
            match run {
                0 => suite::write_stat_read_round_trip(storage.clone()).await,
                1 => suite::overwrite_and_delete(storage.clone()).await,
                2 => suite::special_names(storage.clone()).await,
                3 => suite::streaming_upload_and_download(storage.clone()).await,
                4 => suite::walk_include_exclude(storage.clone()).await,
                5 => suite::conditional_write_accepted_when_unchanged(storage.clone()).await,
                _ => suite::conditional_write_refused_after_change(storage.clone()).await,
            }
            Fixture {
                storage,
                clean: true,
            }
            .cleanup()
            .await;
        }
    }

    /// A certificate signed by a CA other than the one of `ca-file` is refused, clearly and
    /// without retries.
    pub(crate) async fn untrusted_ca_is_refused_without_retries(connection: StorageConnection) {
        let storage = open(&connection.with_option("ca-file", var("IKKATSU_TEST_OTHER_CA")));
        let err = storage.stat("x").await.expect_err("untrusted certificate");
        assert_refused_not_retried(&storage, &err);
        assert!(
            err.message().contains("TLS certificate was refused"),
            "{}",
            err.report()
        );
        assert!(err.message().contains("ca-file"), "{}", err.report());
    }

    /// `storage` works: a write, a stat and a read.
    pub(crate) async fn works(storage: Storage) {
        storage.write("x", &b"x"[..]).await.expect("write");
        assert_eq!(storage.stat("x").await.expect("stat").size, 1);
        assert_eq!(storage.read("x").await.expect("read").as_ref(), b"x");
        Fixture {
            storage,
            clean: true,
        }
        .cleanup()
        .await;
    }
}

#[cfg(feature = "ftp")]
mod ftps {
    use super::*;

    fn connection(prefix: &str) -> StorageConnection {
        super::ftp::connection("ftps", prefix, &var("IKKATSU_TEST_FTP_PASSWORD"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn suite_subset_over_tls_with_ca_file() {
        tls::suite_subset_with_ca_file("ftps", connection).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn certificate_of_an_untrusted_ca_is_refused_without_retries() {
        tls::untrusted_ca_is_refused_without_retries(connection(&unique("ftps-bad-ca"))).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn insecure_accepts_the_certificate() {
        let storage = open(&connection(&unique("ftps-insecure")).with_option("insecure", "true"));
        tls::works(storage).await;
    }

    /// Without `ca-file`, FTPS trusts the system store, which `SSL_CERT_FILE` replaces: the
    /// test CA, in a child process.
    #[test]
    fn system_store_is_trusted_without_ca_file() {
        let module = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, m)| m);
        if run_in_child(
            &format!("{module}::system_store_is_trusted_without_ca_file"),
            &[("SSL_CERT_FILE", &var("IKKATSU_TEST_CA"))],
        ) {
            return;
        }
        runtime().block_on(async { tls::works(open(&connection(&unique("ftps-system")))).await });
    }
}

#[cfg(feature = "sftp")]
mod sftp {
    use super::*;

    fn connection(prefix: &str) -> StorageConnection {
        StorageConnection::new(format!(
            "sftp://{}@{}:{}{}/{prefix}",
            var("IKKATSU_TEST_SFTP_USER"),
            var("IKKATSU_TEST_SFTP_HOST"),
            var("IKKATSU_TEST_SFTP_PORT"),
            var("IKKATSU_TEST_SFTP_ROOT"),
        ))
        .with_option("key-file", var("IKKATSU_TEST_SFTP_KEY"))
        .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"))
    }

    async fn fixture(name: &str) -> Fixture {
        Fixture {
            storage: open(&connection(&unique(name))),
            clean: true,
        }
    }

    ikkatsu_testkit::storage_behaviours!(conformance);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn capabilities() {
        let caps = fixture("caps").await.storage.capabilities();
        assert_eq!(caps.scheme, "sftp");
        assert_eq!(
            caps.conditional_write,
            ikkatsu_storage::ConditionalWrite::StatCompareRename
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_with_passphrase() {
        let storage = open(
            &StorageConnection::new(connection(&unique("pass")).url)
                .with_option("key-file", var("IKKATSU_TEST_SFTP_KEY_PASS"))
                .with_option("key-passphrase", var("IKKATSU_TEST_SFTP_KEY_PASSPHRASE"))
                .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS")),
        );
        ikkatsu_testkit::storage::write_stat_read_round_trip(storage.clone()).await;
        Fixture {
            storage,
            clean: true,
        }
        .cleanup()
        .await;
    }

    /// An RSA key in the PEM format (`BEGIN RSA PRIVATE KEY`) signs with the best hash the
    /// server takes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rsa_key_in_pem_format() {
        let storage = open(
            &StorageConnection::new(connection(&unique("rsa")).url)
                .with_option("key-file", var("IKKATSU_TEST_SFTP_KEY_RSA"))
                .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS")),
        );
        ikkatsu_testkit::storage::write_stat_read_round_trip(storage.clone()).await;
        Fixture {
            storage,
            clean: true,
        }
        .cleanup()
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_passphrase_is_a_permission_error() {
        let err = StorageConnection::new(connection(&unique("bad-pass")).url)
            .with_option("key-file", var("IKKATSU_TEST_SFTP_KEY_PASS"))
            .with_option("key-passphrase", "not-the-passphrase")
            .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"))
            .open()
            .expect_err("wrong passphrase");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{}", err.report());
        assert!(!err.is_temporary());
        assert!(err.message().contains("key-passphrase"), "{}", err.report());
        assert!(
            !err.report().contains("not-the-passphrase"),
            "{}",
            err.report()
        );
    }

    /// The test server on `port_var`'s port, logged in with `password` (no key).
    fn password_connection(port_var: &str, prefix: &str, password: &str) -> StorageConnection {
        StorageConnection::new(format!(
            "sftp://{}@{}:{}{}/{prefix}",
            var("IKKATSU_TEST_SFTP_USER"),
            var("IKKATSU_TEST_SFTP_HOST"),
            var(port_var),
            var("IKKATSU_TEST_SFTP_ROOT"),
        ))
        .with_option("password", password)
        .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"))
    }

    /// A server that takes passwords by the `password` method only, then one that takes
    /// them by `keyboard-interactive` only (PAM's "Password:" prompt).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_and_keyboard_interactive_login() {
        for port in [
            "IKKATSU_TEST_SFTP_PASSWORD_PORT",
            "IKKATSU_TEST_SFTP_INTERACTIVE_PORT",
        ] {
            let password = var("IKKATSU_TEST_SFTP_PASSWORD");
            let storage = open(&password_connection(port, &unique("pw"), &password));
            ikkatsu_testkit::storage::write_stat_read_round_trip(storage.clone()).await;
            Fixture {
                storage,
                clean: true,
            }
            .cleanup()
            .await;
        }
    }

    /// The password in the URL works as the option does, and is masked wherever the URL
    /// is shown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_in_the_url() {
        let password = var("IKKATSU_TEST_SFTP_PASSWORD");
        let connection = StorageConnection::new(format!(
            "sftp://{}:{password}@{}:{}{}/{}",
            var("IKKATSU_TEST_SFTP_USER"),
            var("IKKATSU_TEST_SFTP_HOST"),
            var("IKKATSU_TEST_SFTP_PASSWORD_PORT"),
            var("IKKATSU_TEST_SFTP_ROOT"),
            unique("pw-url"),
        ))
        .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"));
        let storage = open(&connection);
        // (The test password is also part of the test servers' directory, which the
        // known-hosts path names: look for it where the URL would hold it.)
        let shown = format!("{connection:?}");
        assert!(!shown.contains(&format!(":{password}@")), "{shown}");
        assert!(shown.contains(":***@"), "{shown}");
        assert!(storage.url().contains(":***@"), "{}", storage.url());
        ikkatsu_testkit::storage::write_stat_read_round_trip(storage.clone()).await;
        Fixture {
            storage,
            clean: true,
        }
        .cleanup()
        .await;
    }

    /// A wrong password, by either method, and a password where only keys are taken: a
    /// permission error, not retried, that names the user and host but not the password.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_password_is_a_permission_error_not_retried() {
        let right = var("IKKATSU_TEST_SFTP_PASSWORD");
        for (port, password) in [
            ("IKKATSU_TEST_SFTP_PASSWORD_PORT", "not-the-password"),
            ("IKKATSU_TEST_SFTP_INTERACTIVE_PORT", "not-the-password"),
            ("IKKATSU_TEST_SFTP_PORT", right.as_str()),
        ] {
            let storage = open(&password_connection(port, &unique("bad-pw"), password));
            let err = storage.stat("x").await.expect_err("wrong password");
            assert_refused_not_retried(&storage, &err);
            let report = err.report();
            assert!(report.contains("refused the password"), "{port}: {report}");
            assert!(
                report.contains(&format!("{}@", var("IKKATSU_TEST_SFTP_USER"))),
                "{report}"
            );
            // The right password is also part of the test servers' directory (in the
            // known-hosts path): look for it where a URL or an option would show it.
            assert!(!report.contains(&format!(":{password}@")), "{report}");
            assert!(
                !report.contains(&format!("password={password}")),
                "{report}"
            );
            assert!(!report.contains("not-the-password"), "{report}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_key_is_a_permission_error_not_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("stranger");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
        let storage = open(
            &StorageConnection::new(connection(&unique("stranger")).url)
                .with_option("key-file", key.display().to_string())
                .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS")),
        );
        let err = storage.stat("x").await.expect_err("unknown key");
        assert_refused_not_retried(&storage, &err);
        assert!(
            err.message().contains("authentication failed"),
            "{}",
            err.report()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_host_key_is_refused_with_a_clear_message() {
        let wrong = var("IKKATSU_TEST_SFTP_KNOWN_HOSTS_WRONG");
        let storage = open(
            &StorageConnection::new(connection(&unique("wrong-kh")).url)
                .with_option("key-file", var("IKKATSU_TEST_SFTP_KEY"))
                .with_option("known-hosts", &wrong),
        );
        let err = storage.stat("x").await.expect_err("wrong host key");
        assert_refused_not_retried(&storage, &err);
        assert!(
            err.message().contains("SSH host key was refused"),
            "{}",
            err.report()
        );
        assert!(err.report().contains(&wrong), "{}", err.report());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_host_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("known_hosts");
        std::fs::write(&empty, "").expect("write");
        let storage = open(
            &StorageConnection::new(connection(&unique("empty-kh")).url)
                .with_option("key-file", var("IKKATSU_TEST_SFTP_KEY"))
                .with_option("known-hosts", empty.display().to_string()),
        );
        let err = storage.stat("x").await.expect_err("unknown host");
        assert_refused_not_retried(&storage, &err);
        assert!(
            err.message().contains("SSH host key was refused"),
            "{}",
            err.report()
        );
        assert_eq!(
            std::fs::read_to_string(&empty).expect("read"),
            "",
            "strict checking adds nothing to known_hosts"
        );
    }

    /// The connection without `key-file`: the keys come from the agent or the home directory.
    fn without_key_file(prefix: &str) -> StorageConnection {
        StorageConnection::new(format!(
            "sftp://{}@{}:{}{}/{prefix}",
            var("IKKATSU_TEST_SFTP_USER"),
            var("IKKATSU_TEST_SFTP_HOST"),
            var("IKKATSU_TEST_SFTP_PORT"),
            var("IKKATSU_TEST_SFTP_ROOT"),
        ))
        .with_option("known-hosts", var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"))
    }

    /// Writes, reads back and cleans up, in a child process's own runtime.
    fn works_without_key_file(tag: &str) {
        runtime().block_on(async {
            let storage = open(&without_key_file(&unique(tag)));
            storage.write("x", &b"1"[..]).await.expect("write");
            assert_eq!(storage.read("x").await.expect("read").as_ref(), b"1");
            Fixture {
                storage,
                clean: true,
            }
            .cleanup()
            .await;
        });
    }

    fn test_name(test: &str) -> String {
        let module = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, m)| m);
        format!("{module}::{test}")
    }

    /// Without `key-file`, the keys of the agent at `SSH_AUTH_SOCK` are offered (an agent
    /// started for the test, a home directory without keys, in a child process).
    #[test]
    fn agent_keys_are_offered_without_key_file() {
        if std::env::var_os("IKKATSU_TEST_CHILD").is_none() {
            let dir = tempfile::tempdir().expect("tempdir");
            let socket = dir.path().join("agent.sock");
            let home = dir.path().join("home");
            std::fs::create_dir(&home).expect("home");
            let mut agent = std::process::Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&socket)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("ssh-agent");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !socket.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let added = std::process::Command::new("ssh-add")
                .arg(var("IKKATSU_TEST_SFTP_KEY"))
                .env("SSH_AUTH_SOCK", &socket)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("ssh-add");
            let ran = added.status.success()
                && run_in_child(
                    &test_name("agent_keys_are_offered_without_key_file"),
                    &[
                        ("SSH_AUTH_SOCK", &socket.display().to_string()),
                        ("HOME", &home.display().to_string()),
                    ],
                );
            let _ = agent.kill();
            let _ = agent.wait();
            assert!(
                added.status.success(),
                "ssh-add: {}",
                String::from_utf8_lossy(&added.stderr)
            );
            assert!(ran);
            return;
        }
        works_without_key_file("agent");
    }

    /// Without `key-file` and without an agent, `~/.ssh/id_ed25519` is offered (a home
    /// directory made for the test, in a child process).
    #[test]
    fn default_key_is_offered_without_key_file() {
        if std::env::var_os("IKKATSU_TEST_CHILD").is_none() {
            let dir = tempfile::tempdir().expect("tempdir");
            let ssh = dir.path().join(".ssh");
            std::fs::create_dir(&ssh).expect(".ssh");
            std::fs::copy(var("IKKATSU_TEST_SFTP_KEY"), ssh.join("id_ed25519")).expect("copy");
            assert!(run_in_child(
                &test_name("default_key_is_offered_without_key_file"),
                &[
                    (
                        "SSH_AUTH_SOCK",
                        &dir.path().join("no-agent").display().to_string()
                    ),
                    ("HOME", &dir.path().display().to_string()),
                ],
            ));
            return;
        }
        works_without_key_file("default-key");
    }

    /// The SSH server goes away in the middle of a run (a TCP front to sshd is stopped, which
    /// refuses new connections and cuts the open ones): operations fail with temporary
    /// errors, and an operation retried by the storage succeeds once the server is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_stopped_mid_run_gives_temporary_errors_and_retries_succeed_once_it_is_back() {
        let sshd: u16 = var("IKKATSU_TEST_SFTP_PORT").parse().expect("port");
        let port = free_port();
        let mut server = front(port, sshd);
        // The server's key, recorded for the front's port.
        let dir = tempfile::tempdir().expect("tempdir");
        let known_hosts = dir.path().join("known_hosts");
        let recorded = std::fs::read_to_string(var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"))
            .expect("known_hosts")
            .replace(&format!("]:{sshd} "), &format!("]:{port} "));
        std::fs::write(&known_hosts, recorded).expect("write known_hosts");
        let prefix = unique("restart");
        let connection = |retries: &str| {
            StorageConnection::new(format!(
                "sftp://{}@{}:{port}{}/{prefix}",
                var("IKKATSU_TEST_SFTP_USER"),
                var("IKKATSU_TEST_SFTP_HOST"),
                var("IKKATSU_TEST_SFTP_ROOT"),
            ))
            .with_option("key-file", var("IKKATSU_TEST_SFTP_KEY"))
            .with_option("known-hosts", known_hosts.display().to_string())
            .with_option("retries", retries)
        };
        let once = open(&connection("0"));
        let patient = open(&connection("8"));
        once.write("before", &b"1"[..])
            .await
            .expect("write while up");
        patient.stat("before").await.expect("stat while up");

        // The server stops: the pooled connection breaks, a new one is refused.
        server.abort();
        let _ = (&mut server).await;
        for _ in 0..2 {
            let err = once.stat("before").await.expect_err("server is down");
            assert!(err.is_temporary(), "{}", err.report());
            assert_eq!(err.kind(), ErrorKind::Io, "{}", err.report());
        }
        let err = once.stat("before").await.expect_err("server is down");
        assert!(err.message().contains("cannot reach"), "{}", err.report());
        assert_eq!(once.retry_count(), 0);

        // A write starts while the server is down; the storage retries it.
        let write = tokio::spawn({
            let patient = patient.clone();
            async move { patient.write("after", &b"2"[..]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(!write.is_finished(), "the write waits for the server");

        // The server is back.
        let _server = front(port, sshd);
        let info = write
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("the retried write failed: {}", e.report()));
        assert_eq!(info.size, 1);
        assert!(patient.retry_count() >= 1, "the write was retried");
        assert_eq!(patient.read("after").await.expect("read").as_ref(), b"2");
        assert_eq!(once.read("before").await.expect("read").as_ref(), b"1");
        Fixture {
            storage: once,
            clean: true,
        }
        .cleanup()
        .await;
    }
}

#[cfg(feature = "webdav")]
mod webdav {
    use super::*;

    pub(crate) fn connection(base: &str, prefix: &str, password: &str) -> StorageConnection {
        StorageConnection::new(format!("webdav+{base}/{prefix}"))
            .with_option("user", var("IKKATSU_TEST_WEBDAV_USER"))
            .with_option("password", password)
    }

    async fn fixture(name: &str) -> Fixture {
        Fixture {
            storage: open(&connection(
                &var("IKKATSU_TEST_WEBDAV_URL"),
                &unique(name),
                &var("IKKATSU_TEST_WEBDAV_PASSWORD"),
            )),
            clean: true,
        }
    }

    /// The suite, but `walk_hidden`: nginx's dav_ext module leaves names that start with `.`
    /// out of its PROPFIND listings (a limit of the test server, not of ikkatsu: hidden files
    /// are written, read and deleted like others), so listing them cannot be checked here.
    macro_rules! webdav_conformance {
        ($($name:ident),*) => { $( webdav_one!($name); )* };
    }
    macro_rules! webdav_one {
        (walk_hidden) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "nginx dav_ext omits names starting with `.` from PROPFIND listings"]
            async fn walk_hidden() {
                let fixture = fixture("walk_hidden").await;
                ikkatsu_testkit::storage::walk_hidden(fixture.storage.clone()).await;
                fixture.cleanup().await;
            }
        };
        ($name:ident) => {
            conformance!($name);
        };
    }
    ikkatsu_testkit::storage_behaviours!(webdav_conformance);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn capabilities() {
        let caps = fixture("caps").await.storage.capabilities();
        assert_eq!(caps.scheme, "webdav");
        assert_eq!(
            caps.conditional_write,
            ikkatsu_storage::ConditionalWrite::StatCompareRename
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_password_is_a_permission_error_not_retried() {
        let storage = open(&connection(
            &var("IKKATSU_TEST_WEBDAV_URL"),
            &unique("wrong-pw"),
            "not-the-password",
        ));
        let err = storage
            .write("x", &b"x"[..])
            .await
            .expect_err("wrong password");
        assert_refused_not_retried(&storage, &err);
        assert!(
            err.message().contains("authentication failed"),
            "{}",
            err.report()
        );
        assert!(
            !err.report().contains("not-the-password"),
            "{}",
            err.report()
        );
    }
}

#[cfg(feature = "webdav")]
mod webdavs {
    use super::*;

    fn connection(prefix: &str) -> StorageConnection {
        super::webdav::connection(
            &var("IKKATSU_TEST_WEBDAVS_URL"),
            prefix,
            &var("IKKATSU_TEST_WEBDAV_PASSWORD"),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn suite_subset_over_tls_with_ca_file() {
        tls::suite_subset_with_ca_file("dav-tls", connection).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn certificate_of_an_untrusted_ca_is_refused_without_retries() {
        tls::untrusted_ca_is_refused_without_retries(connection(&unique("dav-bad-ca"))).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn insecure_accepts_the_certificate() {
        let storage = open(&connection(&unique("dav-insecure")).with_option("insecure", "true"));
        tls::works(storage).await;
    }
}

/// Creates buckets and containers on the emulators (OpenDAL does not).
#[cfg(any(feature = "s3", feature = "gcs", feature = "azblob"))]
mod emulator {
    use super::*;

    pub(crate) fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    async fn expect_success(resp: reqwest::Response, what: &str) {
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            panic!("{what}: HTTP {status}: {body}");
        }
    }

    /// Creates `bucket` on the S3 server at `endpoint` (moto does not check signatures).
    #[allow(dead_code)]
    pub(crate) async fn create_s3_bucket(endpoint: &str, bucket: &str) {
        let resp = client()
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket} at {endpoint}: {e}"));
        expect_success(resp, &format!("create bucket {bucket}")).await;
    }

    /// Creates `bucket` on fake-gcs-server.
    #[allow(dead_code)]
    pub(crate) async fn create_gcs_bucket(endpoint: &str, bucket: &str) {
        let resp = client()
            .post(format!("{endpoint}/storage/v1/b?project=ikkatsu-test"))
            .header("content-type", "application/json")
            .body(format!("{{\"name\":\"{bucket}\"}}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket} at {endpoint}: {e}"));
        expect_success(resp, &format!("create bucket {bucket}")).await;
    }

    /// Creates (`PUT`) or deletes (`DELETE`) `container` on Azurite, signed with the account
    /// key (Shared Key).
    #[allow(dead_code)]
    pub(crate) async fn azure_container(method: &str, container: &str) {
        use base64::Engine as _;
        use hmac::{Hmac, Mac};
        let endpoint = var("IKKATSU_TEST_AZBLOB_ENDPOINT");
        let account = var("IKKATSU_TEST_AZBLOB_ACCOUNT");
        let key = base64::engine::general_purpose::STANDARD
            .decode(var("IKKATSU_TEST_AZBLOB_KEY"))
            .expect("account key is base64");
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
            "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}{path}/{container}\nrestype:container"
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = client()
            .request(method, format!("{endpoint}/{container}?restype=container"))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("authorization", format!("SharedKey {account}:{signature}"))
            .header("content-length", "0")
            .send()
            .await
            .unwrap_or_else(|e| panic!("container {container} at {endpoint}: {e}"));
        expect_success(resp, &format!("container {container}")).await;
    }
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;

    pub(crate) fn connection(endpoint: &str, bucket: &str, prefix: &str) -> StorageConnection {
        StorageConnection::new(format!("s3://{bucket}/{prefix}"))
            .with_option("endpoint", endpoint)
            .with_option("region", var("IKKATSU_TEST_S3_REGION"))
            .with_option("access-key-id", var("IKKATSU_TEST_S3_ACCESS_KEY"))
            .with_option("secret-access-key", var("IKKATSU_TEST_S3_SECRET_KEY"))
    }

    async fn fixture(name: &str) -> Fixture {
        let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
        let bucket = unique(name);
        emulator::create_s3_bucket(&endpoint, &bucket).await;
        Fixture {
            storage: open(&connection(&endpoint, &bucket, "in/box")),
            // moto keeps everything in memory: restarting it cleans up.
            clean: false,
        }
    }

    ikkatsu_testkit::storage_behaviours!(conformance);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn capabilities() {
        let caps = fixture("caps").await.storage.capabilities();
        assert_eq!(caps.scheme, "s3");
        assert_eq!(
            caps.conditional_write,
            ikkatsu_storage::ConditionalWrite::IfMatch
        );
        assert!(caps.etag);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_bucket_is_not_found_with_a_clear_message() {
        let storage = open(&connection(
            &var("IKKATSU_TEST_S3_ENDPOINT"),
            &unique("no-such-bucket"),
            "p",
        ));
        let err = storage
            .write("x", &b"x"[..])
            .await
            .expect_err("missing bucket");
        assert!(!err.is_temporary(), "{}", err.report());
        assert!(err.report().contains("NoSuchBucket"), "{}", err.report());
    }
}

#[cfg(any(feature = "s3", feature = "sftp"))]
/// A TCP front on `port` forwarding to `target`; aborting it closes the listener and
/// every connection.
pub(crate) fn front(port: u16, target: u16) -> tokio::task::JoinHandle<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the front");
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[cfg(any(feature = "s3", feature = "sftp"))]
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The server stops in the middle of a run: operations fail with temporary errors, and an
/// operation retried by the storage succeeds once the server is back. The server is a private
/// moto on a free port behind a TCP front the test stops and starts again: stopping it
/// refuses new connections and cuts the open ones, as a crashed server does, while moto
/// keeps the bucket (it holds everything in memory, so a restarted moto would not).
#[cfg(feature = "s3")]
mod restart {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    struct Moto(Child);

    impl Moto {
        fn start(port: u16) -> Moto {
            let dir = var("IKKATSU_TEST_SERVERS_DIR");
            let venv = std::path::Path::new(&dir).join("venv/bin/moto_server");
            let program = if venv.exists() {
                venv.display().to_string()
            } else {
                "moto_server".to_string()
            };
            let child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start {program} (installed by `scripts/test-servers start`): {e}")
                });
            let moto = Moto(child);
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "moto did not start on port {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            moto
        }
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_stopped_mid_run_gives_temporary_errors_and_retries_succeed_once_it_is_back() {
        let moto_port = free_port();
        let _moto = tokio::task::spawn_blocking(move || Moto::start(moto_port))
            .await
            .expect("start moto");
        let port = free_port();
        let mut server = front(port, moto_port);
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = unique("restart");
        emulator::create_s3_bucket(&endpoint, &bucket).await;
        // No retries inside the storage: the caller sees the error itself.
        let once = open(&s3::connection(&endpoint, &bucket, "p").with_option("retries", "0"));
        // Retries with exponential backoff (1 s, 2 s, 4 s, ... with jitter).
        let patient = open(&s3::connection(&endpoint, &bucket, "p").with_option("retries", "8"));
        once.write("before", &b"1"[..])
            .await
            .expect("write while up");
        patient.stat("before").await.expect("stat while up");

        // The server stops.
        server.abort();
        let _ = (&mut server).await;
        let err = once.stat("before").await.expect_err("server is down");
        assert!(err.is_temporary(), "{}", err.report());
        assert_eq!(err.kind(), ErrorKind::Io, "{}", err.report());
        assert!(err.message().contains("cannot reach"), "{}", err.report());
        assert_eq!(once.retry_count(), 0);

        // A write starts while the server is down; the storage retries it.
        let write = tokio::spawn({
            let patient = patient.clone();
            async move { patient.write("after", &b"2"[..]).await }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!write.is_finished(), "the write waits for the server");

        // The server is back.
        let _server = front(port, moto_port);
        let info = write
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("the retried write failed: {}", e.report()));
        assert_eq!(info.size, 1);
        assert!(patient.retry_count() >= 1, "the write was retried");
        assert_eq!(patient.read("after").await.expect("read").as_ref(), b"2");
        assert_eq!(once.read("before").await.expect("read").as_ref(), b"1");
    }
}

#[cfg(feature = "gcs")]
mod gcs {
    use super::*;

    async fn fixture(name: &str) -> Fixture {
        let endpoint = var("IKKATSU_TEST_GCS_ENDPOINT");
        let bucket = unique(name);
        emulator::create_gcs_bucket(&endpoint, &bucket).await;
        Fixture {
            // fake-gcs-server ignores generation preconditions (`ifGenerationMatch`), which
            // real GCS honours: the emulator is used as a store without conditional writes.
            storage: open(&connection(&bucket).with_option("conditional-write", "false")),
            // fake-gcs-server keeps everything in memory.
            clean: false,
        }
    }

    fn connection(bucket: &str) -> StorageConnection {
        StorageConnection::new(format!("gcs://{bucket}/in/box"))
            .with_option("endpoint", var("IKKATSU_TEST_GCS_ENDPOINT"))
            .with_option("anonymous", "true")
    }

    /// The suite; the 100 MB case smaller. OpenDAL streams large writes to GCS with the XML
    /// API's multipart upload, which fake-gcs-server does not implement (it answers `invalid
    /// uploadType`): with the emulator, a streamed write must fit in one part, so the case
    /// streams 4 MiB (through the same code) instead of 100 MiB.
    macro_rules! gcs_conformance {
        ($($name:ident),*) => { $( gcs_one!($name); )* };
    }
    macro_rules! gcs_one {
        (streams_100_mb_in_flat_memory) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn streams_100_mb_in_flat_memory() {
                let fixture = fixture("streams").await;
                ikkatsu_testkit::storage::streams_in_flat_memory(
                    fixture.storage.clone(),
                    4 * 1024 * 1024,
                )
                .await;
            }
        };
        ($name:ident) => {
            conformance!($name);
        };
    }
    ikkatsu_testkit::storage_behaviours!(gcs_conformance);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn capabilities() {
        let caps = open(&connection("any-bucket")).capabilities();
        assert_eq!(caps.scheme, "gcs");
        assert_eq!(
            caps.conditional_write,
            ikkatsu_storage::ConditionalWrite::IfVersionMatch
        );
        let caps = fixture("caps").await.storage.capabilities();
        assert_eq!(
            caps.conditional_write,
            ikkatsu_storage::ConditionalWrite::StatCompare
        );
    }
}

#[cfg(feature = "azblob")]
mod azblob {
    use super::*;

    fn connection(container: &str, key: &str) -> StorageConnection {
        StorageConnection::new(format!("azblob://{container}/in/box"))
            .with_option("endpoint", var("IKKATSU_TEST_AZBLOB_ENDPOINT"))
            .with_option("account", var("IKKATSU_TEST_AZBLOB_ACCOUNT"))
            .with_option("account-key", key)
    }

    /// The container, deleted with its blobs when the test ends.
    struct Container(String);

    async fn fixture(name: &str) -> AzureFixture {
        let container = unique(name);
        emulator::azure_container("PUT", &container).await;
        AzureFixture {
            storage: open(&connection(&container, &var("IKKATSU_TEST_AZBLOB_KEY"))),
            container: Container(container),
        }
    }

    struct AzureFixture {
        storage: Storage,
        container: Container,
    }

    impl AzureFixture {
        async fn cleanup(self) {
            emulator::azure_container("DELETE", &self.container.0).await;
        }
    }

    ikkatsu_testkit::storage_behaviours!(conformance);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn capabilities() {
        let fixture = fixture("caps").await;
        let caps = fixture.storage.capabilities();
        assert_eq!(caps.scheme, "azblob");
        assert_eq!(
            caps.conditional_write,
            ikkatsu_storage::ConditionalWrite::IfMatch
        );
        fixture.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_key_is_a_permission_error_not_retried() {
        let fixture = fixture("wrong-key").await;
        // A valid base64 key that is not the account's.
        let storage = open(&connection(
            &fixture.container.0,
            "d3Jvbmcta2V5LXdyb25nLWtleQ==",
        ));
        let err = storage.write("x", &b"x"[..]).await.expect_err("wrong key");
        assert_refused_not_retried(&storage, &err);
        assert!(!err.report().contains("d3Jvbmcta2V5"), "{}", err.report());
        fixture.cleanup().await;
    }
}
