//! [`OverwriteConfig`]: everything an overwrite run needs, in one shape for both ways of
//! giving it: a YAML step's `properties` (serde, kebab-case keys) and the flags of
//! `ikkatsu overwrite` (clap, with the `cli` feature). The defaults, the validation and
//! the way it becomes an [`OverwriteFlow`] live here and nowhere else.

use std::path::PathBuf;
use std::sync::Arc;

use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{Error, Result};
use ikkatsu_storage::{ByteSize, FileAge, Storage, StorageOptions, WalkOptions, mask_secrets};
use serde::Deserialize;

use crate::flow::{OverwriteFlow, OverwriteOptions};
use crate::process_fn::CommandProcess;
use crate::status_store::{StatusStoreOptions, open_status_store, open_status_store_read_only};

pub use crate::flow::DEFAULT_RETRIES;
pub use crate::status_store::DEFAULT_MAX_ERRORS;

/// The settings of an overwrite run: the `overwrite` step's properties and the
/// `ikkatsu overwrite` command's flags (the field docs are the command's `--help`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OverwriteConfig {
    /// Storage URL of the files to transform: `file:///data`, a path, `memory:`,
    /// `sftp://user@host/dir?key-file=…`, `s3://bucket/prefix?region=…`, `ftp://`, `ftps://`,
    /// `webdav+https://`, `gcs://`, `azblob://` (docs/storage.md), or `@name` of a storage in
    /// the application config. It may hold secrets: it is shown masked.
    #[cfg_attr(feature = "cli", arg(value_name = "SOURCE"))]
    pub source: String,
    /// Include files matching this pattern, as rclone's `--include` (`*.csv` matches at
    /// any depth, `/x/*.csv` is anchored at the root, `**` crosses directories); with any
    /// include pattern every other file is left out (docs/overwrite.md#choosing-files).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATTERN"))]
    pub include: Vec<String>,
    /// Exclude files matching this pattern (`dir/` excludes a whole directory).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATTERN"))]
    pub exclude: Vec<String>,
    /// A filtering rule: `+ PATTERN` includes, `- PATTERN` excludes, `!` forgets the rules
    /// so far; the first rule that matches decides.
    #[serde(default)]
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "RULE", allow_hyphen_values = true)
    )]
    pub filter: Vec<String>,
    /// Read include patterns from FILE (one a line; `#` and `;` start comments).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub include_from: Vec<PathBuf>,
    /// Read exclude patterns from FILE.
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub exclude_from: Vec<PathBuf>,
    /// Read filtering rules (`+ PATTERN`, `- PATTERN`, `!`) from FILE.
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub filter_from: Vec<PathBuf>,
    /// Take exactly the files listed in FILE (paths relative to SOURCE, one a line); not
    /// combinable with the other filters.
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub files_from: Vec<PathBuf>,
    /// Only files of at least this size (`100k`, `1.5M`, `1G`; binary units, no unit: KiB).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "SIZE"))]
    pub min_size: Option<ByteSize>,
    /// Only files of at most this size.
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "SIZE"))]
    pub max_size: Option<ByteSize>,
    /// Only files modified at least this long ago (`1h`, `2d`, `1w`) or before this date
    /// (`2006-01-02`, `2006-01-02 15:04:05`, local time).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "AGE"))]
    pub min_age: Option<FileAge>,
    /// Only files modified at most this long ago, or since this date.
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "AGE"))]
    pub max_age: Option<FileAge>,
    /// Deepest directory level to walk (1: files directly in SOURCE).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub max_depth: Option<usize>,
    /// Follow symbolic links (loops are detected).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long))]
    pub follow_symlinks: bool,
    /// Also take hidden files and directories (names starting with `.`).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long))]
    pub hidden: bool,
    /// Command run per file; `{in}` is the downloaded file, `{out}` the file to upload.
    /// Run without a shell unless `shell`. Exit code 75 means "temporary, retry".
    #[cfg_attr(feature = "cli", arg(long, value_name = "COMMAND"))]
    pub exec: String,
    /// Run the command through `sh -c` (paths are quoted).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long))]
    pub shell: bool,
    /// Kill the command after this long (`30s`, `5m`, `1h30m`); then retried as a
    /// temporary failure.
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "DURATION"))]
    pub timeout: Option<HumanDuration>,
    /// Write results here (same relative paths) instead of over the source (URL or `@name`).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "URL"))]
    pub target: Option<String>,
    /// Status store: `memory:`, a redb file path, `redis://…`, `redis+cluster://…`,
    /// `postgres://…`, `mysql://…`, or `@name` from the application config (default:
    /// `ikkatsu-status.redb` beside a SQLite job repository, else in the working directory).
    #[serde(default)]
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "URL", env = "IKKATSU_STATUS_STORE")
    )]
    pub status_store: Option<String>,
    /// The name this property had before it became `status-store`: refused with a message
    /// naming the new one (it read like a batch status).
    #[serde(default, rename = "status")]
    #[cfg_attr(feature = "cli", arg(skip))]
    pub renamed_status: Option<serde::de::IgnoredAny>,
    /// Namespace of this flow in the status store (default: derived from the source and
    /// the target, their secrets masked).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long))]
    pub namespace: Option<String>,
    /// Files processed at once (default: 2 × cores; at least 8 on a remote storage).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub concurrency: Option<usize>,
    /// Failures after which a file is left alone until it changes (default 3).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub max_errors: Option<u32>,
    /// Retries of a temporary error per file operation (default 3): the download, the
    /// command and the upload of a file each get this many (docs/overwrite.md#retries).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub retries: Option<u32>,
    /// Where the backlog, journal and temporary files live
    /// (default `.ikkatsu/overwrite/NAMESPACE`).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR"))]
    pub state_dir: Option<PathBuf>,
    /// The backlog file (default `STATE_DIR/backlog.jsonl.gz`).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub backlog: Option<PathBuf>,
    /// List what a run would process (stdout: one path a line) and write nothing: no state
    /// directory, no backlog, no status-store record or run lease, nothing on the storages.
    /// The status store is only read.
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long))]
    pub dry_run: bool,
    /// Share the work with other runs of this flow on the same status store (Redis,
    /// PostgreSQL, MySQL) instead of refusing them; each run needs its own state directory
    /// (see [`crate::cooperate`]).
    #[serde(default)]
    #[cfg_attr(feature = "cli", arg(long))]
    pub cooperate: bool,
}

impl OverwriteConfig {
    /// Replaces `@name` references of the source, the target and the status store by the
    /// URLs `storage` and `status` resolve them to (an application config's named storages
    /// and status stores).
    pub fn resolve_names(
        &mut self,
        storage: impl Fn(&str) -> Result<String>,
        status: impl Fn(&str) -> Result<String>,
    ) -> Result<()> {
        self.source = storage(&self.source)?;
        self.target = self.target.as_deref().map(&storage).transpose()?;
        self.status_store = self.status_store.as_deref().map(status).transpose()?;
        Ok(())
    }

    /// The status-store namespace: the configured one, else `ow-` and a hash of source and
    /// target (their secrets masked, so that a new password keeps the records), so that two
    /// flows over different trees never share records.
    pub fn namespace(&self) -> String {
        if let Some(namespace) = &self.namespace {
            return namespace.clone();
        }
        let mut hash: u64 = 0xcbf29ce484222325;
        let key = format!(
            "{}\u{0}{}",
            mask_secrets(&self.source),
            self.target.as_deref().map(mask_secrets).unwrap_or_default()
        );
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x100000001b3);
        }
        format!("ow-{hash:016x}")
    }

    /// The source URL with its secrets masked, for messages.
    pub fn shown_source(&self) -> String {
        mask_secrets(&self.source)
    }

    /// The target URL with its secrets masked, for messages.
    pub fn shown_target(&self) -> Option<String> {
        self.target.as_deref().map(mask_secrets)
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            PathBuf::from(".ikkatsu")
                .join("overwrite")
                .join(self.namespace())
        })
    }

    /// The walk options.
    pub fn walk_options(&self) -> WalkOptions {
        WalkOptions {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            filter: self.filter.clone(),
            include_from: self.include_from.clone(),
            exclude_from: self.exclude_from.clone(),
            filter_from: self.filter_from.clone(),
            files_from: self.files_from.clone(),
            min_size: self.min_size.map(ByteSize::bytes),
            max_size: self.max_size.map(ByteSize::bytes),
            min_age: self.min_age,
            max_age: self.max_age,
            max_depth: self.max_depth,
            follow_symlinks: self.follow_symlinks,
            include_hidden: self.hidden,
            counts: None,
        }
    }

    /// The command run per file.
    fn command(&self) -> Result<CommandProcess> {
        CommandProcess::parse(
            &self.exec,
            self.shell,
            self.timeout.map(HumanDuration::as_duration),
        )
    }

    /// The flow's settings, defaults filled in.
    pub fn flow_options(&self) -> OverwriteOptions {
        let mut options = OverwriteOptions::new(self.state_dir());
        options.walk = self.walk_options();
        options.concurrency = self.concurrency;
        options.retry.limit = self.retries();
        options.backlog = self.backlog.clone();
        options.cooperate = self.cooperate;
        options
    }

    /// Retries of a temporary error per operation of a file.
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    /// The settings the source and the target are opened with: the storage retries each
    /// request [`OverwriteConfig::retries`] times (unless the URL sets its own `retries`),
    /// and the flow does not retry storage operations again.
    pub fn storage_options(&self) -> StorageOptions {
        StorageOptions {
            retries: self.retries() as usize,
            ..StorageOptions::default()
        }
    }

    /// The status store's settings, defaults filled in.
    pub fn status_store_options(&self) -> StatusStoreOptions {
        StatusStoreOptions::new(self.namespace())
            .with_max_errors(self.max_errors.unwrap_or(DEFAULT_MAX_ERRORS))
    }

    /// Checks what can be checked without opening anything: the command, the filter rules
    /// (reading their files), the concurrency (at least 1) and the namespace.
    pub fn validate(&self) -> Result<()> {
        if self.renamed_status.is_some() {
            return Err(Error::config(
                "overwrite: the property `status` is now `status-store` (the status store URL); rename it in the job file",
            ));
        }
        self.command()?;
        self.walk_options().compile()?;
        if self.concurrency == Some(0) {
            return Err(Error::config(
                "overwrite: `concurrency` (--concurrency) must be at least 1",
            ));
        }
        self.status_store_options().validate()
    }

    /// Opens the storages and the status store (`default_status` when none is configured;
    /// read-only for a dry run) and builds the flow.
    pub async fn build(&self, default_status: &str) -> Result<OverwriteFlow> {
        let process = self.command()?;
        let storage = self.storage_options();
        let source = Storage::open_with(&self.source, &storage)?;
        let url = self.status_store.as_deref().unwrap_or(default_status);
        let status = if self.dry_run {
            open_status_store_read_only(url, self.status_store_options()).await?
        } else {
            open_status_store(url, self.status_store_options()).await?
        };
        let flow = OverwriteFlow::new(source, status, Arc::new(process), self.flow_options());
        Ok(match &self.target {
            Some(target) => flow.with_target(Storage::open_with(target, &storage)?),
            None => flow,
        })
    }
}
