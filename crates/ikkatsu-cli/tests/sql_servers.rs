//! The `ikkatsu` binary against the PostgreSQL and MariaDB test servers (URLs from
//! `IKKATSU_TEST_POSTGRES_URL` / `IKKATSU_TEST_MYSQL_URL`, else the local defaults): the
//! servers' NOTICEs stay out of the log, and a missing database is named with what to do.
//! A missing server fails the test.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

fn postgres_server() -> String {
    std::env::var("IKKATSU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

fn mysql_server() -> String {
    std::env::var("IKKATSU_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let scheme_end = base.find("://").unwrap() + 3;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `host:port` of `url`.
fn server_address(url: &str) -> String {
    let rest = &url[url.find("://").unwrap() + 3..];
    let authority = rest.split(['/', '?']).next().unwrap();
    authority.rsplit('@').next().unwrap().to_string()
}

fn unique_name(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "ikk_{what}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn admin_postgres(statement: String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&postgres_server())
            .await
            .expect("the PostgreSQL test server is running");
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}

fn ikkatsu(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("IKKATSU_LOG", "info")
        .env_remove("IKKATSU_REPOSITORY")
        .env_remove("IKKATSU_STATUS")
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

/// Drops the database when dropped (also when the test panics).
struct FreshPostgres(String);

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        admin_postgres(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

#[test]
fn postgres_notices_stay_out_of_the_log() {
    let name = unique_name("notice");
    admin_postgres(format!("CREATE DATABASE {name}"));
    let _drop = FreshPostgres(name.clone());
    let url = with_database(&postgres_server(), &name);
    let dir = tempfile::tempdir().unwrap();

    // The second run finds the migration history table: PostgreSQL's NOTICE
    // "relation … already exists, skipping" must not be logged.
    for run in 1..=2 {
        let out = ikkatsu(dir.path(), &["executions", "--repository", &url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "run {run}: {stderr}");
        assert!(
            !stderr.contains("already exists, skipping"),
            "run {run}: {stderr}"
        );
    }

    // The status store of `ikkatsu overwrite` on the same database.
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("a.txt"), "a\n").unwrap();
    let source = tree.path().display().to_string();
    for run in 1..=2 {
        let out = ikkatsu(
            dir.path(),
            &[
                "overwrite",
                &source,
                "--include",
                "*.txt",
                "--exec",
                "cp {in} {out}",
                "--status",
                &url,
                "--no-progress",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "overwrite run {run}: {stderr}");
        assert!(
            !stderr.contains("already exists, skipping"),
            "overwrite run {run}: {stderr}"
        );
    }
}

#[test]
fn missing_postgres_database_is_named_with_what_to_do() {
    let name = unique_name("nope");
    let server = postgres_server();
    let url = with_database(&server, &name);
    let address = server_address(&server);
    let dir = tempfile::tempdir().unwrap();

    let out = ikkatsu(dir.path(), &["executions", "--repository", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "database \"{name}\" does not exist on {address}: create it (createdb {name}) or \
             fix the repository URL"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("at line"), "{stderr}");

    let tree = tempfile::tempdir().unwrap();
    let source = tree.path().display().to_string();
    let out = ikkatsu(
        dir.path(),
        &[
            "overwrite",
            &source,
            "--include",
            "*.txt",
            "--exec",
            "cp {in} {out}",
            "--status",
            &url,
            "--no-progress",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "database \"{name}\" does not exist on {address}: create it (createdb {name}) or \
             fix the status store URL"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("at line"), "{stderr}");
}

#[test]
fn missing_mysql_database_is_named_with_what_to_do() {
    let name = unique_name("nope");
    let server = mysql_server();
    let url = with_database(&server, &name);
    let address = server_address(&server);
    let dir = tempfile::tempdir().unwrap();

    let out = ikkatsu(dir.path(), &["executions", "--repository", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "database \"{name}\" does not exist on {address}: create it (CREATE DATABASE \
             {name}) or fix the repository URL"
        )),
        "{stderr}"
    );

    let tree = tempfile::tempdir().unwrap();
    let source = tree.path().display().to_string();
    let out = ikkatsu(
        dir.path(),
        &[
            "overwrite",
            &source,
            "--include",
            "*.txt",
            "--exec",
            "cp {in} {out}",
            "--status",
            &url,
            "--no-progress",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "database \"{name}\" does not exist on {address}: create it (CREATE DATABASE \
             {name}) or fix the status store URL"
        )),
        "{stderr}"
    );
}
