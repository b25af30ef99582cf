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
        Od::NotFound => (ErrorKind::NotFound, "check the path".to_string(), false),
        Od::PermissionDenied => (
            ErrorKind::PermissionDenied,
            "check the credentials and permissions".to_string(),
            false,
        ),
        Od::AlreadyExists => (
            ErrorKind::AlreadyExists,
            "the object already exists".to_string(),
            false,
        ),
        Od::ConditionNotMatch => (
            ErrorKind::Conflict,
            "the object changed since it was read; read it again".to_string(),
            false,
        ),
        Od::RateLimited => (ErrorKind::Io, "rate limited; retry later".to_string(), true),
        Od::IsADirectory | Od::NotADirectory => (
            ErrorKind::InvalidState,
            "a file was expected where there is a directory, or the reverse".to_string(),
            false,
        ),
        Od::ConfigInvalid => (
            ErrorKind::Config,
            "check the storage URL and its options".to_string(),
            false,
        ),
        Od::Unsupported => (
            ErrorKind::InvalidState,
            "the backend does not support this operation".to_string(),
            false,
        ),
        _ => (ErrorKind::Io, "check the storage".to_string(), false),
    };
    let mut temporary = force_temporary
        || err.is_temporary()
        || (err.is_persistent() && err.kind() == Od::Unexpected);
    let (kind, hint) = match cause(&err) {
        Some(Cause::Tls(detail)) => {
            temporary = false;
            (
                ErrorKind::PermissionDenied,
                format!(
                    "the server's TLS certificate was refused ({detail}); trust the CA that \
                     signed it with the `ca-file` option, or check that the URL names the host \
                     the certificate is for"
                ),
            )
        }
        Some(Cause::HostKey(detail)) => {
            temporary = false;
            // The SFTP backend's own refusals already say what to do.
            let hint = if detail.contains("ssh-keyscan") || detail.contains("ssh-keygen -R") {
                format!("the server's SSH host key was refused ({detail})")
            } else {
                format!(
                    "the server's SSH host key was refused ({detail}); add the host key to the \
                     `known-hosts` file after checking its fingerprint (`ssh-keyscan -p PORT \
                     HOST`), or fix the host name"
                )
            };
            (ErrorKind::PermissionDenied, hint)
        }
        Some(Cause::Auth(detail)) => {
            temporary = false;
            (
                ErrorKind::PermissionDenied,
                format!("authentication failed ({detail}); check the user and credentials"),
            )
        }
        Some(Cause::Connection(detail)) if kind == ErrorKind::Io => {
            temporary = true;
            (
                ErrorKind::Io,
                format!(
                    "cannot reach the server ({detail}); it may be down or restarting: the \
                     operation can be retried"
                ),
            )
        }
        _ => (kind, hint),
    };
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

/// The error of a builder OpenDAL refused when the storage `shown` was opened.
pub(crate) fn build_error(err: opendal::Error, shown: &str) -> Error {
    parse_error(err, "open", "", shown)
}

/// What an error's source chain says about its cause, beyond OpenDAL's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cause {
    /// The TLS handshake refused the server's certificate.
    Tls(String),
    /// SSH refused the server's host key.
    HostKey(String),
    /// The server refused the credentials.
    Auth(String),
    /// The connection failed, was refused or broke.
    Connection(String),
}

/// Marks put in messages by ikkatsu's own backend code, recognized by [`cause`].
pub(crate) const TLS_MARK: &str = "TLS certificate refused";
pub(crate) const HOST_KEY_MARK: &str = "SSH host key refused";
pub(crate) const AUTH_MARK: &str = "authentication failed";

fn cause(err: &opendal::Error) -> Option<Cause> {
    let mut found = None;
    let mut stack: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    if let Some(source) = std::error::Error::source(err) {
        stack.push(source);
    }
    classify_text(err.message(), &mut found);
    while let Some(e) = stack.pop() {
        if let Some(c) = classify_one(e, &mut stack) {
            // The most specific cause wins: TLS, host key and authentication over connection.
            match (&found, &c) {
                (Some(Cause::Tls(_) | Cause::HostKey(_) | Cause::Auth(_)), _) => {}
                _ => found = Some(c),
            }
        }
        if let Some(next) = e.source() {
            stack.push(next);
        }
    }
    found
}

fn classify_one<'a>(
    e: &'a (dyn std::error::Error + 'static),
    stack: &mut Vec<&'a (dyn std::error::Error + 'static)>,
) -> Option<Cause> {
    #[cfg(feature = "__tls")]
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(Cause::Tls(tls.to_string()));
    }
    #[cfg(feature = "ftp")]
    if let Some(ftp) = e.downcast_ref::<suppaftp::FtpError>() {
        use suppaftp::{FtpError, Status};
        match ftp {
            FtpError::UnexpectedResponse(resp) if resp.status == Status::NotLoggedIn => {
                return Some(Cause::Auth(format!(
                    "FTP 530 {}",
                    String::from_utf8_lossy(&resp.body).trim()
                )));
            }
            FtpError::SecureError(text) => return Some(Cause::Tls(text.clone())),
            // The I/O error is not the FTP error's source: look at it too.
            FtpError::ConnectionError(io) => stack.push(io),
            _ => {}
        }
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        // `io::Error::source` skips the wrapped error itself: look at it too.
        if let Some(inner) = io.get_ref() {
            stack.push(inner);
        }
        use std::io::ErrorKind as Io;
        if matches!(
            io.kind(),
            Io::ConnectionRefused
                | Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::NotConnected
                | Io::BrokenPipe
                | Io::TimedOut
                | Io::UnexpectedEof
                | Io::HostUnreachable
                | Io::NetworkUnreachable
        ) {
            let mut found = None;
            classify_text(&io.to_string(), &mut found);
            return found.or_else(|| Some(Cause::Connection(io.to_string())));
        }
    }
    let mut found = None;
    classify_text(&e.to_string(), &mut found);
    found
}

fn classify_text(text: &str, found: &mut Option<Cause>) {
    let lower = text.to_ascii_lowercase();
    let short = || text.lines().next().unwrap_or(text).trim().to_string();
    if text.contains(TLS_MARK)
        || lower.contains("invalid peer certificate")
        || lower.contains("certificate verify failed")
    {
        *found = Some(Cause::Tls(short()));
    } else if text.contains(HOST_KEY_MARK)
        || lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
        || lower.contains("no matching host key")
    {
        *found = Some(Cause::HostKey(short()));
    } else if text.contains(AUTH_MARK) || lower.contains("permission denied (publickey") {
        *found = Some(Cause::Auth(short()));
    } else if found.is_none() && is_name_resolution_failure(&lower) {
        *found = Some(Cause::Connection(short()));
    }
}

/// Whether a (lower-case) message says that the server's host name could not be resolved.
fn is_name_resolution_failure(lower: &str) -> bool {
    [
        "failed to lookup address",
        "name or service not known",
        "no address associated with hostname",
        "temporary failure in name resolution",
        "dns error",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_from_the_source_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = parse_error(
            opendal::Error::new(Od::Unexpected, "ftp error").set_source(io),
            "stat",
            "f",
            "ftp://h",
        );
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.is_temporary());
        assert!(err.message().contains("cannot reach"), "{}", err.message());

        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "Host key verification failed.",
        );
        let err = parse_error(
            opendal::Error::new(Od::Unexpected, "ssh error")
                .set_source(io)
                .set_temporary(),
            "stat",
            "f",
            "sftp://h",
        );
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!err.is_temporary());
        assert!(err.message().contains("known-hosts"), "{}", err.message());

        let err = parse_error(
            opendal::Error::new(Od::PermissionDenied, "authentication failed: HTTP 401"),
            "read",
            "f",
            "webdav+http://h",
        );
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!err.is_temporary());

        let err = parse_error(
            opendal::Error::new(Od::Unexpected, "x").set_source(std::io::Error::other(
                "invalid peer certificate: UnknownIssuer",
            )),
            "read",
            "f",
            "webdav+https://h",
        );
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.message().contains("ca-file"), "{}", err.message());
    }

    #[test]
    fn unresolvable_host_and_ftp_connection_errors_cannot_reach_the_server() {
        let dns = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        let err = parse_error(
            opendal::Error::new(Od::Unexpected, "ssh error").set_source(dns),
            "list",
            "",
            "sftp://no-such-host.invalid/x",
        );
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.is_temporary());
        assert!(err.message().contains("cannot reach"), "{}", err.message());

        #[cfg(feature = "ftp")]
        {
            let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            let err = parse_error(
                opendal::Error::new(Od::Unexpected, "ftp error")
                    .set_source(suppaftp::FtpError::ConnectionError(io)),
                "list",
                "",
                "ftp://h",
            );
            assert!(err.message().contains("cannot reach"), "{}", err.message());
        }
    }

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
