//! One table from OpenDAL errors to ikkatsu errors.

use ikkatsu_core::{Error, ErrorKind};
use opendal::ErrorKind as Od;

/// Maps an OpenDAL error of operation `op` on `path` (of the storage shown as `url`) to an
/// ikkatsu [`Error`], keeping the OpenDAL error as the source.
///
/// An error is temporary when OpenDAL says it is, when the backend is rate limiting, or when it
/// is an unexpected error that left the retry layer (which marks every error it returns as
/// persistent, so a temporary failure that outlived the storage's own retries cannot be told
/// apart from a permanent one): a caller with a longer backoff may still succeed, and its
/// attempts are bounded.
pub(crate) fn parse_error(err: opendal::Error, op: &str, path: &str, url: &str) -> Error {
    let (kind, hint, force_temporary) = match err.kind() {
        Od::NotFound => (ErrorKind::NotFound, "check the path", false),
        Od::PermissionDenied => (
            ErrorKind::PermissionDenied,
            "check the credentials and permissions",
            false,
        ),
        Od::AlreadyExists => (ErrorKind::AlreadyExists, "the object already exists", false),
        Od::ConditionNotMatch => (
            ErrorKind::Conflict,
            "the object changed since it was read; read it again",
            false,
        ),
        Od::RateLimited => (ErrorKind::Io, "rate limited; retry later", true),
        Od::IsADirectory | Od::NotADirectory => (
            ErrorKind::InvalidState,
            "a file was expected where there is a directory, or the reverse",
            false,
        ),
        Od::ConfigInvalid => (ErrorKind::Config, "check the storage URL", false),
        Od::Unsupported => (
            ErrorKind::InvalidState,
            "the backend does not support this operation",
            false,
        ),
        _ => (ErrorKind::Io, "check the storage", false),
    };
    let temporary = force_temporary
        || err.is_temporary()
        || (err.is_persistent() && err.kind() == Od::Unexpected);
    let path = if path.is_empty() { "/" } else { path };
    Error::new(
        kind,
        format!(
            "storage {url}: {op} {path:?} failed ({}): {hint}",
            err.kind()
        ),
    )
    .with_source(err)
    .set_temporary(temporary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (Od::NotFound, ErrorKind::NotFound, false),
            (Od::PermissionDenied, ErrorKind::PermissionDenied, false),
            (Od::AlreadyExists, ErrorKind::AlreadyExists, false),
            (Od::ConditionNotMatch, ErrorKind::Conflict, false),
            (Od::RateLimited, ErrorKind::Io, true),
            (Od::Unexpected, ErrorKind::Io, false),
        ];
        for (od, kind, temporary) in cases {
            let err = parse_error(opendal::Error::new(od, "x"), "read", "a/b", "memory:");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.is_temporary(), temporary);
            assert!(err.message().contains("\"a/b\""));
            assert!(std::error::Error::source(&err).is_some());
        }
        let err = parse_error(
            opendal::Error::new(Od::Unexpected, "reset").set_temporary(),
            "write",
            "f",
            "memory:",
        );
        assert!(err.is_temporary());
        let err = parse_error(
            opendal::Error::new(Od::NotFound, "gone").set_persistent(),
            "stat",
            "f",
            "memory:",
        );
        assert!(!err.is_temporary());
    }
}
