//! Cooperating runs (`OverwriteOptions::cooperate`): several processes, on one machine or
//! many, sharing one status store and one storage split a flow's work instead of refusing
//! each other.
//!
//! * Each run registers itself in the store ([`StatusStore::join_run`]) and renews its
//!   registration with the heartbeat; it keeps its own state directory. It does not take
//!   the exclusive run lease, and is refused while a run without `cooperate` holds it (and
//!   the other way round).
//! * The process phase claims each batch's files right after the status-store check
//!   ([`StatusStore::claim`]): a file claimed by another live run is skipped. A claim
//!   taken over from a run that is gone carries the file as that run claimed it: if the
//!   file changed since, that run's write reached the storage before it died, and the file
//!   is recorded as done without running the function again.
//! * The group commit records a file only while this run still holds its claim
//!   ([`StatusStore::report_done_claimed`], fencing).
//! * A run registered by a process of this host that is gone is expired at once by the
//!   next run (its claims are kept for the takeover above), which also removes its
//!   temporary files and resolves its journal.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ikkatsu_core::launch::{ProcessOwner, current_owner};
use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::{FileInfo, LocalFiles};

use crate::status_store::{ALREADY_RUNNING, Lease, StatusStore};

/// Registers `me` as a cooperating run. Returns the runs of this host that are gone (their
/// registrations are expired, their claims kept for the takeover).
pub(crate) async fn join(
    status: &dyn StatusStore,
    me: &Lease,
    live: &[String],
) -> Result<Vec<Lease>> {
    if !status.supports_claims() {
        return Err(Error::config(format!(
            "status store {} cannot share a flow's work between runs (--cooperate): use a Redis, PostgreSQL or MySQL store, or run without --cooperate",
            status.describe()
        )));
    }
    let now = Utc::now();
    if let Some(holder) = status.lease().await?
        && !holder.is_expired(now)
        && !gone(&holder, live)
    {
        return Err(Error::new(
            ErrorKind::AlreadyRunning,
            format!(
                "{ALREADY_RUNNING}the overwrite flow of namespace `{}` in status store {} is being run without --cooperate by {}; wait for it to finish",
                status.options().namespace,
                status.describe(),
                holder.describe_holder()
            ),
        ));
    }
    let mut dead = Vec::new();
    for run in status.runs().await? {
        if run.token != me.token && !run.is_expired(now) && gone(&run, live) {
            let mut expired = run.clone();
            expired.heartbeat = DateTime::<Utc>::UNIX_EPOCH;
            expired.ttl_ms = 1;
            status.join_run(&expired, true).await?;
            tracing::warn!(run = %run.describe_holder(), "a cooperating run of this host is gone; its claims are taken over");
            dead.push(run);
        }
    }
    status.join_run(me, false).await?;
    Ok(dead)
}

/// Refuses a run without `cooperate` while cooperating runs are registered and alive.
pub(crate) async fn check_no_cooperating_runs(
    status: &dyn StatusStore,
    live: &[String],
) -> Result<()> {
    if !status.supports_claims() {
        return Ok(());
    }
    let now = Utc::now();
    if let Some(run) = status
        .runs()
        .await?
        .into_iter()
        .find(|run| !run.is_expired(now) && !gone(run, live))
    {
        return Err(Error::new(
            ErrorKind::AlreadyRunning,
            format!(
                "{ALREADY_RUNNING}the overwrite flow of namespace `{}` in status store {} is being run with --cooperate by {}; add --cooperate to join it, or wait for it to finish",
                status.options().namespace,
                status.describe(),
                run.describe_holder()
            ),
        ));
    }
    Ok(())
}

/// Whether the process of `run` is known to be gone: a process of this host that no longer
/// exists, or a flow of this process that let go of it.
pub(crate) fn gone(run: &Lease, live: &[String]) -> bool {
    let me = current_owner();
    if run.host == me.host && run.pid == me.pid {
        return !live.contains(&run.token);
    }
    ProcessOwner {
        host: run.host.clone(),
        pid: run.pid,
    }
    .is_alive_here()
        == Some(false)
}

/// The files of `needed` this run may process: those it could claim, less those a run
/// that is gone had already written (recorded as done here). On the local file system
/// the claimed files are read again and checked again: another run may have finished one
/// between the check and the claim.
pub(crate) async fn claim(
    status: &Arc<dyn StatusStore>,
    me: &Lease,
    needed: Vec<FileInfo>,
    local: Option<LocalFiles>,
) -> Result<Vec<FileInfo>> {
    let mut out = Vec::with_capacity(needed.len());
    let mut written = Vec::new();
    for claimed in status.claim(me, needed).await? {
        match &claimed.taken_from {
            Some(before) if !claimed.file.same_content_as(before) => {
                tracing::info!(path = %claimed.file.path, "written by a run that is gone; recorded as done");
                written.push((claimed.file.clone(), claimed.file));
            }
            _ => out.push(claimed.file),
        }
    }
    if !written.is_empty() {
        let lost = status.report_done_claimed(&me.token, &written).await?;
        for path in lost {
            tracing::warn!(path = %path, "claim taken by another run meanwhile");
        }
    }
    let Some(local) = local else {
        return Ok(out);
    };
    let fresh = tokio::task::spawn_blocking(move || {
        out.into_iter()
            .filter_map(|file| local.stat(&file.path).ok())
            .collect::<Vec<FileInfo>>()
    })
    .await
    .map_err(|err| {
        Error::new(
            ErrorKind::Unexpected,
            format!("a file-system thread of the overwrite flow: {err}"),
        )
    })?;
    status.needs_processing(fresh).await
}

/// Records `done` as [`StatusStore::report_done_all`] does, or, for a cooperating run, only
/// the files it still holds claims on; returns the files not recorded (taken by another
/// run), removed from `done`.
pub(crate) async fn record_done(
    status: &Arc<dyn StatusStore>,
    me: Option<&Lease>,
    done: &mut Vec<(FileInfo, FileInfo)>,
) -> Result<Vec<FileInfo>> {
    let Some(me) = me else {
        status.report_done_all(done).await?;
        return Ok(Vec::new());
    };
    let lost = status.report_done_claimed(&me.token, done).await?;
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let (kept, taken): (Vec<_>, Vec<_>) = std::mem::take(done)
        .into_iter()
        .partition(|(file, _)| !lost.contains(&file.path));
    *done = kept;
    Ok(taken.into_iter().map(|(file, _)| file).collect())
}
