//! Where the logs go and what they show: colours only on a terminal and never with
//! NO_COLOR, `-v`/`-q`, `--log` over `RUST_LOG`, `--log-file` (secrets redacted there too).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");
const ESC: &str = "\u{1b}[";

/// A folder with the examples, where the quickstart job runs.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&examples)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// `ikkatsu ARGS run examples/quickstart.yaml --no-progress` in `dir`, without the
/// logging variables of the environment this test runs in.
fn quickstart(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["run", "examples/quickstart.yaml", "--no-progress"])
        .current_dir(dir)
        .env_remove("IKKATSU_LOG")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("IKKATSU_COLOR")
        .env_remove("IKKATSU_LOG_FILE")
        .env_remove("IKKATSU_REPOSITORY")
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (out, stderr)
}

#[test]
fn no_colours_in_a_pipe_unless_asked() {
    let dir = folder();
    let (_, piped) = run(quickstart(dir.path(), &[]));
    assert!(
        piped.contains("INFO") && piped.contains("job started"),
        "{piped}"
    );
    assert!(!piped.contains(ESC), "escape codes in a pipe: {piped:?}");
    let (_, always) = run(quickstart(dir.path(), &["--color", "always"]));
    assert!(always.contains(ESC), "{always:?}");
    let mut cmd = quickstart(dir.path(), &[]);
    cmd.env("IKKATSU_COLOR", "never");
    let (_, never) = run(cmd);
    assert!(!never.contains(ESC), "{never:?}");
}

/// On a terminal (made by `script`), colours unless NO_COLOR is set.
#[test]
fn colours_on_a_terminal_unless_no_color() {
    let dir = folder();
    let on_terminal = |no_color: Option<&str>| {
        let line = format!(
            "{BIN} run examples/quickstart.yaml --no-progress --repository sqlite://tty.db"
        );
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
            .current_dir(dir.path())
            .env_remove("IKKATSU_LOG")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("IKKATSU_COLOR")
            .stdin(Stdio::null());
        if let Some(value) = no_color {
            cmd.env("NO_COLOR", value);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.contains("job started"), "{text}");
        text
    };
    assert!(on_terminal(None).contains(ESC), "no colours on a terminal");
    let plain = on_terminal(Some("1"));
    assert!(!plain.contains(ESC), "colours despite NO_COLOR: {plain:?}");
    // NO_COLOR set to nothing does not count (https://no-color.org).
    assert!(on_terminal(Some("")).contains(ESC));
}

#[test]
fn verbose_quiet_log_and_rust_log() {
    let dir = folder();
    let (_, default) = run(quickstart(dir.path(), &[]));
    assert!(
        default.contains("INFO") && !default.contains("DEBUG"),
        "{default}"
    );
    let (_, verbose) = run(quickstart(dir.path(), &["-v"]));
    assert!(verbose.contains("DEBUG"), "{verbose}");
    let (_, quiet) = run(quickstart(dir.path(), &["-q"]));
    assert!(!quiet.contains("INFO"), "{quiet}");
    let mut cmd = quickstart(dir.path(), &[]);
    cmd.env("RUST_LOG", "debug");
    let (_, rust_log) = run(cmd);
    assert!(
        rust_log.contains("DEBUG"),
        "RUST_LOG is honoured: {rust_log}"
    );
    let mut cmd = quickstart(dir.path(), &["--log", "warn"]);
    cmd.env("RUST_LOG", "debug");
    let (_, log) = run(cmd);
    assert!(
        !log.contains("DEBUG") && !log.contains("INFO"),
        "--log wins: {log}"
    );
    let out = quickstart(dir.path(), &["-v", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "-v and -q conflict");
}

#[test]
fn log_file_takes_the_logs_with_secrets_redacted() {
    let dir = folder();
    let file: PathBuf = dir.path().join("logs/ikkatsu.log");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let cmd = quickstart(
        dir.path(),
        &["--log-file", file.to_str().unwrap(), "--color", "auto"],
    );
    let mut cmd = cmd;
    cmd.args(["-p", "api-password=hunter2-secret"]);
    let (_, stderr) = run(cmd);
    assert!(!stderr.contains("job started"), "{stderr}");
    let logged = std::fs::read_to_string(&file).unwrap();
    assert!(logged.contains("job started"), "{logged}");
    assert!(!logged.contains(ESC), "{logged:?}");
    assert!(!logged.contains("hunter2-secret"), "{logged}");
    assert!(logged.contains("***"), "{logged}");
    // A second run appends.
    let mut again = quickstart(dir.path(), &["--log-file", file.to_str().unwrap()]);
    again.env("IKKATSU_REPOSITORY", "sqlite://again.db");
    run(again);
    let twice = std::fs::read_to_string(&file).unwrap();
    assert_eq!(twice.matches("job started").count(), 2, "{twice}");
    // A log file that cannot be opened is a usage error naming it.
    let out = quickstart(dir.path(), &["--log-file", "/nonexistent/dir/x.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/x.log"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `log` listener type writes job and step events to the log.
#[test]
fn the_log_listener_writes_job_and_step_events() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "id: logged\nlisteners: [ { type: log } ]\nsteps:\n  - name: only\n    tasklet: { type: noop }\n    listeners: [ { type: log, properties: { level: warn, events: [step-ended] } } ]\n",
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "job.yaml", "--no-progress"])
        .current_dir(dir.path())
        .env_remove("IKKATSU_LOG")
        .env_remove("RUST_LOG")
        .env_remove("IKKATSU_REPOSITORY")
        .stdin(Stdio::null());
    let (_, stderr) = run(cmd);
    assert!(
        stderr.contains("job `logged` started (execution 1)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("step `only` of job `logged` ended COMPLETED with exit code COMPLETED"),
        "{stderr}"
    );
    assert!(
        stderr.contains("job `logged` ended COMPLETED with exit code COMPLETED"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("step `only` of job `logged` started"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ms of CPU,")
            && stderr.contains("MiB resident,")
            && stderr.contains("open files)"),
        "{stderr}"
    );
}
