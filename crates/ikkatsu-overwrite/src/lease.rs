//! One run at a time per flow: the run lease.
//!
//! Before it scans or processes, a run of the overwrite flow takes two locks, and holds them
//! until it ends:
//!
//! * the **state directory** (`<state-dir>/lock`, an exclusive `flock` naming the holder):
//!   the backlog, the journal and the work directory there belong to one process; the
//!   operating system lets go of it when the process dies, even by `kill -9`;
//! * the **run lease** of the flow's namespace in the status store ([`Lease`]), renewed by a
//!   heartbeat every third of its time to live ([`OverwriteOptions::lease_ttl`](crate::OverwriteOptions::lease_ttl)), so that
//!   runs on other machines sharing the store see it too.
//!
//! A second run finds either held and is refused with an [`ErrorKind::AlreadyRunning`]
//! error naming the holder's host, pid and last heartbeat (the CLI's exit code 4). A lease
//! whose holder is gone is taken over, with a warning: one whose heartbeat is older than
//! its time to live, or one held by a process of this host that no longer exists. A run
//! that took over a lease left behind by a killed run removes that run's temporary files
//! beside the files of the tree (`.NAME.ikkatsu-PID-N.tmp`, only those of a process that is
//! gone); its journal and work directory are resolved by the next run on the same state
//! directory, which can only be a run holding the lock, so never a live run's.
//!
//! A run that loses its lease (its heartbeat could not be written for a whole time to live
//! and another run took the lease) stops dispatching files and fails.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ikkatsu_core::launch::{ProcessOwner, current_owner};
use ikkatsu_core::{CancellationToken, Error, ErrorKind, Result};

use crate::status_store::{ALREADY_RUNNING, Lease, LeaseAttempt, StatusStore};

/// The default time to live of a run lease after each heartbeat.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// What a run takes its lease with: its state directory, the lease's time to live, and
/// whether it cooperates with other runs instead of excluding them.
#[derive(Debug, Clone)]
pub(crate) struct LeaseTerms {
    /// The run's state directory (locked while the lease is held).
    pub state_dir: PathBuf,
    /// How long the lease lives after each heartbeat.
    pub ttl: Duration,
    /// Register as a cooperating run instead of taking the exclusive lease.
    pub cooperate: bool,
}

/// The name of the lock file in the state directory.
const LOCK_FILE: &str = "lock";

/// The tokens of the leases this process holds: a lease naming this process whose token
/// is not here was left by a flow dropped without releasing it.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<String>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The lease of a flow, taken by the first of its phases that runs and released at the end.
#[derive(Default)]
pub(crate) struct LeaseSlot {
    held: tokio::sync::Mutex<Option<Held>>,
    /// The leases (or cooperating runs) this run took over from killed runs, until their
    /// temporary files are removed.
    swept: Mutex<Vec<Lease>>,
    /// A cooperating run's registration (what its claims are made with).
    member: Mutex<Option<Lease>>,
}

/// What a run holds.
struct Held {
    status: Arc<dyn StatusStore>,
    lease: Arc<Mutex<Lease>>,
    /// Cancelled when the lease is lost.
    lost: CancellationToken,
    /// Cancelled when the lease is released.
    ended: CancellationToken,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Registered as a cooperating run instead of holding the exclusive lease.
    cooperating: bool,
    /// The state directory's lock, held while the file is open.
    _state_lock: std::fs::File,
}

impl LeaseSlot {
    /// Takes the state directory's lock and the run lease, unless this flow holds them
    /// already. Returns a token cancelled when `cancel` is, or when the lease is lost.
    pub(crate) async fn hold(
        &self,
        status: &Arc<dyn StatusStore>,
        options: &LeaseTerms,
        cancel: &CancellationToken,
    ) -> Result<CancellationToken> {
        let mut held = self.held.lock().await;
        if held.is_none() {
            let state_lock = lock_state_dir(&options.state_dir)?;
            let (lease, replaced) = if options.cooperate {
                let me = me(options);
                // Live before it is registered: another flow of this process that lists
                // the runs meanwhile must not take this one for a flow that let go.
                live().push(me.token.clone());
                let live_now = live().clone();
                let dead = match crate::cooperate::join(status.as_ref(), &me, &live_now).await {
                    Ok(dead) => dead,
                    Err(err) => {
                        live().retain(|token| *token != me.token);
                        return Err(err);
                    }
                };
                *self.member.lock().unwrap_or_else(|p| p.into_inner()) = Some(me.clone());
                (me, dead)
            } else {
                let (lease, replaced) = acquire(status.as_ref(), options).await?;
                let live_now = live().clone();
                if let Err(err) =
                    crate::cooperate::check_no_cooperating_runs(status.as_ref(), &live_now).await
                {
                    let _ = status.release_lease(&lease.token).await;
                    return Err(err);
                }
                (lease, replaced.into_iter().collect())
            };
            self.swept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(replaced);
            if !options.cooperate {
                live().push(lease.token.clone());
            }
            let lease = Arc::new(Mutex::new(lease));
            let lost = CancellationToken::new();
            let heartbeat = tokio::spawn(heartbeat(
                Arc::clone(status),
                Arc::clone(&lease),
                lost.clone(),
                options.cooperate,
            ));
            *held = Some(Held {
                status: Arc::clone(status),
                lease,
                lost,
                ended: CancellationToken::new(),
                heartbeat,
                cooperating: options.cooperate,
                _state_lock: state_lock,
            });
        }
        let run = cancel.child_token();
        if let Some(held) = held.as_ref() {
            let lost = held.lost.clone();
            let ended = held.ended.clone();
            let stop = run.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = lost.cancelled() => stop.cancel(),
                    _ = stop.cancelled() => {}
                    _ = ended.cancelled() => {}
                }
            });
        }
        Ok(run)
    }

    /// The lease of a killed run this run took over, once: its temporary files are to be
    /// removed.
    pub(crate) fn take_over_cleanup(&self) -> Vec<Lease> {
        std::mem::take(&mut *self.swept.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A cooperating run's registration, while it holds it.
    pub(crate) fn member(&self) -> Option<Lease> {
        self.member
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Releases the run lease and the state directory, if held. An error if the lease was
    /// lost while it was held (the run stopped because of it).
    pub(crate) async fn release(&self) -> Result<()> {
        let Some(held) = self.held.lock().await.take() else {
            return Ok(());
        };
        held.heartbeat.abort();
        held.ended.cancel();
        let token = held.token();
        live().retain(|t| *t != token);
        let status = held.status.as_ref();
        if held.lost.is_cancelled() {
            return Err(Error::new(
                ErrorKind::AlreadyRunning,
                format!(
                    "{ALREADY_RUNNING}this run lost its lease on namespace `{}` of status store {} (its heartbeat could not be written, and another run may have taken over) and stopped; run again once the other run is finished",
                    status.options().namespace,
                    status.describe()
                ),
            ));
        }
        self.member.lock().unwrap_or_else(|p| p.into_inner()).take();
        let released = if held.cooperating {
            status.leave_run(&token).await
        } else {
            status.release_lease(&token).await
        };
        if let Err(err) = released {
            tracing::warn!(error = %err.report(), "cannot release the run lease; it expires by itself");
        }
        Ok(())
    }
}

impl Held {
    fn token(&self) -> String {
        self.lease
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .token
            .clone()
    }
}

impl Drop for Held {
    /// A flow dropped while it holds the lease (a scan not followed by its process phase):
    /// the heartbeat ends and the lease is released in the background.
    fn drop(&mut self) {
        self.heartbeat.abort();
        self.ended.cancel();
        let token = self.token();
        let mut live = live();
        if !live.contains(&token) {
            return;
        }
        live.retain(|t| *t != token);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let status = Arc::clone(&self.status);
            let cooperating = self.cooperating;
            runtime.spawn(async move {
                let _ = if cooperating {
                    status.leave_run(&token).await
                } else {
                    status.release_lease(&token).await
                };
            });
        }
    }
}

/// Takes the lease of the store's namespace, or refuses. Returns the lease and the one it
/// replaced (expired, or held by a process of this host that is gone).
async fn acquire(status: &dyn StatusStore, options: &LeaseTerms) -> Result<(Lease, Option<Lease>)> {
    let owner = current_owner();
    let me = me(options);
    let replaced = match status.acquire_lease(&me, None).await? {
        LeaseAttempt::Acquired { replaced } => replaced,
        LeaseAttempt::Held(holder) => {
            let gone = if holder.host == owner.host && holder.pid == owner.pid {
                // This process: gone if no flow of it holds that lease any more.
                !live().contains(&holder.token)
            } else {
                ProcessOwner {
                    host: holder.host.clone(),
                    pid: holder.pid,
                }
                .is_alive_here()
                    == Some(false)
            };
            if !gone {
                return Err(refusal(status, &holder));
            }
            match status.acquire_lease(&me, Some(&holder.token)).await? {
                LeaseAttempt::Acquired { replaced } => replaced,
                LeaseAttempt::Held(other) => return Err(refusal(status, &other)),
            }
        }
    };
    if let Some(old) = &replaced {
        tracing::warn!(
            namespace = %status.options().namespace,
            holder = %old.describe_holder(),
            "took over the run lease of a run that is gone (killed or cut off); its temporary files are removed"
        );
    }
    Ok((me, replaced))
}

/// A new lease (or cooperating run) for this process.
fn me(options: &LeaseTerms) -> Lease {
    let owner = current_owner();
    let mut me = Lease::new(owner.host.clone(), owner.pid, options.ttl);
    me.state_dir = std::path::absolute(&options.state_dir)
        .ok()
        .map(|dir| dir.display().to_string());
    me
}

fn refusal(status: &dyn StatusStore, holder: &Lease) -> Error {
    Error::new(
        ErrorKind::AlreadyRunning,
        format!(
            "{ALREADY_RUNNING}the overwrite flow of namespace `{}` in status store {} is being run by {}; wait for it to finish (if that process is gone, its lease expires {}s after its last heartbeat)",
            status.options().namespace,
            status.describe(),
            holder.describe_holder(),
            holder.ttl().as_secs_f64()
        ),
    )
}

/// Renews the lease every third of its time to live. Failures are retried; once the lease
/// could not be renewed for a whole time to live, or another run holds it, `lost` is
/// cancelled.
async fn heartbeat(
    status: Arc<dyn StatusStore>,
    lease: Arc<Mutex<Lease>>,
    lost: CancellationToken,
    cooperating: bool,
) {
    let ttl = lease.lock().unwrap_or_else(|p| p.into_inner()).ttl();
    let every = (ttl / 3).max(Duration::from_millis(10));
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let current = {
            let mut lease = lease.lock().unwrap_or_else(|p| p.into_inner());
            lease.heartbeat = chrono::Utc::now();
            lease.clone()
        };
        let renewed_now = if cooperating {
            status.join_run(&current, true).await
        } else {
            status.renew_lease(&current).await
        };
        match renewed_now {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                tracing::error!(
                    namespace = %status.options().namespace,
                    "the run lease was taken by another run; stopping"
                );
                lost.cancel();
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err.report(), "cannot renew the run lease; retrying");
                if renewed.elapsed() >= ttl {
                    tracing::error!(
                        "the run lease could not be renewed for its whole time to live; stopping"
                    );
                    lost.cancel();
                    return;
                }
            }
        }
    }
}

/// Locks `<state_dir>/lock` for this process, or refuses naming the holder.
pub(crate) fn lock_state_dir(state_dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(state_dir).map_err(|err| {
        Error::io(
            format_args!("state directory `{}`", state_dir.display()),
            err,
        )
    })?;
    let path = state_dir.join(LOCK_FILE);
    let io = |err| Error::io(format_args!("lock file `{}`", path.display()), err);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::new(
                ErrorKind::AlreadyRunning,
                format!(
                    "{ALREADY_RUNNING}state directory `{}` is in use by {}; wait for that run to finish, or give this run its own --state-dir",
                    state_dir.display(),
                    if holder.is_empty() {
                        "another process".to_string()
                    } else {
                        holder.to_string()
                    }
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(err)) => return Err(io(err)),
    }
    let owner = current_owner();
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(
        file,
        "host {} pid {} (since {since})",
        owner.host, owner.pid
    )
    .map_err(io)?;
    Ok(file)
}

/// Removes the temporary files (`.NAME.ikkatsu-PID-N.tmp`) that processes that are gone left
/// in the tree at `root`: those of `dead`'s pid, and on `dead`'s host (this one) those of
/// any process that no longer exists. Symbolic links are not followed. Returns how many
/// were removed.
pub(crate) fn sweep_temp_files(root: &Path, dead: &Lease) -> u64 {
    let me = current_owner();
    let mut removed = 0;
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(temp_file_pid) else {
                continue;
            };
            let gone = pid == dead.pid
                || (dead.host == me.host
                    && ProcessOwner {
                        host: me.host.clone(),
                        pid,
                    }
                    .is_alive_here()
                        == Some(false));
            if gone && pid != me.pid && std::fs::remove_file(entry.path()).is_ok() {
                tracing::info!(path = %entry.path().display(), "removed a temporary file of a killed run");
                removed += 1;
            }
        }
    }
    removed
}

/// The pid in a temporary file name `.NAME.ikkatsu-PID-N.tmp`.
fn temp_file_pid(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, tail) = stem.rsplit_once(".ikkatsu-")?;
    let (pid, counter) = tail.split_once('-')?;
    if counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_file_names() {
        assert_eq!(temp_file_pid(".a.txt.ikkatsu-123-4.tmp"), Some(123));
        assert_eq!(temp_file_pid(".a.ikkatsu-b.ikkatsu-9-0.tmp"), Some(9));
        assert_eq!(temp_file_pid("a.txt.ikkatsu-123-4.tmp"), None);
        assert_eq!(temp_file_pid(".a.txt.ikkatsu-123-x.tmp"), None);
        assert_eq!(temp_file_pid(".a.tmp"), None);
    }
}
