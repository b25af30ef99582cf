//! The exit codes of docs/cli.md, one row per case: each row runs the binary once and
//! asserts its code. The failures at run time (a closed PostgreSQL port, a wrong MariaDB
//! password, an unreachable Redis status store) exit 1, never 2.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

struct Env {
    dir: tempfile::TempDir,
    /// A job started in the background by a row, stopped after it.
    background: Option<Child>,
}

impl Env {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env(
                "IKKATSU_REPOSITORY",
                format!("sqlite://{}", self.path("ikkatsu.db").display()),
            )
            .env("IKKATSU_HEARTBEAT_INTERVAL", "200ms")
            .env_remove("IKKATSU_CONFIG")
            .env_remove("IKKATSU_STATUS_STORE")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `job` with `params` in the background and waits until its execution runs.
    fn start(&self, job: &str, params: &[&str]) -> Child {
        let mut args = vec!["run", job];
        args.extend_from_slice(params);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = self.run(&["executions", "--json", "--status", "STARTED"]);
            if out.status.code() == Some(0) {
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                if json.as_array().is_some_and(|a| a.len() == 1) {
                    return child;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the job never started");
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn mysql_with_wrong_password() -> String {
    let url = std::env::var("IKKATSU_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string());
    let rest = &url[url.find("://").unwrap() + 3..];
    let host = rest.rsplit('@').next().unwrap();
    format!("mysql://ikkatsu_nobody:wrong-password@{host}")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

type Row = (&'static str, u8, Box<dyn Fn(&mut Env) -> Output>);

#[test]
fn every_exit_code() {
    let mut env = Env {
        dir: tempfile::tempdir().unwrap(),
        background: None,
    };
    let dir = env.dir.path().to_path_buf();
    write(
        &dir,
        "ok.yaml",
        "id: ok\nsteps:\n  - name: a\n    tasklet:\n      type: noop\n",
    );
    write(
        &dir,
        "fails.yaml",
        "id: fails\nsteps:\n  - name: a\n    tasklet:\n      type: shell\n      properties:\n        command: \"false\"\n",
    );
    write(
        &dir,
        "slow.yaml",
        "id: slow\nsteps:\n  - name: wait\n    tasklet:\n      type: shell\n      properties:\n        command: sleep\n        args: [\"60\"]\n",
    );
    write(
        &dir,
        "malformed.yaml",
        "id: x\nsteps:\n  - name: [unclosed\n",
    );
    std::fs::create_dir_all(dir.join("data")).unwrap();
    write(&dir, "data/a.txt", "a\n");
    let pg_closed = format!("postgres://root@127.0.0.1:{}/test", closed_port());
    let redis_closed = format!("redis://127.0.0.1:{}/0", closed_port());
    let mysql_wrong = mysql_with_wrong_password();

    let rows: Vec<Row> = vec![
        (
            "a job that completes",
            0,
            Box::new(|e: &mut Env| e.run(&["run", "ok.yaml", "-p", "day=1"])),
        ),
        (
            "a valid job file",
            0,
            Box::new(|e: &mut Env| e.run(&["validate", "ok.yaml"])),
        ),
        (
            "an overwrite run with every file done",
            0,
            Box::new(|e: &mut Env| {
                e.run(&[
                    "overwrite",
                    "data",
                    "--exec",
                    "cp {in} {out}",
                    "--no-progress",
                ])
            }),
        ),
        (
            "a job that fails",
            1,
            Box::new(|e: &mut Env| e.run(&["run", "fails.yaml"])),
        ),
        (
            "a job repository on a closed PostgreSQL port",
            1,
            Box::new(move |e: &mut Env| e.run(&["executions", "--repository", &pg_closed])),
        ),
        (
            "a MariaDB job repository refusing the password",
            1,
            Box::new(move |e: &mut Env| e.run(&["run", "ok.yaml", "--repository", &mysql_wrong])),
        ),
        (
            "an unreachable Redis status store",
            1,
            Box::new(move |e: &mut Env| {
                e.run(&[
                    "overwrite",
                    "data",
                    "--exec",
                    "cp {in} {out}",
                    "--status-store",
                    &redis_closed,
                    "--no-progress",
                ])
            }),
        ),
        (
            "an unknown flag",
            2,
            Box::new(|e: &mut Env| e.run(&["run", "ok.yaml", "--no-such-flag"])),
        ),
        (
            "a malformed job file",
            2,
            Box::new(|e: &mut Env| e.run(&["run", "malformed.yaml"])),
        ),
        (
            "a missing job file",
            2,
            Box::new(|e: &mut Env| e.run(&["run", "missing.yaml"])),
        ),
        (
            "an unknown execution",
            2,
            Box::new(|e: &mut Env| e.run(&["status", "999"])),
        ),
        (
            "a job stopped by SIGTERM",
            3,
            Box::new(|e: &mut Env| {
                let child = e.start("slow.yaml", &["-p", "attempt=stop"]);
                let kill = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(kill.success());
                child.wait_with_output().unwrap()
            }),
        ),
        (
            "a job instance already running",
            4,
            Box::new(|e: &mut Env| {
                e.background = Some(e.start("slow.yaml", &["-p", "attempt=running"]));
                e.run(&["run", "slow.yaml", "-p", "attempt=running"])
            }),
        ),
        (
            "a job instance already complete",
            5,
            Box::new(|e: &mut Env| e.run(&["run", "ok.yaml", "-p", "day=1"])),
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, code, row) in rows {
        let out = row(&mut env);
        if let Some(mut child) = env.background.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(out.status.code(), Some(i32::from(code)), "{name}: {stderr}");
        seen.insert(code);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
}
