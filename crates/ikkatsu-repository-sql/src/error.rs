//! Mapping of sqlx errors to [`ikkatsu_core::Error`].

use ikkatsu_core::{Error, ErrorKind};

/// SQLSTATEs and driver codes that mean "try again": serialization failure, deadlock,
/// SQLite busy/locked, too many connections, server shutting down, lock wait timeout.
const TEMPORARY_CODES: &[&str] = &[
    "40001", "40P01", "53300", "57P01", "57P02", "57P03", "08001", "08006", "5", "6", "261", "262",
    "517",
];

/// Whether `err` is a conflict between concurrent transactions (deadlock, serialization
/// failure, busy database) that is worth retrying as a whole.
pub(crate) fn is_conflict(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            matches!(
                code.as_ref(),
                "40001" | "40P01" | "5" | "6" | "261" | "262" | "517"
            ) || db.message().contains("database is locked")
                || db.message().contains("Deadlock found")
        }
        _ => false,
    }
}

fn is_temporary(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            TEMPORARY_CODES.contains(&code.as_ref())
                || code.starts_with("08")
                || db.message().contains("database is locked")
                || db.message().contains("Lock wait timeout")
                || db.message().contains("Too many connections")
        }
        _ => false,
    }
}

/// Maps `err`, raised while doing `what` on the repository `repository` (a masked URL), to an
/// [`ErrorKind::Repository`] error (a unique-key violation to [`ErrorKind::AlreadyExists`]),
/// temporary when a retry may succeed.
pub(crate) fn map_sqlx(repository: &str, what: &str, err: sqlx::Error) -> Error {
    let kind = match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ErrorKind::AlreadyExists,
        _ => ErrorKind::Repository,
    };
    let hint = match &err {
        sqlx::Error::PoolTimedOut => {
            " (no connection became free in time; is the database reachable and not overloaded?)"
        }
        _ => "",
    };
    let temporary = is_temporary(&err);
    Error::new(
        kind,
        format!("job repository {repository}: {what}: {err}{hint}"),
    )
    .set_temporary(temporary)
    .with_source(err)
}

/// A repository error that is not from the driver (bad stored data, missing row).
pub(crate) fn repository_error(repository: &str, kind: ErrorKind, message: String) -> Error {
    Error::new(kind, format!("job repository {repository}: {message}"))
}
