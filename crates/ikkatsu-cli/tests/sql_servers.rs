//! The `ikkatsu` binary against the PostgreSQL and MariaDB test servers (URLs from
//! `IKKATSU_TEST_POSTGRES_URL` / `IKKATSU_TEST_MYSQL_URL`, else the local defaults): the
//! servers' NOTICEs stay out of the log, a missing database is named with what to do, a
//! command that only reads creates no table, and a schema newer than the binary is refused.
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

fn admin_mysql(statement: String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::MySqlConnection::connect(&mysql_server())
            .await
            .expect("the MariaDB test server is running");
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}

/// The number of tables in the database of `url`.
fn table_count(url: &str) -> i64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        if url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap()
        } else {
            let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
            sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap()
        }
    })
}

/// Runs `statement` in the database of `url`.
fn execute(url: &str, statement: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        if url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    });
}

fn ikkatsu(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("IKKATSU_LOG", "info")
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
        let out = ikkatsu(dir.path(), &["migrate", "--repository", &url]);
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
                "--status-store",
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
            "--status-store",
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
            "--status-store",
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

/// Drops the MariaDB database when dropped (also when the test panics).
struct FreshMysql(String);

impl Drop for FreshMysql {
    fn drop(&mut self) {
        admin_mysql(format!("DROP DATABASE IF EXISTS {}", self.0));
    }
}

/// The migration of the job repository this binary knows last, and the one a newer binary
/// would have applied.
const LATEST_MIGRATION: &str = "20260101000000";
const FUTURE_MIGRATION: &str = "99990101000000";

/// On a database without the repository's tables, the commands that read or act on recorded
/// executions create nothing and exit 2; `migrate` creates them; then a migration row the
/// binary does not know (a newer binary upgraded the schema) is refused by every command,
/// both versions named.
fn read_only_commands_and_a_newer_schema(url: &str, future_row: &str) {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["executions"],
        vec!["status", "1"],
        vec!["restart", "1"],
        vec!["stop", "1"],
        vec!["abandon", "1"],
        vec!["recover"],
    ] {
        let mut args = args.clone();
        args.extend(["--repository", url]);
        let out = ikkatsu(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("has no job repository tables"),
            "{args:?}: {stderr}"
        );
        assert_eq!(table_count(url), 0, "{args:?} created nothing");
    }
    let out = ikkatsu(dir.path(), &["migrate", "--repository", url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ikkatsu(dir.path(), &["executions", "--repository", url, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    execute(url, future_row);
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "id: hello\nsteps:\n  - name: a\n    tasklet:\n      type: noop\n",
    )
    .unwrap();
    for args in [
        vec!["executions"],
        vec!["status", "1"],
        vec!["migrate"],
        vec!["run", job.to_str().unwrap()],
        vec!["recover"],
    ] {
        let mut args = args.clone();
        args.extend(["--repository", url]);
        let out = ikkatsu(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "its schema is newer than this ikkatsu: migration {FUTURE_MIGRATION} is applied there, this binary knows migrations up to {LATEST_MIGRATION}"
            )),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn postgres_read_only_commands_create_nothing_and_a_newer_schema_is_refused() {
    let name = unique_name("schema");
    admin_postgres(format!("CREATE DATABASE {name}"));
    let _drop = FreshPostgres(name.clone());
    let url = with_database(&postgres_server(), &name);
    read_only_commands_and_a_newer_schema(
        &url,
        &format!(
            "INSERT INTO ikkatsu_schema_migrations (version, description, success, checksum, execution_time) VALUES ({FUTURE_MIGRATION}, 'from a newer ikkatsu', TRUE, '\\x00'::bytea, 0)"
        ),
    );
}

#[test]
fn mariadb_read_only_commands_create_nothing_and_a_newer_schema_is_refused() {
    let name = unique_name("schema");
    admin_mysql(format!("CREATE DATABASE {name}"));
    let _drop = FreshMysql(name.clone());
    let url = with_database(&mysql_server(), &name);
    read_only_commands_and_a_newer_schema(
        &url,
        &format!(
            "INSERT INTO ikkatsu_schema_migrations (version, description, success, checksum, execution_time) VALUES ({FUTURE_MIGRATION}, 'from a newer ikkatsu', TRUE, X'00', 0)"
        ),
    );
}
