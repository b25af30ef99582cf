//! Overlapping and killed `ikkatsu overwrite` runs on one tree, on every status store: the
//! embedded redb file (the default), PostgreSQL, MariaDB/MySQL, Redis and a Redis Cluster
//! (the servers named by `IKKATSU_TEST_POSTGRES_URL`, `IKKATSU_TEST_MYSQL_URL`,
//! `IKKATSU_TEST_REDIS_URL` and `IKKATSU_TEST_REDIS_CLUSTER_URL`, defaults: the loopback
//! servers and the cluster of `scripts/redis-cluster`). A second run while one is running is refused with exit
//! code 4 naming the holder; a killed run's lease is taken over and its temporary files
//! removed; every file is transformed exactly once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

fn ikkatsu(dir: &Path, args: &[String]) -> Command {
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

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// The status stores under test: `None` is the default embedded store.
fn stores() -> Vec<(&'static str, Option<String>)> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    vec![
        ("redb", None),
        (
            "postgres",
            Some(var(
                "IKKATSU_TEST_POSTGRES_URL",
                "postgres://root@127.0.0.1:5432/test",
            )),
        ),
        (
            "mysql",
            Some(var(
                "IKKATSU_TEST_MYSQL_URL",
                "mysql://root@127.0.0.1:3306/test",
            )),
        ),
        (
            "redis",
            Some(var("IKKATSU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")),
        ),
        (
            "redis-cluster",
            Some(var(
                "IKKATSU_TEST_REDIS_CLUSTER_URL",
                "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103/",
            )),
        ),
    ]
}

/// `files` text files under `root/d*/`, each `line N`.
fn make_tree(root: &Path, files: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("f{i:03}.txt"));
        std::fs::write(&path, format!("line {i}\n")).unwrap();
        out.push(path);
    }
    out
}

/// The arguments of a run whose command appends a line to each file and the file's path
/// to `log`, then waits `sleep` seconds.
fn args(
    store: &Option<String>,
    namespace: &str,
    log: &Path,
    sleep: &str,
    extra: &[&str],
) -> Vec<String> {
    let exec = format!(
        "cat {{in}} > {{out}} && echo processed >> {{out}} && echo {{in}} >> '{}' && sleep {sleep}",
        log.display()
    );
    let mut out: Vec<String> = [
        "overwrite",
        "data",
        "--include",
        "*.txt",
        "--exec",
        &exec,
        "--shell",
        "--concurrency",
        "2",
        "--namespace",
        namespace,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(url) = store {
        out.push("--status-store".into());
        out.push(url.clone());
    }
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Every file transformed exactly once (its content, and the log of the command's runs),
/// and no temporary file left in the tree.
fn assert_exactly_once(label: &str, root: &Path, files: &[PathBuf], log: &Path) {
    let lines = log_lines(log);
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            text.matches("processed").count(),
            1,
            "{label}: {} transformed exactly once: {text:?}",
            path.display()
        );
        let name = path.file_name().unwrap().to_str().unwrap();
        let runs = lines.iter().filter(|l| l.ends_with(name)).count();
        assert_eq!(runs, 1, "{label}: the command ran once on {name}");
    }
    assert_eq!(
        lines.len(),
        files.len(),
        "{label}: one command run per file"
    );
    assert_no_temp_files(label, root);
}

fn assert_no_temp_files(label: &str, root: &Path) {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                assert!(
                    !path.to_string_lossy().ends_with(".tmp"),
                    "{label}: temporary file left: {}",
                    path.display()
                );
            }
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Two runs on one tree and one status store, the second started while the first works:
/// the second is refused (exit 4) naming the first's host and pid and its last heartbeat,
/// whether it shares the first's state directory or has its own; the first finishes with
/// every file transformed exactly once and no temporary file left.
#[test]
fn overlapping_runs_second_is_refused_on_every_status_store() {
    let host = host_name();
    for (label, store) in stores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let files = make_tree(&root, 40);
        let log = dir.path().join("runs.log");
        let namespace = unique("overlap");
        let first_args = args(&store, &namespace, &log, "0.05", &[]);
        let first = spawn(&mut ikkatsu(dir.path(), &first_args));
        let pid = first.id();
        wait_for(
            "the first run to process a file",
            Duration::from_secs(60),
            || !log_lines(&log).is_empty(),
        );
        for extra in [&[][..], &["--state-dir", "other-state"][..]] {
            let second = ikkatsu(dir.path(), &args(&store, &namespace, &log, "0", extra))
                .output()
                .unwrap();
            let all = text(&second);
            assert_eq!(second.status.code(), Some(4), "{label} {extra:?}: {all}");
            assert!(all.contains("already running"), "{label} {extra:?}: {all}");
            assert!(
                all.contains(&format!("host {host} pid {pid}")),
                "{label} {extra:?}: {all}"
            );
            if store.is_some() && !extra.is_empty() {
                assert!(all.contains("heartbeat last seen"), "{label}: {all}");
            }
        }
        let out = first.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{label}: {}", text(&out));
        assert_exactly_once(label, &root, &files, &log);
    }
}

/// A run killed with `kill -9` leaves its lease (and, beside files of the tree, temporary
/// files named with its pid): the next run takes the lease over (its holder's process is
/// gone), removes the killed run's temporary files but not those of a live process,
/// resolves its journal, and finishes the work, each file transformed exactly once.
#[test]
fn killed_run_lease_is_taken_over_and_its_temp_files_removed_on_every_status_store() {
    for (label, store) in stores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let files = make_tree(&root, 40);
        let log = dir.path().join("runs.log");
        let namespace = unique("killed");
        let run_args = args(&store, &namespace, &log, "0.05", &[]);
        let mut killed = ikkatsu(dir.path(), &run_args);
        let killed_pid = std::cell::Cell::new(0u32);
        // The pid is only known once spawned: read it from the lock file of the state dir.
        let state = dir.path().join(".ikkatsu/overwrite").join(&namespace);
        let reached = common::kill_9_when(
            &mut killed,
            Duration::from_secs(60),
            Duration::from_millis(5),
            || {
                if let Ok(lock) = std::fs::read_to_string(state.join("lock"))
                    && let Some(pid) = lock.split_whitespace().nth(3)
                {
                    killed_pid.set(pid.parse().unwrap_or(0));
                }
                log_lines(&log).len() >= 10
            },
        );
        assert!(reached, "{label}: the run ended before the kill point");
        let dead = killed_pid.get();
        assert_ne!(dead, 0, "{label}: the lock file names the run");
        // What a killed run leaves beside a file it was replacing, and a temporary file of
        // a live process (this test), which must stay.
        let dead_temp = root.join(format!("d0/.f000.txt.ikkatsu-{dead}-7.tmp"));
        std::fs::write(&dead_temp, "half").unwrap();
        let live_temp = root.join(format!("d1/.f001.txt.ikkatsu-{}-7.tmp", std::process::id()));
        std::fs::write(&live_temp, "live").unwrap();

        let next = ikkatsu(dir.path(), &run_args).output().unwrap();
        let all = text(&next);
        assert_eq!(next.status.code(), Some(0), "{label}: {all}");
        assert!(all.contains("took over the run lease"), "{label}: {all}");
        assert!(all.contains(&format!("pid {dead}")), "{label}: {all}");
        assert!(
            !dead_temp.exists(),
            "{label}: the killed run's temporary file is removed"
        );
        assert!(
            live_temp.exists(),
            "{label}: a live process's temporary file stays"
        );
        std::fs::remove_file(&live_temp).unwrap();
        // The log may hold runs of files the killed run had begun but not finished: what
        // counts is that every file holds its line once, and ran at most twice.
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            assert_eq!(text.matches("processed").count(), 1, "{label}: {text:?}");
        }
        assert_no_temp_files(label, &root);
        common::assert_nothing_in_flight(dir.path());
    }
}

/// A run killed with `kill -9` in its own state directory, followed by a run with another
/// one: the next run takes over the lease, resolves the killed run's journal there and
/// removes its work directory, and every file holds its line exactly once.
#[test]
fn killed_run_with_its_own_state_directory_is_resolved_by_the_next_run() {
    for (label, store) in stores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let files = make_tree(&root, 40);
        let log = dir.path().join("runs.log");
        let namespace = unique("own-state");
        let killed_state = dir.path().join("state-killed");
        let state_arg = killed_state.display().to_string();
        let killed_args = args(
            &store,
            &namespace,
            &log,
            "0.05",
            &["--state-dir", &state_arg],
        );
        let reached = common::kill_9_when(
            &mut ikkatsu(dir.path(), &killed_args),
            Duration::from_secs(60),
            Duration::from_millis(5),
            || log_lines(&log).len() >= 10,
        );
        assert!(reached, "{label}: the run ended before the kill point");
        let journal = killed_state.join("journal");
        assert!(
            std::fs::read_dir(&journal).unwrap().count() > 0,
            "{label}: the killed run left its journal"
        );
        let next_args = args(
            &store,
            &namespace,
            &log,
            "0",
            &["--state-dir", "state-next"],
        );
        let next = ikkatsu(dir.path(), &next_args).output().unwrap();
        let all = text(&next);
        assert_eq!(next.status.code(), Some(0), "{label}: {all}");
        assert!(all.contains("took over the run lease"), "{label}: {all}");
        assert_eq!(
            std::fs::read_dir(&journal).unwrap().count(),
            0,
            "{label}: the killed run's journal is resolved"
        );
        assert!(
            !killed_state.join("work").exists(),
            "{label}: its work directory is removed"
        );
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            assert_eq!(text.matches("processed").count(), 1, "{label}: {text:?}");
        }
        assert_no_temp_files(label, &root);
    }
}

/// `ikkatsu run` of a job whose overwrite step finds its flow already running exits 4,
/// like a refused `ikkatsu overwrite`.
#[test]
fn overwrite_step_of_a_job_refused_while_the_flow_runs_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    make_tree(&root, 20);
    let log = dir.path().join("runs.log");
    let postgres = stores().remove(1).1;
    let namespace = unique("step");
    let first = spawn(&mut ikkatsu(
        dir.path(),
        &args(&postgres, &namespace, &log, "0.1", &[]),
    ));
    wait_for("the run to process a file", Duration::from_secs(60), || {
        !log_lines(&log).is_empty()
    });
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "id: overlap\nsteps:\n  - name: transform\n    tasklet:\n      type: overwrite\n      properties:\n        source: {}\n        include: [\"*.txt\"]\n        exec: \"cp {{in}} {{out}}\"\n        status-store: {}\n        namespace: {namespace}\n        state-dir: {}\n",
            root.display(),
            postgres.as_deref().unwrap_or_default(),
            dir.path().join("job-state").display()
        ),
    )
    .unwrap();
    let out = ikkatsu(dir.path(), &["run".to_string(), job.display().to_string()])
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    assert!(all.contains("already running"), "{all}");
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
}

/// Three `--cooperate` runs on one tree and one status store, each with its own state
/// directory, one of them `kill -9`'d mid-run, then a final run: the runs split the work,
/// every file is transformed exactly once and no temporary file or journal entry is left.
/// On PostgreSQL, MySQL, Redis and a Redis Cluster (the stores that can claim files).
#[test]
fn cooperating_runs_split_the_work_and_survive_a_kill_9() {
    for (label, store) in stores().into_iter().filter(|(_, s)| s.is_some()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let files = make_tree(&root, 150);
        let namespace = unique("coop");
        // Each run logs the files it ran the command on in a log of its own.
        let log = |state: &str| dir.path().join(format!("{state}.log"));
        let run = |state: &str, sleep: &str| {
            args(
                &store,
                &namespace,
                &log(state),
                sleep,
                &["--cooperate", "--json", "--state-dir", state],
            )
        };
        let first = spawn(&mut ikkatsu(dir.path(), &run("state-a", "0.05")));
        let second = spawn(&mut ikkatsu(dir.path(), &run("state-b", "0.05")));
        let mut third = spawn(&mut ikkatsu(dir.path(), &run("state-c", "0.05")));
        wait_for(
            "every run to process files",
            Duration::from_secs(60),
            || {
                ["state-a", "state-b", "state-c"]
                    .iter()
                    .all(|state| log_lines(&log(state)).len() >= 2)
            },
        );
        third.kill().unwrap();
        third.wait().unwrap();
        let mut done = Vec::new();
        for child in [first, second] {
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{label}: {}", text(&out));
            let json: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|err| panic!("{label}: {err}: {}", text(&out)));
            done.push(json["process"]["progress"]["done"].as_u64().unwrap());
        }
        assert!(
            done.iter().all(|&n| n > 0),
            "{label}: both runs did work: {done:?}"
        );
        assert!(
            done.iter().sum::<u64>() < 150,
            "{label}: the killed run's claims were left to the final run: {done:?}"
        );
        let last = ikkatsu(dir.path(), &run("state-d", "0")).output().unwrap();
        assert_eq!(last.status.code(), Some(0), "{label}: {}", text(&last));
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            assert_eq!(
                text.matches("processed").count(),
                1,
                "{label}: {} transformed exactly once: {text:?}",
                path.display()
            );
        }
        assert_no_temp_files(label, &root);
        for state in ["state-a", "state-b", "state-c", "state-d"] {
            let journal = dir.path().join(state).join("journal");
            assert_eq!(
                std::fs::read_dir(&journal).unwrap().count(),
                0,
                "{label}: {state}'s journal is resolved"
            );
            assert!(
                !dir.path().join(state).join("work").exists(),
                "{label}: {state}"
            );
        }
    }
}
