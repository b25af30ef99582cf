//! [`ShellTasklet`]: runs an external command as a step.
//!
//! The program is started directly (no shell, so arguments arrive exactly as written,
//! spaces and `$` included) unless `shell: true`, which runs `command` through `sh -c` with
//! `args` as `$1`, `$2`, .... The child gets its own process group; on timeout or when the
//! job is stopped the whole group is killed. Every line the command prints is logged with
//! the step's name: stdout at `info`, stderr at `warn`.
//!
//! The exit code is mapped to the step's exit status with `exit-codes` (code or `"*"` →
//! exit status). Without a mapping, 0 is `COMPLETED` and anything else fails the step. A
//! mapping to `FAILED` fails the step; any other mapped value becomes the step's exit code
//! (for flow transitions) and the step completes.
//!
//! ```yaml
//! command: ./import.sh
//! args: ["--date", "2024-01-01"]
//! timeout: 5m
//! exit-codes: { 0: COMPLETED, 3: NO_DATA, "*": FAILED }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::{self, Visitor};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{
    Error, ErrorKind, ExitStatus, RepeatStatus, Result, StepContext, StepExecution, Tasklet,
};

/// How many trailing stderr lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 20;
/// How long to wait for the output pipes to drain after the command exited (a background
/// grandchild may keep them open).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A key of the `exit-codes` map: an exit code, or `*` for any other code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitCodeKey {
    /// One exit code.
    Code(i32),
    /// Any code without its own entry.
    Any,
}

impl<'de> Deserialize<'de> for ExitCodeKey {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = ExitCodeKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exit code (integer) or \"*\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                i32::try_from(v)
                    .map(ExitCodeKey::Code)
                    .map_err(|_| E::custom(format!("exit code {v} is out of range")))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i32::try_from(v)
                    .map(ExitCodeKey::Code)
                    .map_err(|_| E::custom(format!("exit code {v} is out of range")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let v = v.trim();
                if v == "*" {
                    return Ok(ExitCodeKey::Any);
                }
                v.parse().map(ExitCodeKey::Code).map_err(|_| {
                    E::custom(format!(
                        "`{v}` is not an exit code: use an integer or \"*\""
                    ))
                })
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

/// Properties of a shell tasklet (`shell` in job YAML).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShellTaskletConfig {
    /// The program to run (a name looked up on `PATH`, or a path); with `shell: true`, a
    /// shell command line.
    pub command: String,
    /// Arguments, passed as they are (no splitting, no expansion).
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables added to the inherited environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory (default: the current directory).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Kill the command (and its process group) and fail the step after this long:
    /// seconds (`90`) or a duration (`"30s"`, `"5m"`, `"1h30m"`). Default: no limit.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Run `command` through `sh -c` (default `false`: the program is started directly).
    #[serde(default)]
    pub shell: bool,
    /// Exit code (integer or `"*"`) → step exit status. Default: 0 → `COMPLETED`, anything
    /// else → `FAILED`.
    #[serde(default)]
    pub exit_codes: BTreeMap<ExitCodeKey, String>,
}

impl ShellTaskletConfig {
    /// A configuration running `command` with `args`, without a shell.
    pub fn new<I, S>(command: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ShellTaskletConfig {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            ..ShellTaskletConfig::default()
        }
    }
}

/// Runs an external command (see the [module docs](self)).
pub struct ShellTasklet {
    config: ShellTaskletConfig,
}

enum Outcome {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut(Duration),
    Cancelled,
}

impl ShellTasklet {
    /// A tasklet for `config`; an empty `command` is a configuration error.
    pub fn new(config: ShellTaskletConfig) -> Result<Self> {
        if config.command.trim().is_empty() {
            return Err(Error::config("shell tasklet: `command` is empty"));
        }
        for (key, status) in &config.exit_codes {
            if status.trim().is_empty() {
                return Err(Error::config(format!(
                    "shell tasklet `{}`: exit-codes entry {key:?} maps to an empty exit status",
                    config.command
                )));
            }
        }
        Ok(ShellTasklet { config })
    }

    /// The exit status a code maps to.
    fn map_code(&self, code: i32) -> String {
        self.config
            .exit_codes
            .get(&ExitCodeKey::Code(code))
            .or_else(|| self.config.exit_codes.get(&ExitCodeKey::Any))
            .cloned()
            .unwrap_or_else(|| {
                if code == 0 {
                    ExitStatus::COMPLETED.to_owned()
                } else {
                    ExitStatus::FAILED.to_owned()
                }
            })
    }

    fn command(&self) -> Command {
        let config = &self.config;
        let mut command = if config.shell {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(&config.command)
                .arg("sh")
                .args(&config.args);
            command
        } else {
            let mut command = Command::new(&config.command);
            command.args(&config.args);
            command
        };
        command
            .envs(&config.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(dir) = &config.working_dir {
            command.current_dir(dir);
        }
        command
    }
}

/// Logs every line of `stream` and returns the last [`STDERR_TAIL_LINES`] lines.
async fn pump(
    stream: Option<impl AsyncRead + Unpin>,
    step: String,
    stderr: bool,
) -> VecDeque<String> {
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let Some(stream) = stream else {
        return tail;
    };
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::with_capacity(256);
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buffer);
        let line = line.trim_end_matches(['\n', '\r']);
        if stderr {
            tracing::warn!(step = %step, stream = "stderr", "{line}");
        } else {
            tracing::info!(step = %step, stream = "stdout", "{line}");
        }
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_owned());
    }
    tail
}

/// Kills the process group led by `pid`.
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals the process group; it has no memory
    // effects. The child was started with process_group(0), so its pid is its group id.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

fn describe_tail(tail: &VecDeque<String>) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!("; last lines of stderr:\n{}", lines.join("\n"))
    }
}

#[async_trait]
impl Tasklet for ShellTasklet {
    async fn execute(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
    ) -> Result<RepeatStatus> {
        let step = execution.step_name.clone();
        let name = &self.config.command;
        if ctx.cancel.is_cancelled() {
            return Err(Error::new(
                ErrorKind::Cancelled,
                format!("step `{step}`: command `{name}` not started: the job is stopping"),
            ));
        }
        tracing::info!(step = %step, command = %name, args = ?self.config.args, shell = self.config.shell, "starting command");
        let mut child = self.command().spawn().map_err(|err| {
            Error::io(
                format_args!(
                    "step `{step}`: cannot start command `{name}` (check `command`{}, and \
                     `working-dir`)",
                    if self.config.shell {
                        ""
                    } else {
                        ": without `shell: true` it must be a program on PATH or a path"
                    }
                ),
                err,
            )
        })?;
        let pid = child.id();
        let stdout = tokio::spawn(pump(child.stdout.take(), step.clone(), false));
        let stderr = tokio::spawn(pump(child.stderr.take(), step.clone(), true));

        let timeout = self.config.timeout.map(HumanDuration::as_duration);
        let deadline = async {
            match timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            status = child.wait() => Outcome::Exited(status),
            () = deadline => Outcome::TimedOut(timeout.unwrap_or_default()),
            () = ctx.cancel.cancelled() => Outcome::Cancelled,
        };
        if !matches!(outcome, Outcome::Exited(_)) {
            kill_group(pid);
            // Also reaps the child.
            let _ = child.kill().await;
        }
        let (mut stdout, mut stderr) = (stdout, stderr);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            let _ = (&mut stdout).await;
            (&mut stderr).await.unwrap_or_default()
        })
        .await;
        // A background process of the command may still hold the pipes open.
        stdout.abort();
        stderr.abort();
        let tail = drained.unwrap_or_default();

        match outcome {
            Outcome::Cancelled => Err(Error::new(
                ErrorKind::Cancelled,
                format!("step `{step}`: command `{name}` killed: the job is stopping"),
            )),
            Outcome::TimedOut(limit) => Err(Error::new(
                ErrorKind::Component,
                format!(
                    "step `{step}`: command `{name}` timed out after {} and was killed{}",
                    HumanDuration(limit),
                    describe_tail(&tail)
                ),
            )),
            Outcome::Exited(Err(err)) => Err(Error::io(
                format_args!("step `{step}`: waiting for command `{name}`"),
                err,
            )),
            Outcome::Exited(Ok(status)) => {
                let Some(code) = status.code() else {
                    use std::os::unix::process::ExitStatusExt;
                    return Err(Error::new(
                        ErrorKind::Component,
                        format!(
                            "step `{step}`: command `{name}` was killed by signal {}{}",
                            status.signal().unwrap_or(0),
                            describe_tail(&tail)
                        ),
                    ));
                };
                let mapped = self.map_code(code);
                if mapped.eq_ignore_ascii_case(ExitStatus::FAILED) {
                    return Err(Error::new(
                        ErrorKind::Component,
                        format!(
                            "step `{step}`: command `{name}` failed with exit code {code}{}",
                            describe_tail(&tail)
                        ),
                    ));
                }
                tracing::info!(step = %step, command = %name, code, exit_status = %mapped, "command finished");
                execution.exit_status = ExitStatus::new(mapped)
                    .with_description(format!("command `{name}` exited with code {code}"));
                Ok(RepeatStatus::Finished)
            }
        }
    }
}
