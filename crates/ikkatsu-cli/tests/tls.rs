//! The `ikkatsu` binary with a job repository or status store over TLS (the servers of
//! `scripts/tls-servers`, certificates signed by the test CA of `scripts/test-servers`):
//! a run over TLS works, and a certificate of another CA stops the command with exit code 1
//! (a run-time failure), the masked URL and the option that fixes it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// The test CA (`IKKATSU_TEST_CA`), or the unrelated one (`IKKATSU_TEST_OTHER_CA`).
fn ca(other: bool) -> String {
    let (var, file) = if other {
        ("IKKATSU_TEST_OTHER_CA", "other-ca.pem")
    } else {
        ("IKKATSU_TEST_CA", "ca.pem")
    };
    std::env::var(var).unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/ikkatsu-test-servers/tls/{file}")
    })
}

fn ikkatsu(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("IKKATSU_REPOSITORY")
        .env_remove("IKKATSU_STATUS_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `overwrite` on a tree of one file with the status store at `status`.
fn overwrite(dir: &Path, status: &str) -> Output {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.txt"), "a").unwrap();
    ikkatsu(
        dir,
        &[
            "overwrite",
            &tree.display().to_string(),
            "--include",
            "*.txt",
            "--exec",
            "cp {in} {out}",
            "--state-dir",
            &dir.join("state").display().to_string(),
            "--status-store",
            status,
            "--no-progress",
        ],
    )
}

#[test]
fn a_repository_certificate_of_another_ca_exits_1_with_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let other = ca(true);
    let cases = [
        (
            format!("postgres://root@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert={other}"),
            "sslrootcert=FILE in the repository URL",
        ),
        (
            format!("mysql://root@127.0.0.1:3306/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={other}"),
            "ssl-ca=FILE in the repository URL",
        ),
    ];
    for (url, fix) in cases {
        let out = ikkatsu(dir.path(), &["executions", "--repository", &url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "job repository {url}: connecting: the server's TLS certificate is not trusted \
                 (invalid peer certificate: UnknownIssuer): give the CA certificate that signed \
                 it with {fix}"
            )),
            "{url}: {stderr}"
        );
    }
}

#[test]
fn overwrite_with_a_redis_status_store_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!("rediss://127.0.0.1:6390/?ca-file={}", ca(false));
    let out = overwrite(&dir.path().join("good"), &good);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = format!("rediss://127.0.0.1:6390/?ca-file={}", ca(true));
    let out = overwrite(&dir.path().join("bad"), &bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "status store {bad}: connecting: the server's TLS certificate is not trusted \
             (invalid peer certificate: UnknownIssuer): give the CA certificate that signed it \
             with ?ca-file=FILE in the status store URL"
        )),
        "{stderr}"
    );
}
