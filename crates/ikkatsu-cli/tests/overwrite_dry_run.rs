//! `ikkatsu overwrite --dry-run` writes nothing: the working directory (state directory,
//! embedded status store, job repository) and the storage are hashed before and after, and
//! so are the records of a Redis and a PostgreSQL status store; standard output lists
//! exactly the files a run would process, and a real run then processes exactly those.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

const APPEND: &str = "cat {in} > {out} && echo processed >> {out}";

fn ikkatsu(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "overwrite",
        "data",
        "--exec",
        APPEND,
        "--shell",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(BIN)
        .args(&args)
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

/// Every file and directory under `dir`: its relative path, mode, size, modification time
/// and contents.
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, u64, i64, i64, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u64, i64, i64, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let contents = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            let mtime = if meta.is_dir() { 0 } else { meta.mtime() };
            let nanos = if meta.is_dir() { 0 } else { meta.mtime_nsec() };
            out.insert(name, (meta.mode(), meta.len(), mtime, nanos, contents));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn tree(dir: &Path) {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    for (name, text) in [
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
        ("sub/c.txt", "c\n"),
        ("d.dat", "d\n"),
    ] {
        std::fs::write(data.join(name), text).unwrap();
    }
}

fn sorted_lines(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A dry run in `dir` with the extra flags `store`: the files it lists, and it changes
/// nothing in `dir` (nor in the external store, as `records` reads it).
fn dry_run(dir: &Path, store: &[&str], records: &dyn Fn() -> String) -> Vec<String> {
    let before = (snapshot(dir), records());
    let mut args = vec!["--include", "*.txt", "--dry-run"];
    args.extend_from_slice(store);
    let out = ikkatsu(dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (snapshot(dir), records()),
        before,
        "the dry run wrote nothing"
    );
    let lines = sorted_lines(&out);
    assert!(
        stderr(&out).contains(&format!(
            "dry run: {} of 3 matching files would be processed; nothing was written",
            lines.len()
        )),
        "{}",
        stderr(&out)
    );

    args.push("--json");
    let out = ikkatsu(dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (snapshot(dir), records()),
        before,
        "the JSON dry run wrote nothing"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["count"], lines.len());
    assert_eq!(json["matched"], 3);
    let mut listed: Vec<String> = json["would_process"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, lines);
    lines
}

/// A fresh flow, then one whose `a.txt` is done: the dry runs list what is left and write
/// nothing; the real run processes exactly that.
fn dry_runs_write_nothing(dir: &Path, store: &[&str], records: &dyn Fn() -> String) {
    tree(dir);
    assert_eq!(
        dry_run(dir, store, records),
        ["a.txt", "b.txt", "sub/c.txt"]
    );
    assert!(!dir.join(".ikkatsu").exists(), "no state directory");
    assert!(!dir.join("ikkatsu-status.redb").exists());
    assert!(!dir.join("ikkatsu.db").exists());

    let mut args = vec!["--include", "a.txt"];
    args.extend_from_slice(store);
    let out = ikkatsu(dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("data/a.txt")).unwrap(),
        "a\nprocessed\n"
    );

    assert_eq!(dry_run(dir, store, records), ["b.txt", "sub/c.txt"]);

    let mut args = vec!["--include", "*.txt", "--json"];
    args.extend_from_slice(store);
    let out = ikkatsu(dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["process"]["progress"]["done"], 2, "{json}");
    for name in ["a.txt", "b.txt", "sub/c.txt"] {
        let text = std::fs::read_to_string(dir.join("data").join(name)).unwrap();
        assert_eq!(text.matches("processed").count(), 1, "{name}");
    }
    assert_eq!(dry_run(dir, store, records), Vec::<String>::new());
}

#[test]
fn a_dry_run_writes_nothing_with_the_embedded_status_store() {
    let dir = tempfile::tempdir().unwrap();
    dry_runs_write_nothing(dir.path(), &[], &String::new);
    assert!(dir.path().join("ikkatsu-status.redb").exists());
}

fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-u")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_dry_run_writes_nothing_with_a_redis_status_store() {
    let url = std::env::var("IKKATSU_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string());
    let namespace = format!("dry-run-{}", std::process::id());
    let keys = || {
        let mut keys: Vec<String> =
            redis_cli(&url, &["--scan", "--pattern", &format!("*{namespace}*")])
                .lines()
                .map(str::to_string)
                .collect();
        keys.sort();
        keys
    };
    // Every key of the namespace with its serialized value (binary, shown escaped).
    let records = || {
        keys()
            .iter()
            .map(|key| format!("{key} {:?}", redis_cli(&url, &["DUMP", key])))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(records(), "", "a fresh namespace");
    let dir = tempfile::tempdir().unwrap();
    dry_runs_write_nothing(
        dir.path(),
        &["--status-store", &url, "--namespace", &namespace],
        &records,
    );
    assert_ne!(records(), "");
    for key in keys() {
        redis_cli(&url, &["DEL", &key]);
    }
}

fn postgres_server() -> String {
    std::env::var("IKKATSU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

fn postgres(url: &str, statement: &str) -> Vec<String> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(statement.to_string()))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        rows.into_iter().map(|(r,)| r).collect()
    })
}

#[test]
fn a_dry_run_writes_nothing_with_a_postgres_status_store() {
    let server = postgres_server();
    let name = format!("ikk_dry_{}", std::process::id());
    let (base, query) = server.split_once('?').unwrap_or((&server, ""));
    let url = format!(
        "{}/{name}{}{query}",
        &base[..base.rfind('/').unwrap()],
        if query.is_empty() { "" } else { "?" }
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
    });
    // Every table, every row, as text: a dry run on the fresh database creates no table.
    let records = || {
        let mut out = Vec::new();
        for table in postgres(
            &url,
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        ) {
            out.push(table.clone());
            out.extend(postgres(
                &url,
                &format!("SELECT t::text FROM {table} t ORDER BY 1"),
            ));
        }
        out.join("\n")
    };
    let dir = tempfile::tempdir().unwrap();
    dry_runs_write_nothing(dir.path(), &["--status-store", &url], &records);
    assert!(records().contains("ikkatsu_file_status"));

    // A store whose schema lacks a migration of this binary is not upgraded by a dry run.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "DELETE FROM ikkatsu_status_migrations WHERE version = (SELECT max(version) FROM ikkatsu_status_migrations)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });
    let before = (snapshot(dir.path()), records());
    let out = ikkatsu(dir.path(), &["--dry-run", "--status-store", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("its schema is older than this ikkatsu: migration 2 is the latest applied there, this binary needs migrations up to 3; a dry run does not upgrade it: run once without --dry-run"),
        "{}",
        stderr(&out)
    );
    assert_eq!((snapshot(dir.path()), records()), before);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    });
}

/// The `overwrite` step's `dry-run: true`: each file a run would process is logged as
/// `would process`, the step's `read_count` is their number, and the storage, the state
/// directory and the status store are left alone (only the job repository is written).
#[test]
fn the_overwrite_step_dry_run_writes_nothing_but_its_records() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("job.yaml"),
        format!(
            "id: dry\nsteps:\n  - name: o\n    tasklet:\n      type: overwrite\n      properties:\n        source: \"{}\"\n        include: [\"*.txt\"]\n        exec: \"{APPEND}\"\n        shell: true\n        dry-run: true\n",
            data.display()
        ),
    )
    .unwrap();
    let before = snapshot(&data);
    let command = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("IKKATSU_REPOSITORY")
            .env_remove("IKKATSU_CONFIG")
            .env_remove("IKKATSU_STATUS_STORE")
            .env("IKKATSU_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = command(&["run", "job.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(snapshot(&data), before, "the storage is untouched");
    let mut logged: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.contains("would process"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("path="))
                .map(str::to_string)
        })
        .collect();
    logged.sort();
    assert_eq!(logged, ["a.txt", "b.txt", "sub/c.txt"], "{}", stderr(&out));
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("ikkatsu.db"))
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["data", "job.yaml"],
        "no state directory, no status store"
    );

    let out = command(&["executions", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let step = &json[0]["steps"][0];
    assert_eq!(json[0]["status"], "COMPLETED", "{json}");
    assert_eq!(
        (
            &step["read_count"],
            &step["filter_count"],
            &step["process_skip_count"]
        ),
        (&3.into(), &0.into(), &0.into()),
        "{json}"
    );
}

/// The embedded store is one process's at a time, even to read: a dry run while a real run
/// has it open is refused with exit code 4, naming the store, and lists nothing.
#[test]
fn a_dry_run_while_a_run_holds_the_embedded_store_is_refused_with_exit_code_4() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    tree(dir);
    let mut run = Command::new(BIN)
        .args([
            "overwrite",
            "data",
            "--include",
            "*.txt",
            "--exec",
            "sleep 2 && cat {in} > {out}",
            "--shell",
            "--concurrency",
            "1",
            "--no-progress",
        ])
        .current_dir(dir)
        .env_remove("IKKATSU_REPOSITORY")
        .env_remove("IKKATSU_CONFIG")
        .env_remove("IKKATSU_STATUS_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let holder = dir.join("ikkatsu-status.redb.holder");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !holder.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not open its store"
        );
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = ikkatsu(dir, &["--include", "*.txt", "--dry-run"]);
    let still_running = run.try_wait().unwrap().is_none();
    let _ = run.kill();
    run.wait().unwrap();
    assert!(
        still_running,
        "the run was still running during the dry run"
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("already running") && message.contains("ikkatsu-status.redb"),
        "{message}"
    );
    assert!(out.stdout.is_empty(), "nothing listed");
}
