//! `ikkatsu overwrite` end to end: real processes, a local tree, the embedded status store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// Appends a line: a file transformed twice would show it twice.
const APPEND: &str = "cat {in} > {out} && echo processed >> {out}";

fn ikkatsu(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", dir.join("ikkatsu.db").display()),
        )
        .env_remove("IKKATSU_STATUS_STORE")
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = ikkatsu(dir, args).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("panicked"), "{all}");
    out
}

fn make_tree(root: &Path, files: usize) -> Vec<PathBuf> {
    let mut matching = Vec::new();
    for i in 0..files {
        let dir = root
            .join(format!("d{}", i % 7))
            .join(format!("e {}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("ファイル {i}.txt"));
        std::fs::write(&path, format!("line {i}\n")).unwrap();
        matching.push(path);
        std::fs::write(dir.join(format!("other {i}.dat")), "keep\n").unwrap();
    }
    matching
}

fn processed_count(files: &[PathBuf]) -> usize {
    files
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.contains("processed"))
                .unwrap_or(false)
        })
        .count()
}

fn assert_exactly_once(root: &Path, files: &[PathBuf]) {
    for (i, path) in files.iter().enumerate() {
        let _ = i;
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            text.matches("processed").count(),
            1,
            "{} transformed exactly once: {text:?}",
            path.display()
        );
    }
    for entry in walk(root) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp"),
            "temporary file left: {}",
            entry.display()
        );
        if name.ends_with(".dat") {
            assert_eq!(std::fs::read_to_string(&entry).unwrap(), "keep\n");
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn overwrite_twice_then_touch_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let files = make_tree(&root, 30);
    let args = [
        "overwrite",
        "data",
        "--include",
        "*.txt",
        "--exec",
        APPEND,
        "--shell",
        "--json",
    ];
    let out = run(dir.path(), &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["scan"]["matched"], 30);
    assert_eq!(json["process"]["progress"]["done"], 30);
    assert_exactly_once(&root, &files);
    assert!(
        dir.path().join("ikkatsu-status.redb").exists(),
        "embedded store beside the repository"
    );

    let out = run(dir.path(), &args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["scan"]["queued"], 0, "a second run does nothing");
    assert_exactly_once(&root, &files);

    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&files[4], "rewritten\n").unwrap();
    let out = run(dir.path(), &args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["scan"]["queued"], 1);
    assert_eq!(
        std::fs::read_to_string(&files[4]).unwrap(),
        "rewritten\nprocessed\n"
    );
    assert_exactly_once(&root, &files);
}

#[test]
fn failures_are_reported_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    make_tree(&root, 6);
    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--include",
            "*.txt",
            "--exec",
            "grep -q 'line 3' {in} && exit 9; cp {in} {out}",
            "--shell",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("5 done"), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(stdout.contains("ファイル 3.txt"), "{stdout}");
    assert!(stdout.contains("code 9"), "{stdout}");

    let bad = run(dir.path(), &["overwrite", "data", "--exec", "cp {in}"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("{out}"));
    let bad = run(
        dir.path(),
        &["overwrite", "nowhere", "--exec", "cp {in} {out}"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nowhere"));
}

/// Runs the overwrite of a tree of `total` files with `exec`, kills it with SIGKILL once
/// `kill_after` files are processed (for each kill point, on a fresh tree), resumes it, and
/// checks that every file was transformed exactly once and nothing is left in flight.
fn kill_9_then_resume(
    total: usize,
    kill_points: &[usize],
    exec: &str,
    concurrency: &str,
    timeout: Duration,
    poll: Duration,
) {
    for &kill_after in kill_points {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let files = make_tree(&root, total);
        let args = [
            "overwrite",
            "data",
            "--include",
            "*.txt",
            "--exec",
            exec,
            "--shell",
            "--concurrency",
            concurrency,
        ];
        let reached = common::kill_9_when(&mut ikkatsu(dir.path(), &args), timeout, poll, || {
            processed_count(&files) >= kill_after
        });
        assert!(reached, "kill point {kill_after}: the run ended first");
        let resumed = run(dir.path(), &args);
        assert_eq!(
            resumed.status.code(),
            Some(0),
            "kill point {kill_after}: {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_exactly_once(&root, &files);
        assert_eq!(processed_count(&files), total);
        common::assert_nothing_in_flight(dir.path());
    }
}

#[test]
fn kill_9_during_processing_then_resume_transforms_each_file_once() {
    kill_9_then_resume(
        120,
        &[1, 40, 90],
        "cat {in} > {out} && sleep 0.05 && echo processed >> {out}",
        "4",
        Duration::from_secs(60),
        Duration::from_millis(5),
    );
}

/// Kills land while groups of files are being flushed, replaced and recorded (a fast
/// command, many files, several groups in flight): the resumed run still transforms each
/// file exactly once and leaves no temporary file or journal entry.
#[test]
fn kill_9_during_group_commits_then_resume_transforms_each_file_once() {
    kill_9_then_resume(
        1500,
        &[100, 500, 900],
        APPEND,
        "8",
        Duration::from_secs(120),
        Duration::from_millis(2),
    );
}

#[test]
fn overwrite_step_in_a_yaml_job() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("archive")).unwrap();
    std::fs::write(data.join("a.csv"), "x,y\r\n1,2\r\n").unwrap();
    std::fs::write(data.join("archive/old.csv"), "x\r\n").unwrap();
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/b.csv"), "b\r\n").unwrap();
    std::fs::write(data.join("notes.txt"), "n\r\n").unwrap();
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/overwrite.yaml");
    let param = format!("dir={}", data.display());
    let args = ["run", job.to_str().unwrap(), "-p", &param, "--json"];
    let out = run(dir.path(), &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["steps"][0]["name"], "demo-data");
    assert_eq!(json["steps"][1]["read_count"], 2);
    assert_eq!(json["steps"][1]["write_count"], 2);
    assert_eq!(json["steps"][2]["name"], "report");
    assert_eq!(
        std::fs::read_to_string(data.join("a.csv")).unwrap(),
        "x,y\n1,2\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("sub/b.csv")).unwrap(),
        "b\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("archive/old.csv")).unwrap(),
        "x\r\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("notes.txt")).unwrap(),
        "n\r\n"
    );

    // The next run (a new instance) finds nothing left to do.
    let out = run(dir.path(), &args);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["steps"][1]["read_count"], 0);
    assert_eq!(json["steps"][1]["write_count"], 0);
}

#[test]
fn named_storages_and_status_stores_from_the_application_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    let files = make_tree(&root, 3);
    std::fs::write(
        dir.path().join("ikkatsu-config.yaml"),
        format!(
            "repository: sqlite://{}\nstorages:\n  inbox: file://{}\nstatus-stores:\n  local: {}\n",
            dir.path().join("jobs.db").display(),
            root.display(),
            dir.path().join("named.redb").display()
        ),
    )
    .unwrap();
    let mut cmd = ikkatsu(
        dir.path(),
        &[
            "overwrite",
            "@inbox",
            "--include",
            "*.txt",
            "--status-store",
            "@local",
            "--exec",
            APPEND,
            "--shell",
        ],
    );
    let out = cmd.env_remove("IKKATSU_REPOSITORY").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&root, &files);
    assert!(dir.path().join("named.redb").exists());

    let out = ikkatsu(
        dir.path(),
        &["overwrite", "@outbox", "--exec", "cp {in} {out}"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("@outbox") && err.contains("inbox"), "{err}");

    std::fs::write(
        dir.path().join("ikkatsu-config.yaml"),
        "storages:\n  x: 1\nbogus: 2\n",
    )
    .unwrap();
    let out = ikkatsu(dir.path(), &["executions"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ikkatsu-config.yaml:3"), "{err}");
}

#[test]
fn overwrite_step_resolves_named_storages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    let files = make_tree(&root, 2);
    std::fs::write(
        dir.path().join("ikkatsu-config.yaml"),
        format!("storages:\n  inbox: {}\n", root.display()),
    )
    .unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "id: named\nsteps:\n  - name: o\n    tasklet:\n      type: overwrite\n      properties:\n        source: \"@inbox\"\n        include: [\"*.txt\"]\n        exec: \"{APPEND}\"\n        shell: true\n"
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["run", job.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&root, &files);
}

/// The status store is `--status-store` (`executions --status` is a batch status); the old
/// flag and the old job-file property are refused, naming the new name, and nothing runs.
#[test]
fn the_status_store_option_is_status_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let files = make_tree(&root, 3);
    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--exec",
            APPEND,
            "--shell",
            "--status",
            "memory:",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--status-store"), "{err}");

    let job = dir.path().join("old.yaml");
    std::fs::write(
        &job,
        "id: old\nsteps:\n  - name: transform\n    tasklet:\n      type: overwrite\n      properties:\n        source: data\n        exec: \"cp {in} {out}\"\n        status: \"memory:\"\n",
    )
    .unwrap();
    for command in ["validate", "run"] {
        let out = run(dir.path(), &[command, "old.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("the property `status` is now `status-store`"),
            "{command}: {err}"
        );
    }
    assert_eq!(processed_count(&files), 0);

    let status = dir.path().join("named.redb");
    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--include",
            "*.txt",
            "--exec",
            APPEND,
            "--shell",
            "--status-store",
            status.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(processed_count(&files), 3);
    assert!(status.exists());
    assert!(!dir.path().join("ikkatsu-status.redb").exists());

    let out = ikkatsu(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--include",
            "*.txt",
            "--exec",
            APPEND,
            "--shell",
        ],
    )
    .env("IKKATSU_STATUS_STORE", status.to_str().unwrap())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_exactly_once(&root, &files);
    assert!(!dir.path().join("ikkatsu-status.redb").exists());
}
