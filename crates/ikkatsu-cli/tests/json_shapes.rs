//! The shape of every command's `--json` output, held to the snapshots in
//! `tests/snapshots/*.shape.json`: each value replaced by its JSON type (`"string"`,
//! `"number"`, `"bool"`, `"null"`), an array by the shape of its first element. A field
//! added, removed, renamed or retyped fails here until the snapshot (and docs/cli.md) say
//! so; `IKKATSU_UPDATE_SNAPSHOTS=1` rewrites the snapshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let status = Command::new("cp")
            .arg("-r")
            .arg(&examples)
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("IKKATSU_REPOSITORY", "sqlite://ikkatsu.db")
            .env("IKKATSU_HEARTBEAT_INTERVAL", "200ms")
            .env("IKKATSU_LOG", "warn")
            .env_remove("IKKATSU_CONFIG")
            .env_remove("IKKATSU_STATUS_STORE")
            .stdin(Stdio::null());
        cmd
    }

    fn output(&self, args: &[&str], code: i32) -> Output {
        let out = self.command(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "ikkatsu {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The JSON `ikkatsu ARGS` prints, with exit code `code`.
    fn json(&self, args: &[&str], code: i32) -> Value {
        let out = self.output(args, code);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!(
                "ikkatsu {args:?} printed no JSON ({err}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// `value` with every scalar replaced by its type name.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// Holds the shape of `value` to `tests/snapshots/NAME.shape.json`.
fn assert_shape(name: &str, value: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.shape.json"));
    let actual = serde_json::to_string_pretty(&shape(value)).unwrap() + "\n";
    if std::env::var_os("IKKATSU_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; run with IKKATSU_UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "the --json shape of `{name}` changed: update docs/cli.md and run with \
         IKKATSU_UPDATE_SNAPSHOTS=1 ({})",
        path.display()
    );
}

#[test]
fn job_commands() {
    let env = Env::new();
    let run = env.json(&["run", "examples/quickstart.yaml", "--json"], 0);
    assert_shape("run", &run);
    assert_eq!(run["status"], "COMPLETED");
    let id = run["id"].to_string();
    assert_shape("status", &env.json(&["status", &id, "--json"], 0));
    let executions = env.json(&["executions", "--json"], 0);
    assert_eq!(executions.as_array().map(Vec::len), Some(1));
    assert_shape("executions", &executions);
    assert_shape(
        "validate",
        &env.json(&["validate", "examples/quickstart.yaml", "--json"], 0),
    );
    assert_shape("migrate", &env.json(&["migrate", "--json"], 0));
    let recover = env.json(&["recover", "--json"], 0);
    assert_eq!(recover, Value::Array(Vec::new()));
    assert_shape("version", &env.json(&["version", "--json"], 0));

    // A failed execution, abandoned.
    std::fs::write(
        env.path("fails.yaml"),
        "id: fails\nsteps:\n  - name: fail\n    tasklet:\n      type: shell\n      properties:\n        command: \"false\"\n",
    )
    .unwrap();
    let failed = env.json(&["run", "fails.yaml", "--json"], 1);
    assert_eq!(failed["status"], "FAILED");
    let abandoned = env.json(&["abandon", &failed["id"].to_string(), "--json"], 0);
    assert_eq!(abandoned["status"], "ABANDONED");
    assert_shape("abandon", &abandoned);
}

#[test]
fn stop_of_a_running_execution() {
    let env = Env::new();
    std::fs::write(
        env.path("slow.yaml"),
        "id: slow\nsteps:\n  - name: wait\n    tasklet:\n      type: shell\n      properties:\n        command: sleep\n        args: [\"30\"]\n",
    )
    .unwrap();
    let mut child = env.spawn(&["run", "slow.yaml"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        assert!(Instant::now() < deadline, "the job never started");
        let out = env.command(&["executions", "--json"]).output().unwrap();
        if out.status.success()
            && let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&out.stdout)
            && let Some(first) = list.first()
            && first["status"] == "STARTED"
        {
            // Its step has started too: the execution printed has one.
            let id = first["id"].to_string();
            let status = env.command(&["status", &id, "--json"]).output().unwrap();
            if let Ok(status) = serde_json::from_slice::<Value>(&status.stdout)
                && status["steps"]
                    .as_array()
                    .is_some_and(|steps| !steps.is_empty())
            {
                break id;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stopped = env.json(&["stop", &id, "--json"], 0);
    assert_eq!(stopped["status"], "STOPPING");
    assert_shape("stop", &stopped);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn overwrite_and_its_dry_run() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "a\n").unwrap();
    let common = [
        "overwrite",
        "data",
        "--exec",
        "cp {in} {out}",
        "--status-store",
        "memory:",
        "--no-progress",
        "--json",
    ];
    let mut dry = common.to_vec();
    dry.push("--dry-run");
    assert_shape("overwrite-dry-run", &env.json(&dry, 0));
    assert_shape("overwrite", &env.json(&common, 0));
}
