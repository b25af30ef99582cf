//! The run lease of a status store: which process runs the flow of a namespace right now.
//!
//! One record per namespace, [`Lease`], written by [`StatusStore::acquire_lease`] only when
//! there is none, when the one there has expired (its heartbeat is older than its time to
//! live), or when the caller names its token (a takeover of a holder known to be gone).
//! The holder renews it ([`StatusStore::renew_lease`]) and releases it at the end.
//!
//! [`StatusStore::acquire_lease`]: super::StatusStore::acquire_lease
//! [`StatusStore::renew_lease`]: super::StatusStore::renew_lease

use std::time::Duration;

use chrono::{DateTime, Utc};
use ikkatsu_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// The start of every "already running" message, so that a refused run can be told from
/// other failures in what a job records (a step's exit description).
pub const ALREADY_RUNNING: &str = "already running: ";

/// A run's lease on a namespace of a status store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique per run: what renewals, releases and takeovers compare.
    pub token: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// When the holder took the lease.
    pub acquired: DateTime<Utc>,
    /// When the holder last renewed it.
    pub heartbeat: DateTime<Utc>,
    /// How long after its last heartbeat the lease expires, in milliseconds.
    pub ttl_ms: u64,
    /// The holder's state directory (absolute), where its journal is: a run taking over
    /// the lease of a killed holder of the same host resolves that journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
}

impl Lease {
    /// A new lease for `host`/`pid`, taken now, living `ttl` after each heartbeat.
    pub fn new(host: impl Into<String>, pid: u32, ttl: Duration) -> Self {
        let now = Utc::now();
        let host = host.into();
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        Lease {
            token: format!("{host}:{pid}:{nanos:x}"),
            host,
            pid,
            acquired: now,
            heartbeat: now,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
            state_dir: None,
        }
    }

    /// The time to live after a heartbeat.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// When the lease expires unless renewed.
    pub fn expires(&self) -> DateTime<Utc> {
        let ttl = chrono::Duration::milliseconds(i64::try_from(self.ttl_ms).unwrap_or(i64::MAX));
        self.heartbeat
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Whether the lease has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires() < now
    }

    /// `host` pid `pid`, last heartbeat `N`s ago (for messages).
    pub fn describe_holder(&self) -> String {
        let ago = (Utc::now() - self.heartbeat).num_milliseconds().max(0) as f64 / 1000.0;
        format!(
            "host {} pid {}, heartbeat last seen {ago:.1}s ago ({})",
            self.host,
            self.pid,
            self.heartbeat
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }

    /// Whether a record `current` may be replaced by `self`: it is ours, it has expired at
    /// `now`, or it is the one named for a takeover.
    pub fn may_replace(
        &self,
        current: &Lease,
        take_over: Option<&str>,
        now: DateTime<Utc>,
    ) -> bool {
        current.token == self.token
            || take_over == Some(current.token.as_str())
            || current.is_expired(now)
    }

    /// The lease as compact JSON (how every backend stores it).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|err| {
            Error::new(ErrorKind::Unexpected, format!("encoding a lease: {err}")).with_source(err)
        })
    }

    /// Parses [`Lease::to_json`]; `describe` names the store in the error.
    pub fn from_json(describe: &str, text: &str) -> Result<Lease> {
        serde_json::from_str(text).map_err(|err| {
            Error::new(
                ErrorKind::Parse,
                format!("status store {describe}: the run lease record is not valid: {err}"),
            )
            .with_source(err)
        })
    }
}

/// What [`StatusStore::acquire_lease`](super::StatusStore::acquire_lease) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAttempt {
    /// The caller holds the lease now; `replaced` is the record it replaced (an expired
    /// lease, or the one named for a takeover), if any.
    Acquired {
        /// The lease that was there before.
        replaced: Option<Lease>,
    },
    /// Another run holds it.
    Held(Lease),
}

/// The decision every backend makes on the record `current` in one atomic step:
/// `Ok(replaced)` to write `me` (replacing `replaced`, not ours), `Err(holder)` when
/// another run holds the lease.
pub(crate) fn decide(
    me: &Lease,
    current: Option<Lease>,
    take_over: Option<&str>,
    now: DateTime<Utc>,
) -> std::result::Result<Option<Lease>, Lease> {
    match current {
        None => Ok(None),
        Some(current) if current.token == me.token => Ok(None),
        Some(current) if me.may_replace(&current, take_over, now) => Ok(Some(current)),
        Some(current) => Err(current),
    }
}

/// The attempt for a decision.
pub(crate) fn attempt(decision: std::result::Result<Option<Lease>, Lease>) -> LeaseAttempt {
    match decision {
        Ok(replaced) => LeaseAttempt::Acquired { replaced },
        Err(holder) => LeaseAttempt::Held(holder),
    }
}
