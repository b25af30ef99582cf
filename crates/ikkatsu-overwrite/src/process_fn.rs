//! The user function of the overwrite flow: turns a downloaded file (`in`) into the file to
//! upload (`out`). From Rust, any async closure ([`process_fn`]); from the command line, an
//! external command with `{in}` and `{out}` placeholders ([`CommandProcess`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ikkatsu_core::{Error, ErrorKind, Result};
use tokio::io::AsyncReadExt;

/// Transforms the file at `input` into a new file at `output`.
///
/// Errors marked temporary ([`Error::is_temporary`]) are retried with backoff; others fail
/// the file (it is recorded as failed and the flow goes on).
#[async_trait]
pub trait ProcessFn: Send + Sync {
    /// Reads `input`, writes `output`. `input` must be treated as read-only: on the local
    /// file system, in place, it is the file itself.
    async fn process(&self, input: &Path, output: &Path) -> Result<()>;

    /// Whether the work may go on outside this process after `process` returns or after the
    /// process is killed (an external command). Such a function is given an `output` in the
    /// flow's private work directory, never beside the user's files, so that a command left
    /// running by a killed run cannot leave files there. Default: false (the work ends when
    /// the future completes or is dropped).
    fn is_external(&self) -> bool {
        false
    }
}

struct Closure<F>(F);

#[async_trait]
impl<F, Fut> ProcessFn for Closure<F>
where
    F: Fn(PathBuf, PathBuf) -> Fut + Send + Sync,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    async fn process(&self, input: &Path, output: &Path) -> Result<()> {
        (self.0)(input.to_path_buf(), output.to_path_buf()).await
    }
}

/// A [`ProcessFn`] from an async closure `|input, output| async { ... }`.
pub fn process_fn<F, Fut>(f: F) -> Arc<dyn ProcessFn>
where
    F: Fn(PathBuf, PathBuf) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Arc::new(Closure(f))
}

/// The exit code a command uses to say "temporary failure, try again" (`EX_TEMPFAIL`).
pub const EXIT_TEMPORARY: i32 = 75;

/// Runs an external command per file. `{in}` and `{out}` in the arguments are replaced by the
/// paths. Without `shell`, the program is run directly (no shell parsing, no globbing); with
/// it, the command line is run by `sh -c` with the paths quoted.
///
/// Exit code 0 is success (and the command must have written `{out}`), [`EXIT_TEMPORARY`] (75)
/// a temporary failure that is retried, anything else a permanent failure whose message ends
/// with the command's last lines of standard error. A command running longer than `timeout`
/// is killed (a temporary failure).
#[derive(Debug, Clone)]
pub struct CommandProcess {
    argv: Vec<String>,
    shell: bool,
    timeout: Option<Duration>,
}

impl CommandProcess {
    /// Parses a command line (`convert {in} -resize 50% {out}`): words split on spaces, with
    /// single and double quotes and backslash escapes as in a shell, but nothing else.
    pub fn parse(command: &str, shell: bool, timeout: Option<Duration>) -> Result<Self> {
        let argv = if shell {
            vec![command.to_string()]
        } else {
            split_words(command)?
        };
        if argv.is_empty() || argv[0].trim().is_empty() {
            return Err(Error::config("the command to run per file is empty"));
        }
        if !command.contains("{in}") || !command.contains("{out}") {
            return Err(Error::config(format!(
                "the command `{command}` must contain both `{{in}}` (the downloaded file) and `{{out}}` (the file to upload)"
            )));
        }
        Ok(CommandProcess {
            argv,
            shell,
            timeout,
        })
    }

    fn command(&self, input: &Path, output: &Path) -> tokio::process::Command {
        let (i, o) = (input.to_string_lossy(), output.to_string_lossy());
        let mut cmd = if self.shell {
            let line = self.argv[0]
                .replace("{in}", &shell_quote(&i))
                .replace("{out}", &shell_quote(&o));
            let mut cmd = tokio::process::Command::new("sh");
            cmd.arg("-c").arg(line);
            cmd
        } else {
            let fill = |arg: &String| arg.replace("{in}", &i).replace("{out}", &o);
            let mut cmd = tokio::process::Command::new(fill(&self.argv[0]));
            cmd.args(self.argv[1..].iter().map(fill));
            cmd
        };
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        cmd
    }
}

#[async_trait]
impl ProcessFn for CommandProcess {
    fn is_external(&self) -> bool {
        true
    }

    async fn process(&self, input: &Path, output: &Path) -> Result<()> {
        let program = &self.argv[0];
        let mut child = self.command(input, output).spawn().map_err(|err| {
            Error::io(format_args!("cannot run `{program}`"), err)
                .context("check the --exec command")
        })?;
        let mut stderr = child.stderr.take();
        let read_stderr = async {
            let mut text = String::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.read_to_string(&mut text).await;
            }
            text
        };
        let waited = async { tokio::join!(child.wait(), read_stderr) };
        let (status, stderr_text) = match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, waited).await {
                Ok(done) => done,
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Component,
                        format!("`{program}` ran longer than {limit:?} and was killed"),
                    )
                    .set_temporary(true));
                }
            },
            None => waited.await,
        };
        let status =
            status.map_err(|err| Error::io(format_args!("waiting for `{program}`"), err))?;
        let tail: Vec<&str> = stderr_text.lines().rev().take(5).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        match status.code() {
            Some(0) => {
                if tokio::fs::try_exists(output).await.unwrap_or(false) {
                    Ok(())
                } else {
                    Err(Error::new(
                        ErrorKind::Component,
                        format!("`{program}` exited 0 but did not write {{out}}"),
                    ))
                }
            }
            Some(code) => Err(Error::new(
                ErrorKind::Component,
                format!("`{program}` exited with code {code}: {tail}"),
            )
            .set_temporary(code == EXIT_TEMPORARY)),
            None => Err(Error::new(
                ErrorKind::Component,
                format!("`{program}` was killed by a signal: {tail}"),
            )),
        }
    }
}

/// Makes the command die with the flow's process even when that is killed (`kill -9`), so
/// that it cannot go on writing after the run that started it.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before `exec` and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the setting took effect: do not start at all.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::other("the parent process is gone"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Splits a command line into words: spaces separate, quotes group, backslash escapes.
fn split_words(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(unclosed(line, '\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err(unclosed(line, '"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(unclosed(line, '"')),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn unclosed(line: &str, quote: char) -> Error {
    Error::config(format!(
        "the command `{line}` has an unclosed {quote} quote"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell_without_expansion() {
        assert_eq!(
            split_words(r#"tool -x "a b" 'c $HOME' d\ e {in} {out}"#).unwrap(),
            vec!["tool", "-x", "a b", "c $HOME", "d e", "{in}", "{out}"]
        );
        assert!(split_words("tool 'open").is_err());
        assert!(CommandProcess::parse("tool {in}", false, None).is_err());
        assert!(CommandProcess::parse("  ", false, None).is_err());
    }

    #[tokio::test]
    async fn runs_commands_and_maps_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in file.txt");
        let output = dir.path().join("out file.txt");
        std::fs::write(&input, "hello\n").unwrap();
        let cp = CommandProcess::parse("cp {in} {out}", false, None).unwrap();
        cp.process(&input, &output).await.unwrap();
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "hello\n");

        let upper = CommandProcess::parse("tr a-z A-Z < {in} > {out}", true, None).unwrap();
        upper.process(&input, &output).await.unwrap();
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "HELLO\n");

        let temp = CommandProcess::parse("sh -c 'echo busy >&2; exit 75' {in} {out}", false, None)
            .unwrap();
        let err = temp.process(&input, &output).await.unwrap_err();
        assert!(err.is_temporary());
        assert!(err.to_string().contains("busy"), "{err}");

        let fail = CommandProcess::parse("sh -c 'exit 3' {in} {out}", false, None).unwrap();
        let err = fail.process(&input, &output).await.unwrap_err();
        assert!(!err.is_temporary());
        assert!(err.to_string().contains("code 3"), "{err}");

        let slow = CommandProcess::parse(
            "sh -c 'exec sleep 30' {in} {out}",
            false,
            Some(Duration::from_millis(200)),
        )
        .unwrap();
        let err = slow.process(&input, &output).await.unwrap_err();
        assert!(err.is_temporary());
        assert!(err.to_string().contains("killed"), "{err}");
    }
}
