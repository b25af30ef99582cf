//! The `ikkatsu overwrite` runs of the marker tests and the search of their state
//! directories.

use std::path::Path;
use std::process::{Command, Output};

use super::{Env, assert_no_marker, text};

/// `ikkatsu overwrite SOURCE` (into `target` if given) with the status store `status` and
/// the state directory `state`, in a namespace of its own.
pub fn overwrite(
    env: &mut Env,
    source: &str,
    target: Option<&str>,
    status: &str,
    state: &Path,
) -> Output {
    let args = overwrite_args(source, target, status, state);
    env.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

fn overwrite_args(source: &str, target: Option<&str>, status: &str, state: &Path) -> Vec<String> {
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let namespace = format!(
        "secrets-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let state = state.display().to_string();
    let mut args = vec![
        "--log",
        "trace",
        "overwrite",
        source,
        "--include",
        "*",
        "--exec",
        "cp {in} {out}",
        "--status-store",
        status,
        "--namespace",
        &namespace,
        "--state-dir",
        &state,
        "--retries",
        "0",
        "--no-progress",
    ];
    if let Some(target) = target {
        args.extend(["--target", target]);
    }
    args.into_iter().map(str::to_string).collect()
}

/// An overwrite of the local `tree` in place, with the status store `status`, caught while
/// its file is in flight (the command waits for a gate): its state directory, journal entry
/// included, is searched then, and again once the run has finished.
pub fn overwrite_in_flight(env: &mut Env, tree: &str, status: &str) -> Vec<(String, String)> {
    let started = env.path("in-flight-started");
    let release = env.path("in-flight-release");
    let state = env.path("state-in-flight");
    let log = env.path("in-flight.log");
    let mut args = overwrite_args(tree, None, status, &state);
    let exec = args.iter().position(|arg| arg == "--exec").unwrap() + 1;
    args[exec] = format!(
        "touch '{}' && while [ ! -e '{}' ]; do sleep 0.05; done && cp {{in}} {{out}}",
        started.display(),
        release.display()
    );
    args.push("--shell".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // (The log goes to a file: a pipe nobody reads while the run waits could fill up.)
    let output = std::fs::File::create(&log).unwrap();
    let mut child = env
        .command(&args, &[])
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended first ({status}): {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut files = state_without_marker(&state);
    std::fs::write(&release, "").unwrap();
    let status = child.wait().unwrap();
    let printed = std::fs::read_to_string(&log).unwrap();
    env.record(&printed);
    assert!(status.success(), "{printed}");
    assert!(
        files
            .iter()
            .any(|(path, content)| path.contains("/journal/") && content.contains("\"a.txt\"")),
        "the journal holds the file in flight: {files:?}"
    );
    files.extend(state_without_marker(&state));
    files
}

/// Every file under the state directory `dir` (lock, backlog, failures, journal, work
/// directory) with its text, a gzip file unpacked; asserts that none holds a marker. (A run
/// refused before it took its state directory leaves none.)
pub fn state_without_marker(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    if !dir.exists() {
        return files;
    }
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
                let out = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
                assert!(
                    out.status.success(),
                    "gunzip {}: {}",
                    path.display(),
                    text(&out)
                );
                out.stdout
            } else {
                bytes
            };
            let (path, content) = (
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
            assert_no_marker(&path, &content);
            files.push((path, content));
        }
    }
    files
}
