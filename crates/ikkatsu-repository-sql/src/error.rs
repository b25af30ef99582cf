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
    let error = Error::new(
        kind,
        format!(
            "job repository {repository}: {what}: {}{hint}",
            driver_message(&err)
        ),
    )
    .set_temporary(temporary);
    with_driver_source(error, err)
}

/// `error` with `err` as its source, unless `err` is an error the server returned: its
/// message is all there is to it, and its `Display` adds the server's source line.
pub(crate) fn with_driver_source(error: Error, err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Database(_) => error,
        other => error.with_source(other),
    }
}

/// A repository error that is not from the driver (bad stored data, missing row).
pub(crate) fn repository_error(repository: &str, kind: ErrorKind, message: String) -> Error {
    Error::new(kind, format!("job repository {repository}: {message}"))
}

/// The driver's message: for an error the server returned, its message and SQLSTATE (not
/// sqlx's "error returned from database" nor the server's source line).
pub(crate) fn driver_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// Where a database is and how a missing one is created: what a connection error names.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) struct DatabaseAddress<'a> {
    /// `host:port`.
    pub(crate) server: String,
    /// The database the URL names.
    pub(crate) database: &'a str,
    /// The command that creates it (`createdb NAME`, `CREATE DATABASE NAME`).
    pub(crate) create: String,
}

/// Whether `err` says the database does not exist: PostgreSQL's SQLSTATE 3D000, MySQL's
/// error 1049 (`Unknown database`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn is_missing_database(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    if db.code().as_deref() == Some("3D000") {
        return true;
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return my.number() == 1049;
    }
    false
}

/// Maps an error of connecting to `repository` (a masked URL) at `address`: a missing
/// database is a [`ErrorKind::Config`] error saying which database on which server and what
/// to do; other errors as [`map_sqlx`].
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn map_connect(
    repository: &str,
    address: &DatabaseAddress<'_>,
    err: sqlx::Error,
) -> Error {
    if !is_missing_database(&err) {
        return map_sqlx(repository, "connecting", err);
    }
    let DatabaseAddress {
        server,
        database,
        create,
    } = address;
    Error::new(
        ErrorKind::Config,
        format!(
            "job repository {repository}: database \"{database}\" does not exist on {server}: \
             create it ({create}) or fix the repository URL"
        ),
    )
}
