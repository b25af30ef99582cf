//! Recovery: the journal of an interrupted run (its uploads that reached the storage are
//! recorded as done), the temporary files and state directory of a killed run whose lease
//! this run took over, and the work directory left by a crash.

use std::path::{Path, PathBuf};

use ikkatsu_core::launch::current_owner;
use ikkatsu_core::{Error, ErrorKind, Result};

use super::OverwriteFlow;
use super::threads::blocking;
use crate::journal::Journal;
use crate::lease::{lock_state_dir, sweep_temp_files};
use crate::status_store::Lease;

impl OverwriteFlow {
    /// Resolves the journal of a crashed run: uploads that reached the storage are recorded
    /// as done (in one group), temporary copies they left are removed, and the journal is
    /// emptied. Returns how many were recorded.
    pub async fn recover(&self) -> Result<u64> {
        self.recover_journal(&self.options.journal_dir()).await
    }

    /// [`OverwriteFlow::recover`] with the journal in `dir`.
    pub(crate) async fn recover_journal(&self, dir: &Path) -> Result<u64> {
        let journal = Journal::open(dir)?;
        let pending = journal.pending()?;
        if pending.is_empty() {
            journal.clear()?;
            return Ok(0);
        }
        let target = self.target();
        match target.local_files() {
            Some(local) => {
                let paths: Vec<String> = pending.iter().map(|e| e.source.path.clone()).collect();
                blocking(move || local.clean_interrupted_writes(paths.iter().map(String::as_str)))
                    .await?;
            }
            None => {
                for entry in &pending {
                    target.clean_interrupted_write(&entry.source.path).await?;
                }
            }
        }
        let mut done = Vec::new();
        for entry in pending {
            let path = &entry.source.path;
            let now = match target.stat(path).await {
                Ok(info) => Some(info),
                Err(err) if err.kind() == ErrorKind::NotFound => None,
                Err(err) => return Err(err),
            };
            let uploaded = match (&now, &entry.before) {
                (Some(now), Some(before)) => !now.same_content_as(before),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if let (true, Some(now)) = (uploaded, now) {
                tracing::info!(path = %path, "upload of an interrupted run reached the storage; recorded as done");
                let walked = if self.target.is_some() {
                    entry.source.clone()
                } else {
                    now
                };
                done.push((entry.source, walked));
            }
        }
        // Durable before the journal forgets the entries.
        self.status.report_done_all(&done).await?;
        journal.clear()?;
        Ok(done.len() as u64)
    }

    /// After taking over the lease of a killed run: removes its temporary files beside the
    /// files of the tree (in place on the local file system, where they are made) and, when
    /// it ran on this host with another state directory, resolves its journal there and
    /// removes its work directory (under that directory's lock).
    pub(super) async fn clean_after_killed_runs(&self) -> Result<()> {
        for dead in self.lease.take_over_cleanup() {
            self.clean_after(dead).await?;
        }
        Ok(())
    }

    async fn clean_after(&self, dead: Lease) -> Result<()> {
        if let Some(local) = self.source.local_files().filter(|_| self.target.is_none()) {
            let root = local.root().to_path_buf();
            let dead = dead.clone();
            let removed = tokio::task::spawn_blocking(move || sweep_temp_files(&root, &dead)).await;
            if let Ok(removed) = removed
                && removed > 0
            {
                tracing::warn!(
                    removed,
                    "removed temporary files left in the tree by a killed run"
                );
            }
        }
        let ours = std::path::absolute(&self.options.state_dir).ok();
        let theirs = dead.state_dir.as_deref().map(PathBuf::from);
        let Some(theirs) = theirs.filter(|dir| {
            dead.host == current_owner().host && Some(dir) != ours.as_ref() && dir.is_dir()
        }) else {
            return Ok(());
        };
        let _lock = match lock_state_dir(&theirs) {
            Ok(lock) => lock,
            Err(err) => {
                tracing::warn!(error = %err.report(), "the killed run's state directory is in use; its journal is left to its user");
                return Ok(());
            }
        };
        let recovered = self.recover_journal(&theirs.join("journal")).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                state_dir = %theirs.display(),
                "recorded the uploads of the killed run that had reached the storage"
            );
        }
        let work = theirs.join("work");
        if work.exists()
            && let Err(err) = std::fs::remove_dir_all(&work)
        {
            tracing::warn!(path = %work.display(), error = %err, "cannot remove the killed run's work directory");
        }
        Ok(())
    }
}

/// Removes everything in `dir` (creating it if missing): temporary files of a crashed run.
/// The old directory is first moved aside, so that a file appearing in it meanwhile cannot
/// make the removal fail; what cannot be removed is left (and tried again next time).
pub(super) fn empty_dir(dir: &Path) -> Result<()> {
    let io = |err| Error::io(format_args!("work directory `{}`", dir.display()), err);
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("work")
        .to_string();
    if let Some(parent) = dir.parent()
        && let Ok(entries) = std::fs::read_dir(parent)
    {
        let stale = format!("{name}.stale-");
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&stale))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    if dir.exists() {
        let aside = dir.with_file_name(format!("{name}.stale-{}", std::process::id()));
        std::fs::rename(dir, &aside).map_err(io)?;
        if let Err(err) = std::fs::remove_dir_all(&aside) {
            tracing::warn!(path = %aside.display(), error = %err, "cannot remove the work directory of an earlier run yet");
        }
    }
    std::fs::create_dir_all(dir).map_err(io)
}
