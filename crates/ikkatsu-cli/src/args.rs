//! Command-line arguments: raw flags parsed by clap, then checked.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

    #[command(flatten)]
    pub logging: crate::logging::LogArgs,

    /// How often a running execution records a heartbeat and checks for stop requests.
    #[arg(long, global = true, env = "IKKATSU_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub heartbeat_interval: std::time::Duration,

    /// A running execution with no heartbeat for this long is considered dead (one whose
    /// process is gone on this host is considered dead at once).
    #[arg(long, global = true, env = "IKKATSU_STALE_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub stale_after: std::time::Duration,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job defined in YAML and print a summary.
    #[command(after_help = "Examples:
  ikkatsu run examples/quickstart.yaml
  ikkatsu run job.yaml -p input=data/in.csv -p day=2026-01-31,date
  ikkatsu run job.yaml -p id=5,java.lang.Long,true --json
  ikkatsu run examples/quickstart.yaml --next")]
    Run(RunArgs),
    /// List job executions, newest first.
    #[command(after_help = "Examples:
  ikkatsu executions
  ikkatsu executions --job quickstart --status FAILED --limit 10
  ikkatsu executions --json --repository postgres://batch@db/jobs")]
    Executions(ExecutionsArgs),
    /// Show one execution with its steps, counts and exit statuses.
    #[command(after_help = "Examples:
  ikkatsu status 42
  ikkatsu status 42 --json")]
    Status(StatusArgs),
    /// Restart a FAILED or STOPPED execution from its last committed chunk.
    #[command(after_help = "Examples:
  ikkatsu restart 42
  ikkatsu restart 42 --json --no-progress")]
    Restart(RestartArgs),
    /// Ask a running execution to stop at its next chunk boundary.
    #[command(after_help = "Examples:
  ikkatsu stop 42
  ikkatsu stop 42 --json")]
    Stop(IdArgs),
    /// Mark a FAILED or STOPPED execution ABANDONED (never restarted).
    #[command(after_help = "Examples:
  ikkatsu abandon 42
  ikkatsu abandon 42 --json")]
    Abandon(IdArgs),
    /// Mark running executions whose process is gone as FAILED, so they can be restarted.
    #[command(after_help = "Examples:
  ikkatsu recover
  ikkatsu recover --repository postgres://batch@db/jobs
  ikkatsu recover --json")]
    Recover(JsonArgs),
    /// Check a job file without running it.
    #[command(after_help = "Examples:
  ikkatsu validate examples/quickstart.yaml
  ikkatsu validate job.yaml -p input=data/in.csv
  ikkatsu validate job.yaml --json")]
    Validate(ValidateArgs),
    /// Create or upgrade the job repository's tables.
    #[command(after_help = "Examples:
  ikkatsu migrate
  ikkatsu migrate --repository mysql://root@127.0.0.1/jobs
  ikkatsu migrate --json")]
    Migrate(JsonArgs),
    /// Transform files in place (or into --target): walk, keep what still needs work, then
    /// download → command → upload with a pool of workers, recording every file.
    #[command(after_help = "Examples:
  ikkatsu overwrite /data --include '*.txt' --exec 'sed -i s/foo/bar/ {in}' --shell
  ikkatsu overwrite sftp://batch@files.example/in --exec 'gzip -c {in} > {out}' --shell
  ikkatsu overwrite @lake --include '*.csv' --exec ./fix.sh --json")]
    Overwrite(Box<OverwriteArgs>),
    /// Run the partitions of partitioned steps that managers send through a broker.
    #[command(after_help = "Examples:
  ikkatsu worker --broker amqp://guest:guest@127.0.0.1:5672/%2f --repository postgres://batch@db/jobs
  ikkatsu worker --broker nats://127.0.0.1:4222 --concurrency 2 --repository postgres://batch@db/jobs
  IKKATSU_BROKER=amqp://127.0.0.1 ikkatsu worker --queue nightly.partitions")]
    Worker(WorkerArgs),
    /// Print the version, the commit and the compiled-in backends.
    #[command(after_help = "Examples:
  ikkatsu version
  ikkatsu version --json")]
    Version(VersionArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  ikkatsu completions bash > /etc/bash_completion.d/ikkatsu
  ikkatsu completions zsh > \"${fpath[1]}/_ikkatsu\"
  ikkatsu completions fish > ~/.config/fish/completions/ikkatsu.fish
  ikkatsu completions powershell >> $PROFILE")]
    Completions(CompletionsArgs),
    /// Print the man page, or write one page per command into a directory.
    #[command(after_help = "Examples:
  ikkatsu man | man -l -
  ikkatsu man --out-dir /usr/local/share/man/man1")]
    Man(ManArgs),
}

/// `ikkatsu version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ikkatsu completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `ikkatsu man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `ikkatsu.1` and `ikkatsu-COMMAND.1` here instead of `ikkatsu.1` to standard
    /// output.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
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
    /// Start a new job instance through the job's incrementer (`incrementer: run-id`) even
    /// when the last execution failed or stopped; that one is left for `ikkatsu restart`.
    #[arg(long)]
    pub next: bool,
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
    /// Print the execution as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Commands whose only option is `--json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ikkatsu validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The job definition (YAML).
    pub job: PathBuf,
    /// Job parameters, as for `run`.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ikkatsu worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The broker partition requests come from: amqp://USER:PASSWORD@HOST:5672/VHOST
    /// (RabbitMQ) or nats://HOST:4222 (NATS JetStream).
    #[arg(long, env = "IKKATSU_BROKER", value_name = "URL")]
    pub broker: String,
    /// The queue (RabbitMQ) or subject (NATS) to take requests from: the `queue` of the
    /// partitioned steps' `remote`.
    #[arg(long, default_value = "ikkatsu.partitions")]
    pub queue: String,
    /// How many partitions this worker runs at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// A running partition marks itself alive this often; keep it as the job's `heartbeat`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub partition_heartbeat: std::time::Duration,
    /// A partition whose heartbeat is older than this has lost its worker and is taken over;
    /// keep it as the job's `stale-after`.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub partition_stale_after: std::time::Duration,
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
