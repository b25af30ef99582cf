//! Command-line arguments: raw flags parsed by clap, then checked.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// ikkatsu (一括, "all at once"): a batch-processing framework and command-line tool.
///
/// Jobs are defined in YAML (see docs/job-format.md) and recorded in a job repository
/// (SQLite `./ikkatsu.db` unless `--repository` or IKKATSU_REPOSITORY says otherwise), so a
/// failed, stopped or killed job restarts from its last committed chunk.
///
/// Exit codes: 0 COMPLETED, 1 FAILED (also a failure at run time: an unreachable server,
/// refused credentials), 2 usage or invalid configuration, 3 STOPPED, 4 already running in
/// another process, 5 nothing to do: the instance already completed (docs/cli.md).
#[derive(Debug, Parser)]
#[command(name = "ikkatsu", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The application config read when no `--config` is given, if it exists.
pub const DEFAULT_APP_CONFIG: &str = "ikkatsu-config.yaml";

/// The job repository used when nothing else names one.
pub const DEFAULT_REPOSITORY: &str = "sqlite://ikkatsu.db";

/// Options of every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Job repository URL: sqlite://PATH, postgres://USER@HOST/DB or mysql://USER@HOST/DB
    /// (default: the application config's `repository`, else sqlite://ikkatsu.db).
    #[arg(long, global = true, env = "IKKATSU_REPOSITORY")]
    pub repository: Option<String>,

    /// Application config (named storages and status stores, the repository); default
    /// `ikkatsu-config.yaml` in the working directory when it exists.
    #[arg(long, global = true, env = "IKKATSU_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The repository URL in effect (flag, environment, application config or default).
    #[arg(skip)]
    pub repository_url: String,

    /// The application config in effect.
    #[arg(skip)]
    pub app: ikkatsu_config::AppConfig,

    /// Log format on standard error.
    #[arg(long, global = true, env = "IKKATSU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info`, `debug`, `ikkatsu_core=debug` (RUST_LOG syntax).
    #[arg(long, global = true, env = "IKKATSU_LOG", default_value = "info")]
    pub log: String,

    /// How often a running execution records a heartbeat and checks for stop requests.
    #[arg(long, global = true, env = "IKKATSU_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub heartbeat_interval: std::time::Duration,

    /// A running execution with no heartbeat for this long is considered dead (one whose
    /// process is gone on this host is considered dead at once).
    #[arg(long, global = true, env = "IKKATSU_STALE_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub stale_after: std::time::Duration,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job defined in YAML and print a summary.
    Run(RunArgs),
    /// List job executions, newest first.
    Executions(ExecutionsArgs),
    /// Show one execution with its steps, counts and exit statuses.
    Status(StatusArgs),
    /// Restart a FAILED or STOPPED execution from its last committed chunk.
    Restart(RestartArgs),
    /// Ask a running execution to stop at its next chunk boundary.
    Stop(IdArgs),
    /// Mark a FAILED or STOPPED execution ABANDONED (never restarted).
    Abandon(IdArgs),
    /// Mark running executions whose process is gone as FAILED, so they can be restarted.
    Recover,
    /// Check a job file without running it.
    Validate(ValidateArgs),
    /// Create or upgrade the job repository's tables.
    Migrate,
    /// Transform files in place (or into --target): walk, keep what still needs work, then
    /// download → command → upload with a pool of workers, recording every file.
    Overwrite(Box<OverwriteArgs>),
}

/// `ikkatsu run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job definition (YAML).
    pub job: PathBuf,
    /// A job parameter: key=value[,type[,identifying]] (type: string, integer, float, bool,
    /// date, datetime). Repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Never show a progress line (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// `ikkatsu executions`.
#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    /// Only executions of this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Only executions in this status (COMPLETED, FAILED, STOPPED, STARTED, ...).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ikkatsu status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Execution id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ikkatsu restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Execution id.
    pub id: i64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Never show a progress line (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// Commands taking an execution id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Execution id.
    pub id: i64,
}

/// `ikkatsu validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The job definition (YAML).
    pub job: PathBuf,
    /// Job parameters, as for `run`.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

/// `ikkatsu overwrite`: the run's settings (the `overwrite` step's properties as flags)
/// and how the command reports.
#[derive(Debug, Args)]
pub struct OverwriteArgs {
    #[command(flatten)]
    pub config: ikkatsu_overwrite::OverwriteConfig,
    /// Only scan: write the backlog and report how many files need work.
    #[arg(long)]
    pub scan_only: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Never show a progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// Parses `500ms`, `2s`, `5m`, `1h30m` (core's grammar: a unit is required).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<ikkatsu_core::duration::HumanDuration>()
        .map(|d| d.as_duration())
        .map_err(|err| err.to_string())
}

/// Sets up `tracing` on standard error, secrets redacted (see `redact`).
pub fn init_logging(global: &GlobalArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&global.log)
        .with_context(|| format!("invalid --log filter `{}`", global.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(crate::redact::cap_credential_targets(filter))
        .with_writer(crate::redact::RedactingStderr)
        .with_target(false);
    let result = match global.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    if let Err(err) = result {
        bail!("cannot set up logging: {err}");
    }
    Ok(())
}
