//! The error type of the core: a [`ErrorKind`], a message naming the object, whether the
//! failure is temporary, and the source error.

use std::fmt;

/// What kind of failure an [`Error`] is. Retry and skip policies match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration or job definition is invalid.
    Config,
    /// Input data could not be parsed (a bad CSV row, malformed JSON line, ...).
    Parse,
    /// Reading or writing a file or stream failed.
    Io,
    /// An object (file, execution, instance, component) does not exist.
    NotFound,
    /// An object already exists.
    AlreadyExists,
    /// The job instance already has a running execution.
    AlreadyRunning,
    /// The job instance already completed and cannot be run again with these parameters.
    AlreadyComplete,
    /// The requested operation is not allowed in the object's current state.
    InvalidState,
    /// The job repository failed.
    Repository,
    /// A user component (processor, script, tasklet, command) failed.
    Component,
    /// Access was denied.
    PermissionDenied,
    /// The work was cancelled (graceful stop).
    Cancelled,
    /// The object changed since it was read (a conditional write was refused).
    Conflict,
    /// Anything else.
    Unexpected,
}

impl ErrorKind {
    /// The kind's stable name as used in YAML skip/retry lists and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Parse => "parse",
            ErrorKind::Io => "io",
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::AlreadyRunning => "already-running",
            ErrorKind::AlreadyComplete => "already-complete",
            ErrorKind::InvalidState => "invalid-state",
            ErrorKind::Repository => "repository",
            ErrorKind::Component => "component",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unexpected => "unexpected",
        }
    }

    /// Every kind, in declaration order (what job files may list under `kinds`).
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::Config,
        ErrorKind::Parse,
        ErrorKind::Io,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::AlreadyRunning,
        ErrorKind::AlreadyComplete,
        ErrorKind::InvalidState,
        ErrorKind::Repository,
        ErrorKind::Component,
        ErrorKind::PermissionDenied,
        ErrorKind::Cancelled,
        ErrorKind::Conflict,
        ErrorKind::Unexpected,
    ];

    /// Parses a kind name as written by [`ErrorKind::as_str`].
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of ikkatsu's core and of the components built on it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    temporary: bool,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A permanent error of `kind` with a message that names the object and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            temporary: false,
            source: None,
        }
    }

    /// Shorthand for a [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// Shorthand for a [`ErrorKind::Repository`] error.
    pub fn repository(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Repository, message)
    }

    /// Shorthand for an [`ErrorKind::Io`] error naming `what` (usually a path).
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        let temporary = matches!(
            err.kind(),
            std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
        );
        Error::new(kind, format!("{what}: {err}"))
            .with_source(err)
            .set_temporary(temporary)
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Marks the error as temporary (worth retrying) or not.
    pub fn set_temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Prefixes the message with context, e.g. the step or file it happened in.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The message without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by the messages of its sources that it does not already contain:
    /// what to show a person.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text.push_str(": ");
                text.push_str(&s_text);
            }
            source = s.source();
        }
        text
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::new(ErrorKind::Parse, format!("JSON: {err}")).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    /// The position of `kind` in [`ErrorKind::ALL`]; the match is exhaustive, so a new kind
    /// does not compile until it is placed here and in `ALL`.
    fn position(kind: ErrorKind) -> usize {
        match kind {
            ErrorKind::Config => 0,
            ErrorKind::Parse => 1,
            ErrorKind::Io => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::AlreadyExists => 4,
            ErrorKind::AlreadyRunning => 5,
            ErrorKind::AlreadyComplete => 6,
            ErrorKind::InvalidState => 7,
            ErrorKind::Repository => 8,
            ErrorKind::Component => 9,
            ErrorKind::PermissionDenied => 10,
            ErrorKind::Cancelled => 11,
            ErrorKind::Conflict => 12,
            ErrorKind::Unexpected => 13,
        }
    }

    #[test]
    fn all_holds_every_kind_once() {
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(position(kind), i, "{kind}");
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
    }
}
