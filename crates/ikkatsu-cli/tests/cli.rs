//! End-to-end tests of the `ikkatsu` binary: real processes, a real SQLite repository,
//! real files, exact outcomes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn repository(&self) -> String {
        format!("sqlite://{}", self.path("ikkatsu.db").display())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(workspace_root())
            .env("IKKATSU_REPOSITORY", self.repository())
            .env("IKKATSU_HEARTBEAT_INTERVAL", "200ms")
            .env("IKKATSU_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("panicked"), "ikkatsu panicked:\n{all}");
        out
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn executions(&self) -> serde_json::Value {
        let out = self.run(&["executions", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CSV input of `rows` rows (id,name,city) and the expected output of the copy job below.
fn make_input(rows: usize) -> (String, String) {
    let mut input = String::from("id,name,city\n");
    let mut expected = String::from("id,name,city\n");
    for i in 1..=rows {
        let city = ["Tokyo", "Berlin", "São Paulo", "New York, NY"][i % 4];
        let quoted = if city.contains(',') {
            format!("\"{city}\"")
        } else {
            city.to_string()
        };
        input.push_str(&format!("{i},name {i},{quoted}\n"));
        let upper = city.to_uppercase();
        let upper_quoted = if upper.contains(',') {
            format!("\"{upper}\"")
        } else {
            upper
        };
        expected.push_str(&format!("{i},name {i},{upper_quoted}\n"));
    }
    (input, expected)
}

fn copy_job(env: &Env, input: &Path, output: &Path, chunk: usize) -> PathBuf {
    env.write(
        "copy.yaml",
        &format!(
            r#"id: copy
params:
  input: {input}
  output: {output}
steps:
  - name: copy
    chunk:
      chunk-size: {chunk}
      reader:
        type: csv
        properties:
          path: ${{params.input}}
      processor:
        type: script
        properties:
          script: |
            record.city = record.city.to_upper();
            record
      writer:
        type: csv
        properties:
          path: ${{params.output}}
"#,
            input = input.display(),
            output = output.display(),
        ),
    )
}

#[test]
fn quickstart_runs_on_embedded_defaults() {
    let env = Env::new();
    let output = env.path("adults.csv");
    let out = env.run(&[
        "run",
        "examples/quickstart.yaml",
        "-p",
        &format!("output={}", output.display()),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("COMPLETED"), "{}", stdout(&out));
    let input = std::fs::read_to_string(workspace_root().join("examples/data/people.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(input.as_bytes());
    let adults = reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r[2].parse::<i64>().unwrap() >= 18)
        .count();
    let written = std::fs::read_to_string(&output).unwrap();
    assert_eq!(
        written.lines().count(),
        adults + 1,
        "header plus one line per adult"
    );
    let json = env.executions();
    let steps = json[0]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["read_count"], 1000);
    assert_eq!(steps[0]["write_count"], adults as u64);
    assert_eq!(steps[0]["filter_count"], 1000 - adults as u64);
    assert_eq!(steps[1]["name"], "report");
    assert_eq!(steps[1]["status"], "COMPLETED");

    // A second run is a new instance (incrementer: run-id) and completes too.
    let again = env.run(&[
        "run",
        "examples/quickstart.yaml",
        "-p",
        &format!("output={}", output.display()),
    ]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(env.executions().as_array().unwrap().len(), 2);
}

#[test]
fn bad_row_fails_then_fixed_input_restarts_to_exact_output() {
    let env = Env::new();
    let (input_text, expected) = make_input(1000);
    // Row 457 gets an extra field: a parse error on line 458 of the file.
    let broken = input_text.replace("457,name 457,", "457,name 457,extra,");
    let input = env.write("in.csv", &broken);
    let output = env.path("out.csv");
    let job = copy_job(&env, &input, &output, 50);
    let first = env.run(&["run", job.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let all = format!("{}{}", stdout(&first), stderr(&first));
    assert!(all.contains("in.csv"), "message names the file: {all}");
    assert!(all.contains("458"), "message names the line: {all}");
    let json = env.executions();
    assert_eq!(json[0]["status"], "FAILED");
    assert_eq!(json[0]["steps"][0]["write_count"], 450);
    assert_eq!(json[0]["steps"][0]["commit_count"], 9);
    let id = json[0]["id"].as_i64().unwrap().to_string();

    // Nothing committed is lost: the output holds exactly the 450 committed rows (plus header),
    // at the latest after a restart truncates it to the committed offset.
    std::fs::write(&input, &input_text).unwrap();
    let second = env.run(&["restart", &id]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected);
    let json = env.executions();
    assert_eq!(json[0]["status"], "COMPLETED");
    assert_eq!(json[0]["steps"][0]["read_count"], 550);
    assert_eq!(json[0]["steps"][0]["write_count"], 550);
}

fn wait_for_writes(env: &Env, at_least: u64, child: &mut std::process::Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let out = env.command(&["executions", "--json"]).output().unwrap();
        if out.status.success()
            && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && let Some(written) = json[0]["steps"][0]["write_count"].as_u64()
            && written >= at_least
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// `text` compressed as the extension of `name` says (`.gz`, `.zst`), or as it is.
fn compress_as(name: &str, text: &str) -> Vec<u8> {
    use std::io::Write;
    if name.ends_with(".gz") {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    } else if name.ends_with(".zst") {
        zstd::stream::encode_all(text.as_bytes(), 1).unwrap()
    } else {
        text.as_bytes().to_vec()
    }
}

/// The decompressed text of the file `path`, by its extension.
fn decompressed(path: &Path) -> String {
    use std::io::Read;
    let bytes = std::fs::read(path).unwrap();
    let name = path.to_string_lossy();
    let bytes = if name.ends_with(".gz") {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .unwrap();
        text
    } else if name.ends_with(".zst") {
        zstd::stream::decode_all(&bytes[..]).unwrap()
    } else {
        bytes
    };
    String::from_utf8(bytes).unwrap()
}

/// Killed with SIGKILL at a point, then run again (recovery) or restarted: the output is
/// exact, for plain files and for compressed ones (a `.gz` input read again up to its
/// saved place, a `.gz`/`.zst` output cut back to its last committed member).
#[test]
fn kill_9_then_run_again_or_restart_gives_exact_output() {
    let rows = 60_000;
    let (input_text, expected) = make_input(rows);
    for (round, kill_after, input_name, output_name) in [
        (0, 1u64, "in.csv", "out.csv"),
        (1, 15_000, "in.csv", "out.csv"),
        (2, 35_000, "in.csv", "out.csv"),
        (3, 20_000, "in.csv.gz", "out.csv.gz"),
        (4, 25_000, "in.csv.gz", "out.csv.zst"),
    ] {
        let env = Env::new();
        let input = env.path(input_name);
        std::fs::write(&input, compress_as(input_name, &input_text)).unwrap();
        let output = env.path(output_name);
        let job = copy_job(&env, &input, &output, 10);
        let mut child = env
            .command(&["run", job.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reached = wait_for_writes(&env, kill_after, &mut child);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(
            reached,
            "round {round}: the job ended before the kill point"
        );
        let json = env.executions();
        assert_eq!(
            json[0]["status"], "STARTED",
            "round {round}: left STARTED by the kill"
        );
        let id = json[0]["id"].as_i64().unwrap().to_string();

        let resumed = if round % 2 == 1 {
            env.run(&["restart", &id])
        } else {
            env.run(&["run", job.to_str().unwrap()])
        };
        assert_eq!(
            resumed.status.code(),
            Some(0),
            "round {round}: {}",
            stderr(&resumed)
        );
        if round % 2 == 0 {
            assert!(
                stderr(&resumed).contains("process that is gone"),
                "round {round}: recovery is logged: {}",
                stderr(&resumed)
            );
        }
        let written = decompressed(&output);
        assert!(
            written == expected,
            "round {round}: output differs from the expected file (lines: {} vs {})",
            written.lines().count(),
            expected.lines().count()
        );
        let json = env.executions();
        assert_eq!(json[0]["status"], "COMPLETED");
        assert_eq!(json[1]["status"], "FAILED");
        let total: u64 = json
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["steps"][0]["write_count"].as_u64().unwrap())
            .sum();
        assert_eq!(total, rows as u64, "round {round}: committed writes add up");
    }
}

#[test]
fn second_launch_of_a_running_instance_is_refused_and_stop_works() {
    let env = Env::new();
    let job = env.write(
        "slow.yaml",
        r#"id: slow
steps:
  - name: wait
    tasklet:
      type: shell
      properties:
        command: sleep
        args: ["30"]
"#,
    );
    let child = env
        .command(&["run", job.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        assert!(Instant::now() < deadline, "job never started");
        // Until the job has created the repository, `executions` says there is none (exit 2).
        let out = env.run(&["executions", "--json"]);
        if out.status.code() == Some(0) {
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if json[0]["status"] == "STARTED" {
                break json[0]["id"].as_i64().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let second = env.run(&["run", job.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(4), "already running");
    assert!(
        stderr(&second).contains(&format!("already running (execution {id}")),
        "{}",
        stderr(&second)
    );
    let restart = env.run(&["restart", &id.to_string()]);
    assert_eq!(restart.status.code(), Some(4), "{}", stderr(&restart));
    assert!(
        stderr(&restart).contains("is still running"),
        "{}",
        stderr(&restart)
    );
    let stop = env.run(&["stop", &id.to_string()]);
    assert_eq!(stop.status.code(), Some(0), "{}", stderr(&stop));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "stopped: {}", stderr(&out));
    let json = env.executions();
    assert_eq!(json[0]["status"], "STOPPED");
}

#[test]
fn bad_job_files_are_usage_errors_naming_file_and_line() {
    let env = Env::new();
    let malformed = env.write("malformed.yaml", "id: x\nsteps:\n  - name: [unclosed\n");
    let out = env.run(&["run", malformed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("malformed.yaml"), "{}", stderr(&out));

    let unknown = env.write(
        "unknown.yaml",
        "id: x\nsteps:\n  - name: a\n    tasklet:\n      type: log\n    colour: blue\n",
    );
    let out = env.run(&["validate", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown.yaml:6"), "{err}");
    assert!(err.contains("colour"), "{err}");

    let out = env.run(&["run", env.path("missing.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.yaml"), "{}", stderr(&out));

    // Nothing was recorded for files that never ran: not even the repository was created.
    assert!(!env.path("ikkatsu.db").exists());
}

#[test]
fn missing_input_and_unwritable_output_fail_with_the_path() {
    let env = Env::new();
    let job = copy_job(&env, &env.path("nope.csv"), &env.path("out.csv"), 10);
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(format!("{}{}", stdout(&out), stderr(&out)).contains("nope.csv"));

    let (input_text, _) = make_input(10);
    let input = env.write("in.csv", &input_text);
    let blocker = env.write("file-not-dir", "x");
    let job = copy_job(&env, &input, &blocker.join("out.csv"), 10);
    let out = env.run(&["run", job.to_str().unwrap(), "-p", "attempt=2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(format!("{}{}", stdout(&out), stderr(&out)).contains("file-not-dir"));
}

#[test]
fn status_abandon_and_recover() {
    let env = Env::new();
    let (input_text, _) = make_input(5);
    let input = env.write("in.csv", &input_text);
    let job = copy_job(&env, &input, &env.path("out.csv"), 2);
    let out = env.run(&["run", job.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "COMPLETED");
    assert_eq!(json["steps"][0]["commit_count"], 3);
    let id = json["id"].as_i64().unwrap().to_string();
    let status = env.run(&["status", &id, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["job"], "copy");
    assert_eq!(status["steps"][0]["read_count"], 5);
    let abandon = env.run(&["abandon", &id]);
    assert_eq!(
        abandon.status.code(),
        Some(2),
        "a completed execution cannot be abandoned"
    );
    let recover = env.run(&["recover"]);
    assert_eq!(recover.status.code(), Some(0));
    assert!(stdout(&recover).contains("no running execution"));
    let missing = env.run(&["status", "999"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("999"));
}
