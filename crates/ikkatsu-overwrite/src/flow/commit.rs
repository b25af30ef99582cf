//! The commit of processed files, in groups: one flush of the journal and of the new
//! contents covers a whole group, the files still unchanged are replaced, and the group's
//! successes are recorded in the status store in one durable write before the journal
//! forgets them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::{FileInfo, Replacement};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

use super::ctx::Ctx;
use super::tally::Outcome;

/// A file whose new content waits for the committer.
pub(super) enum Commit {
    /// In place on the local file system: `new` (beside the file) replaces the file if it
    /// still is `file`. Its journal entry is recorded, not yet synced.
    Replace { file: FileInfo, new: PathBuf },
    /// Already uploaded: record `walked` as what the next walk will see of `file`.
    Uploaded { file: FileInfo, walked: FileInfo },
}

impl Commit {
    fn file(&self) -> &FileInfo {
        match self {
            Commit::Replace { file, .. } | Commit::Uploaded { file, .. } => file,
        }
    }
}

/// A commit with the window slot it holds until it is finished.
pub(super) struct Pending {
    pub(super) commit: Commit,
    pub(super) slot: OwnedSemaphorePermit,
}

impl Ctx {
    /// The first stage of a group's commit: makes the journal entries and the new contents
    /// of its replacements durable (one flush each for the whole group).
    async fn flush_group(&self, group: Vec<Pending>) -> Result<FlushedGroup> {
        let mut flushed = FlushedGroup {
            uploaded: Vec::new(),
            replacements: Vec::new(),
            news: Vec::new(),
            slots: Vec::with_capacity(group.len()),
        };
        for pending in group {
            match pending.commit {
                Commit::Replace { file, new } => flushed.replacements.push(Replacement {
                    path: file.path.clone(),
                    new,
                    expected: file,
                }),
                Commit::Uploaded { file, walked } => flushed.uploaded.push((file, walked)),
            }
            flushed.slots.push(pending.slot);
        }
        if flushed.replacements.is_empty() {
            return Ok(flushed);
        }
        // The journal entries are durable before any file is replaced: flushed with the
        // new contents (one syncfs covers both when they are on the same file system).
        let started = Instant::now();
        let local = self.strategy.replacing()?;
        let replacements = std::mem::take(&mut flushed.replacements);
        let (replacements, news) = self
            .journal
            .sync_with(move |journal| {
                let journal_files: Vec<&Path> = journal.iter().flat_map(|j| j.paths()).collect();
                let mut also = journal_files;
                if let Some(journal) = &journal
                    && journal.dir_too()
                {
                    also.push(journal.dir());
                }
                let news = local.flush_new_contents(&replacements, true, &also)?;
                Ok((replacements, news))
            })
            .await?;
        flushed.replacements = replacements;
        flushed.news = news;
        tracing::debug!(
            files = flushed.replacements.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group flushed"
        );
        Ok(flushed)
    }

    /// The second stage: replaces the files that are unchanged (several threads at once:
    /// the comparisons and renames wait on the disk), records the group's successes in one
    /// durable write, then ends their journal entries and finishes each file.
    async fn finish_group(&self, group: FlushedGroup) -> Result<()> {
        let FlushedGroup {
            mut uploaded,
            replacements,
            news,
            slots,
        } = group;
        let mut done = std::mem::take(&mut uploaded);
        let mut outcomes: Vec<(FileInfo, Outcome)> = Vec::new();
        let started = Instant::now();
        if !replacements.is_empty() {
            let local = self.strategy.replacing()?;
            let replacements = Arc::new(replacements);
            let chunk = replacements.len().div_ceil(self.io_threads).max(1);
            let mut renames = JoinSet::new();
            let mut news = news.into_iter();
            for start in (0..replacements.len()).step_by(chunk) {
                let end = (start + chunk).min(replacements.len());
                let infos: Vec<Result<FileInfo>> = news.by_ref().take(end - start).collect();
                let replacements = Arc::clone(&replacements);
                let local = local.clone();
                renames.spawn_blocking(move || {
                    let results: Vec<Result<FileInfo>> = replacements[start..end]
                        .iter()
                        .zip(infos)
                        .map(|(r, new)| new.and_then(|new| local.replace_if_unchanged(r, new)))
                        .collect();
                    (start, results)
                });
            }
            let mut parts = Vec::with_capacity(renames.len());
            while let Some(part) = renames.join_next().await {
                parts.push(part.map_err(|err| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("a file-system thread of the overwrite flow: {err}"),
                    )
                })?);
            }
            parts.sort_by_key(|(start, _)| *start);
            let results = parts.into_iter().flat_map(|(_, results)| results);
            for (replacement, result) in replacements.iter().zip(results) {
                match result {
                    Ok(new) => done.push((replacement.expected.clone(), new)),
                    Err(err) if err.kind() == ErrorKind::Conflict => {
                        let message = conflict_message(&replacement.path, &err);
                        outcomes.push((replacement.expected.clone(), Outcome::Conflict(message)));
                    }
                    Err(err) => {
                        let message = format!("replacing `{}`: {}", replacement.path, err.report());
                        outcomes.push((replacement.expected.clone(), Outcome::Failed(message)));
                    }
                }
            }
        }
        let replace_ms = started.elapsed().as_secs_f64() * 1e3;
        // Recorded durably before the journal forgets the files.
        let taken =
            crate::cooperate::record_done(&self.status, self.claims.as_ref(), &mut done).await?;
        for file in taken {
            let message = format!(
                "`{}` was replaced, but another run had taken its claim meanwhile: it may be transformed again",
                file.path
            );
            outcomes.push((file, Outcome::Failed(message)));
        }
        tracing::debug!(
            done = done.len(),
            failed = outcomes.len(),
            replace_ms,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "group committed"
        );
        self.journal.end_all(
            done.iter()
                .map(|(file, _)| file.path.as_str())
                .chain(outcomes.iter().map(|(file, _)| file.path.as_str())),
        )?;
        for (file, _) in done {
            self.finish(&file, Outcome::Done).await;
        }
        for (file, outcome) in outcomes {
            self.finish(&file, outcome).await;
        }
        // Finished: their places in the window go to the next files.
        drop(slots);
        Ok(())
    }
}

/// Takes the commits of the workers in groups (whatever has arrived while the previous
/// group was being committed, up to `max_group`) and commits them in two overlapping
/// stages: while one group's files are replaced and recorded, the next group is flushed.
/// After an error it keeps draining the queue without committing, and returns the error.
pub(super) async fn committer(
    ctx: Arc<Ctx>,
    mut queue: mpsc::Receiver<Pending>,
    max_group: usize,
) -> Result<()> {
    let mut failure: Option<Error> = None;
    let mut finishing: Option<tokio::task::JoinHandle<Result<()>>> = None;
    let mut group = Vec::new();
    while queue.recv_many(&mut group, max_group).await > 0 {
        let taken = std::mem::take(&mut group);
        if failure.is_some() {
            abandon(taken).await;
            continue;
        }
        let flushed = ctx.flush_group(taken).await;
        if let Some(previous) = finishing.take() {
            note_failure(&ctx, &mut failure, joined(previous.await));
        }
        match flushed {
            Ok(flushed) if failure.is_none() => {
                let ctx = Arc::clone(&ctx);
                finishing = Some(tokio::spawn(ikkatsu_core::call::carry(async move {
                    ctx.finish_group(flushed).await
                })));
            }
            Ok(flushed) => abandon_flushed(flushed).await,
            Err(err) => note_failure(&ctx, &mut failure, Err(err)),
        }
    }
    if let Some(previous) = finishing.take() {
        note_failure(&ctx, &mut failure, joined(previous.await));
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// A group whose journal entries and new contents are durable.
struct FlushedGroup {
    /// Already uploaded: (source, what the next walk sees).
    uploaded: Vec<(FileInfo, FileInfo)>,
    replacements: Vec<Replacement>,
    /// What each replacement's new content is (or why it cannot be used).
    news: Vec<Result<FileInfo>>,
    /// The group's places in the window of files in flight.
    slots: Vec<OwnedSemaphorePermit>,
}

fn joined(result: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    result.map_err(|err| {
        Error::new(
            ErrorKind::Unexpected,
            format!("the overwrite committer task: {err}"),
        )
    })?
}

fn note_failure(ctx: &Ctx, failure: &mut Option<Error>, result: Result<()>) {
    if let Err(err) = result {
        tracing::error!(error = %err.report(), "committing processed files failed; the next run resumes them");
        ctx.halt.cancel();
        failure.get_or_insert(err);
    }
}

async fn abandon_flushed(group: FlushedGroup) {
    for replacement in group.replacements {
        let _ = tokio::fs::remove_file(&replacement.new).await;
    }
}

/// After a failed commit: removes the new contents that were not used. Journal entries
/// stay for the next run to resolve.
async fn abandon(group: Vec<Pending>) {
    for pending in group {
        if let Commit::Replace { new, .. } = &pending.commit {
            let _ = tokio::fs::remove_file(new).await;
        }
        tracing::warn!(path = %pending.commit.file().path, "not recorded after an earlier error; the next run resolves it");
    }
}

pub(super) fn conflict_message(path: &str, err: &Error) -> String {
    format!(
        "`{path}` changed while it was being processed; it was not overwritten: {}",
        err.report()
    )
}
