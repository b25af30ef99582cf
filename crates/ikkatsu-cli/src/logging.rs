//! Where the logs go and what they show: standard error or `--log-file`; the filter from
//! `-v`/`-q`, `--log` (`IKKATSU_LOG`) or `RUST_LOG`; text or JSON; colours only on a terminal
//! (never in a file, a pipe, cron or systemd's journal, nor with `NO_COLOR`). Every line
//! passes through the secret redaction of [`crate::redact`].

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The logging options of every command.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, global = true, env = "IKKATSU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info`, `debug`, `ikkatsu_core=debug` (RUST_LOG syntax; default:
    /// RUST_LOG when set, else `info`).
    #[arg(long, global = true, env = "IKKATSU_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// More log lines: `-v` debug, `-vv` trace (overrides --log and RUST_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Fewer log lines: `-q` warnings and errors only, `-qq` errors only (overrides --log
    /// and RUST_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// Append the logs to this file instead of standard error (no colours).
    #[arg(long, global = true, env = "IKKATSU_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Colours in the logs: `auto` (only when standard error is a terminal and NO_COLOR is
    /// not set), `always` or `never`.
    #[arg(long, global = true, env = "IKKATSU_COLOR", value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether logs are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always (also in a pipe).
    Always,
    /// Never.
    Never,
}

impl LogArgs {
    /// The filter in effect: `-v`/`-q`, else `--log`, else `RUST_LOG` (`rust_log`), else
    /// `info`.
    pub fn filter(&self, rust_log: Option<&str>) -> String {
        match (self.verbose, self.quiet) {
            (1, _) => return "debug".into(),
            (2.., _) => return "trace".into(),
            (_, 1) => return "warn".into(),
            (_, 2..) => return "error".into(),
            _ => {}
        }
        if let Some(log) = &self.log {
            return log.clone();
        }
        match rust_log.map(str::trim) {
            Some(rust_log) if !rust_log.is_empty() => rust_log.to_string(),
            _ => "info".into(),
        }
    }

    /// Whether to colour: `no_color` is whether NO_COLOR is set to something, `terminal`
    /// whether standard error is a terminal.
    pub fn colours(&self, no_color: bool, terminal: bool) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => self.log_file.is_none() && terminal && !no_color,
        }
    }
}

/// Sets up `tracing` as `args` say.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let text = args.filter(rust_log.as_deref());
    let filter = EnvFilter::try_new(&text).with_context(|| {
        format!("invalid log filter `{text}` (RUST_LOG syntax: `info`, `ikkatsu_core=debug`)")
    })?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = args.colours(no_color, io::stderr().is_terminal());
    let writer = match &args.log_file {
        Some(path) => {
            let file = File::options()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            LogWriter::File(Arc::new(Mutex::new(file)))
        }
        None => LogWriter::Stderr,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(crate::redact::cap_credential_targets(filter))
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    if let Err(err) = result {
        bail!("cannot set up logging: {err}");
    }
    Ok(())
}

/// Standard error or the log file, with every registered secret replaced by `***`. The log
/// formatter writes one event per `write`, so a secret is never split across two writes.
#[derive(Clone)]
enum LogWriter {
    Stderr,
    File(Arc<Mutex<File>>),
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let redacted = ikkatsu_core::secret::redact(&text);
        match self {
            LogWriter::Stderr => io::stderr().lock().write_all(redacted.as_bytes())?,
            LogWriter::File(file) => {
                let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                file.write_all(redacted.as_bytes())?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LogWriter::Stderr => io::stderr().flush(),
            LogWriter::File(file) => file
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(verbose: u8, quiet: u8, log: Option<&str>) -> LogArgs {
        LogArgs {
            log_format: LogFormat::Text,
            log: log.map(str::to_string),
            verbose,
            quiet,
            log_file: None,
            color: ColorChoice::Auto,
        }
    }

    #[test]
    fn the_filter_comes_from_v_q_then_log_then_rust_log() {
        assert_eq!(args(0, 0, None).filter(None), "info");
        assert_eq!(args(0, 0, None).filter(Some(" ")), "info");
        assert_eq!(args(0, 0, None).filter(Some("debug")), "debug");
        assert_eq!(args(0, 0, Some("warn")).filter(Some("debug")), "warn");
        assert_eq!(args(1, 0, Some("warn")).filter(Some("error")), "debug");
        assert_eq!(args(3, 0, None).filter(None), "trace");
        assert_eq!(args(0, 1, Some("debug")).filter(None), "warn");
        assert_eq!(args(0, 2, None).filter(Some("trace")), "error");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color_or_a_file() {
        let auto = args(0, 0, None);
        assert!(auto.colours(false, true));
        assert!(!auto.colours(true, true));
        assert!(!auto.colours(false, false));
        let mut to_file = args(0, 0, None);
        to_file.log_file = Some("x.log".into());
        assert!(!to_file.colours(false, true));
        let mut always = args(0, 0, None);
        always.color = ColorChoice::Always;
        assert!(always.colours(true, false));
        let mut never = args(0, 0, None);
        never.color = ColorChoice::Never;
        assert!(!never.colours(false, true));
    }
}
