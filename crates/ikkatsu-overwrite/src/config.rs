//! [`OverwriteConfig`]: everything an overwrite run needs, as written in a YAML step's
//! `properties` or given on the command line, and how it becomes an [`OverwriteFlow`].

use std::path::PathBuf;
use std::sync::Arc;

use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{Error, Result};
use ikkatsu_storage::{Storage, WalkOptions, mask_secrets};
use serde::Deserialize;

use crate::flow::{OverwriteFlow, OverwriteOptions};
use crate::process_fn::CommandProcess;
use crate::status_store::{StatusStoreOptions, open_status_store};

/// The settings of an overwrite run (the `overwrite` step's properties).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OverwriteConfig {
    /// Storage URL of the files to transform (`file:///data`, a path, `memory:`,
    /// `sftp://…`, `s3://…`, ...: see docs/storage.md; options as query parameters). It may
    /// hold secrets: show it through `ikkatsu_storage::mask_secrets`.
    pub source: String,
    /// Where to write the results (same relative paths); default: over the source.
    #[serde(default)]
    pub target: Option<String>,
    /// Globs of files to take, matched on the whole relative path (`**/*.csv`); default all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of files to leave alone.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Deepest level walked (1: files directly in the source).
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// Follow symbolic links (loops are detected).
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Also take hidden files and directories (names starting with `.`).
    #[serde(default)]
    pub hidden: bool,
    /// The command run per file, with `{in}` and `{out}` placeholders.
    pub exec: String,
    /// Run `exec` through `sh -c` (default: run the program directly).
    #[serde(default)]
    pub shell: bool,
    /// Kill the command after this long (a temporary failure).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Status store URL (`memory:`, a redb file path, `redis://`, `postgres://`, `mysql://`).
    #[serde(default)]
    pub status: Option<String>,
    /// Namespace of this flow in the status store (default: derived from source and target).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Files processed at once (default 2 × cores).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Failures after which a file is left alone until it changes (default 3).
    #[serde(default)]
    pub max_errors: Option<u32>,
    /// Retries of a temporary error per operation (default 3).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Where the backlog, journal and temporary files live
    /// (default `.ikkatsu/overwrite/<namespace>`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The backlog file (default `<state-dir>/backlog.jsonl.gz`).
    #[serde(default)]
    pub backlog: Option<PathBuf>,
    /// Only report what would be processed.
    #[serde(default)]
    pub dry_run: bool,
    /// Share the work with other runs of the flow on the same status store instead of
    /// refusing them (see [`crate::cooperate`]).
    #[serde(default)]
    pub cooperate: bool,
}

impl OverwriteConfig {
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
        let mut walk = WalkOptions::new()
            .follow_symlinks(self.follow_symlinks)
            .include_hidden(self.hidden);
        for glob in &self.include {
            walk = walk.include(glob.clone());
        }
        for glob in &self.exclude {
            walk = walk.exclude(glob.clone());
        }
        if let Some(depth) = self.max_depth {
            walk = walk.max_depth(depth);
        }
        walk
    }

    /// Checks what can be checked without opening anything.
    pub fn validate(&self) -> Result<()> {
        CommandProcess::parse(&self.exec, self.shell, None)?;
        self.walk_options().compile()?;
        if self.concurrency == Some(0) {
            return Err(Error::config("concurrency must be at least 1"));
        }
        Ok(())
    }

    /// Opens the storages and the status store (`default_status` when none is configured)
    /// and builds the flow.
    pub async fn build(&self, default_status: &str) -> Result<OverwriteFlow> {
        let process = CommandProcess::parse(
            &self.exec,
            self.shell,
            self.timeout.map(HumanDuration::as_duration),
        )?;
        let source = Storage::open(&self.source)?;
        let mut store_options = StatusStoreOptions::new(self.namespace());
        if let Some(max_errors) = self.max_errors {
            store_options = store_options.with_max_errors(max_errors);
        }
        let status = open_status_store(
            self.status.as_deref().unwrap_or(default_status),
            store_options,
        )
        .await?;
        let mut options = OverwriteOptions::new(self.state_dir());
        options.walk = self.walk_options();
        if let Some(concurrency) = self.concurrency {
            options.concurrency = Some(concurrency.max(1));
        }
        if let Some(retries) = self.retries {
            options.retry.limit = retries;
        }
        options.backlog = self.backlog.clone();
        options.dry_run = self.dry_run;
        options.cooperate = self.cooperate;
        let flow = OverwriteFlow::new(source, status, Arc::new(process), options);
        Ok(match &self.target {
            Some(target) => flow.with_target(Storage::open(target)?),
            None => flow,
        })
    }
}
