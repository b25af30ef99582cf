//! [`BatchStatus`] (the engine's lifecycle state) and [`ExitStatus`] (the free-form exit code
//! that flow transitions match on).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// Lifecycle state of a job or step execution, ordered from "best" to "worst" so that
/// combining the states of several steps keeps the most severe (see [`BatchStatus::upgrade_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    /// Finished successfully.
    Completed,
    /// Created, not yet running.
    Starting,
    /// Running.
    Started,
    /// A stop was requested; the execution stops at the next chunk boundary.
    Stopping,
    /// Stopped on request; restartable.
    Stopped,
    /// Failed; restartable.
    Failed,
    /// Given up on: never restarted.
    Abandoned,
    /// Unknown (e.g. a value written by a newer version).
    Unknown,
}

impl BatchStatus {
    /// All statuses, in order.
    pub const ALL: [BatchStatus; 8] = [
        BatchStatus::Completed,
        BatchStatus::Starting,
        BatchStatus::Started,
        BatchStatus::Stopping,
        BatchStatus::Stopped,
        BatchStatus::Failed,
        BatchStatus::Abandoned,
        BatchStatus::Unknown,
    ];

    /// The status as stored and printed (`COMPLETED`, `FAILED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Completed => "COMPLETED",
            BatchStatus::Starting => "STARTING",
            BatchStatus::Started => "STARTED",
            BatchStatus::Stopping => "STOPPING",
            BatchStatus::Stopped => "STOPPED",
            BatchStatus::Failed => "FAILED",
            BatchStatus::Abandoned => "ABANDONED",
            BatchStatus::Unknown => "UNKNOWN",
        }
    }

    /// Whether an execution in this status is still running (or about to).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            BatchStatus::Starting | BatchStatus::Started | BatchStatus::Stopping
        )
    }

    /// Whether an execution that ended in this status can be restarted.
    pub fn is_restartable(self) -> bool {
        matches!(self, BatchStatus::Stopped | BatchStatus::Failed)
    }

    /// Combines two statuses: the more severe one wins, except that `STARTING`/`STARTED`
    /// upgrade to a finished status.
    pub fn upgrade_to(self, other: BatchStatus) -> BatchStatus {
        if self > BatchStatus::Started || other > BatchStatus::Started {
            self.max(other)
        } else if self == BatchStatus::Completed || other == BatchStatus::Completed {
            BatchStatus::Completed
        } else {
            self.max(other)
        }
    }
}

impl fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BatchStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        BatchStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == upper)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "unknown batch status `{s}`: expected one of COMPLETED, STARTING, STARTED, STOPPING, STOPPED, FAILED, ABANDONED"
                    ),
                )
            })
    }
}

/// The exit status of a job or step: an exit code (matched by flow transitions) and a
/// description (for people; holds the error message on failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code: `COMPLETED`, `FAILED`, `STOPPED`, `NOOP`, `UNKNOWN`, `EXECUTING` or any
    /// user-defined code.
    pub exit_code: String,
    /// Free text, for example the error that failed the step.
    pub description: String,
}

impl ExitStatus {
    /// Exit code of a successful execution.
    pub const COMPLETED: &'static str = "COMPLETED";
    /// Exit code of a failed execution.
    pub const FAILED: &'static str = "FAILED";
    /// Exit code of a stopped execution.
    pub const STOPPED: &'static str = "STOPPED";
    /// Exit code of an execution that is still running.
    pub const EXECUTING: &'static str = "EXECUTING";
    /// Exit code of a step that had nothing to do (already complete on restart).
    pub const NOOP: &'static str = "NOOP";
    /// Exit code when nothing is known.
    pub const UNKNOWN: &'static str = "UNKNOWN";

    /// An exit status with the given code and no description.
    pub fn new(exit_code: impl Into<String>) -> Self {
        ExitStatus {
            exit_code: exit_code.into(),
            description: String::new(),
        }
    }

    /// Sets the description, with every registered secret as `***`
    /// ([`crate::secret::redact`]): descriptions hold error messages and are stored.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        let description = description.into();
        self.description = crate::secret::redact(&description).into_owned();
        self
    }

    /// `COMPLETED`.
    pub fn completed() -> Self {
        ExitStatus::new(Self::COMPLETED)
    }

    /// `FAILED`.
    pub fn failed() -> Self {
        ExitStatus::new(Self::FAILED)
    }

    /// `STOPPED`.
    pub fn stopped() -> Self {
        ExitStatus::new(Self::STOPPED)
    }

    /// `EXECUTING`.
    pub fn executing() -> Self {
        ExitStatus::new(Self::EXECUTING)
    }

    /// `UNKNOWN`.
    pub fn unknown() -> Self {
        ExitStatus::new(Self::UNKNOWN)
    }

    /// The default exit status for a batch status.
    pub fn for_status(status: BatchStatus) -> Self {
        match status {
            BatchStatus::Completed => ExitStatus::completed(),
            BatchStatus::Failed => ExitStatus::failed(),
            BatchStatus::Stopped | BatchStatus::Stopping => ExitStatus::stopped(),
            BatchStatus::Starting | BatchStatus::Started => ExitStatus::executing(),
            BatchStatus::Abandoned => ExitStatus::new("ABANDONED"),
            BatchStatus::Unknown => ExitStatus::unknown(),
        }
    }
}

impl Default for ExitStatus {
    fn default() -> Self {
        ExitStatus::unknown()
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.description.is_empty() {
            f.write_str(&self.exit_code)
        } else {
            write!(f, "{} ({})", self.exit_code, self.description)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_keeps_the_most_severe() {
        assert_eq!(
            BatchStatus::Completed.upgrade_to(BatchStatus::Failed),
            BatchStatus::Failed
        );
        assert_eq!(
            BatchStatus::Started.upgrade_to(BatchStatus::Completed),
            BatchStatus::Completed
        );
        assert_eq!(
            BatchStatus::Stopped.upgrade_to(BatchStatus::Failed),
            BatchStatus::Failed
        );
        assert_eq!(
            BatchStatus::Starting.upgrade_to(BatchStatus::Started),
            BatchStatus::Started
        );
    }

    #[test]
    fn status_names_round_trip() {
        for status in BatchStatus::ALL {
            assert_eq!(status.as_str().parse::<BatchStatus>().unwrap(), status);
        }
        assert!("bogus".parse::<BatchStatus>().is_err());
    }
}
