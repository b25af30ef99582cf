//! The SQLite job repository as the commands find it: a command that only reads
//! (`executions`, `status`), or acts on recorded executions (`restart`, `stop`, `abandon`,
//! `recover`), creates no `ikkatsu.db` where there is none and says how to get one; a
//! repository whose schema a newer binary upgraded is refused by every command, both
//! migration versions named. (PostgreSQL and MariaDB: `sql_servers.rs`.)

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

fn ikkatsu(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("IKKATSU_REPOSITORY")
        .env_remove("IKKATSU_CONFIG")
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

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn commands_that_need_a_repository_create_none() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["executions"],
        vec!["executions", "--json"],
        vec!["status", "1"],
        vec!["restart", "1"],
        vec!["stop", "1"],
        vec!["abandon", "1"],
        vec!["recover"],
    ] {
        let out = ikkatsu(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(out.stdout, b"", "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: no job repository at ./ikkatsu.db (run a job here, or pass --repository / IKKATSU_REPOSITORY)\n",
            "{args:?}"
        );
        assert!(
            names(dir.path()).is_empty(),
            "{args:?} created {:?}",
            names(dir.path())
        );
    }
    // Elsewhere, named by the flag or the variable.
    let elsewhere = dir.path().join("jobs/ikkatsu.db");
    let url = format!("sqlite://{}", elsewhere.display());
    let out = ikkatsu(dir.path(), &["executions", "--repository", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: no job repository at {} (run a job with it first, or pass --repository / IKKATSU_REPOSITORY)\n",
            elsewhere.display()
        )
    );
    assert!(names(dir.path()).is_empty());

    // `migrate` writes: it creates the repository, and then the readers read it.
    let out = ikkatsu(dir.path(), &["migrate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("ikkatsu.db").exists());
    let out = ikkatsu(dir.path(), &["executions", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
}

#[test]
fn a_repository_upgraded_by_a_newer_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "id: hello\nsteps:\n  - name: a\n    tasklet:\n      type: noop\n",
    )
    .unwrap();
    let out = ikkatsu(dir.path(), &["run", "job.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = dir.path().join("ikkatsu.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO ikkatsu_schema_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'from a newer ikkatsu', TRUE, X'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });
    for args in [
        vec!["executions"],
        vec!["status", "1"],
        vec!["migrate"],
        vec!["run", "job.yaml", "-p", "again=1"],
        vec!["recover"],
    ] {
        let out = ikkatsu(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "job repository sqlite://ikkatsu.db: its schema is newer than this ikkatsu: migration 99990101000000 is applied there, this binary knows migrations up to 20260101000000"
            ),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_repository_older_than_the_binary_is_refused_by_the_readers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        "id: hello\nsteps:\n  - name: a\n    tasklet:\n      type: noop\n",
    )
    .unwrap();
    let out = ikkatsu(dir.path(), &["run", "job.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The migration history says the binary's migration is not applied yet.
    let db = dir.path().join("ikkatsu.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::raw_sql("DELETE FROM ikkatsu_schema_migrations")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
    let before = std::fs::read(&db).unwrap();
    for args in [vec!["executions"], vec!["status", "1"]] {
        let out = ikkatsu(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "job repository sqlite://ikkatsu.db: its schema is older than this ikkatsu: migration none is the latest applied there, this binary needs migrations up to 20260101000000; upgrade it with `ikkatsu migrate`"
            ),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the readers wrote nothing"
    );
}
