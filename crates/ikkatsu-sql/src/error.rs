//! What a failed SQL statement or connection says: the mapping of sqlx errors to
//! [`ikkatsu_core::Error`], written once for every database ikkatsu connects to.

use std::fmt;

use ikkatsu_core::{Error, ErrorKind};

/// A database as errors name it: what it is to ikkatsu, its URL with secrets masked, and
/// what a user edits to point at another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSite {
    role: String,
    describe: String,
    url_name: String,
}

impl SqlSite {
    /// The database at `url` serving as `role` (`job repository`, `status store`); a wrong
    /// one is fixed by editing `url_name` (`repository URL`, `status store URL`).
    pub fn new(role: impl Into<String>, url_name: impl Into<String>, url: &str) -> Self {
        SqlSite {
            role: role.into(),
            describe: ikkatsu_core::secret::mask_url(url),
            url_name: url_name.into(),
        }
    }

    /// The same site, shown as `describe` (an already masked location such as
    /// `sqlite::memory:`).
    pub fn described(mut self, describe: impl Into<String>) -> Self {
        self.describe = describe.into();
        self
    }

    /// The URL with its secrets masked.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// What a user edits to point at another database (`repository URL`).
    pub(crate) fn url_name(&self) -> &str {
        &self.url_name
    }

    /// Maps `err`, raised while doing `what`, to an [`ErrorKind::Repository`] error (a
    /// unique-key violation to [`ErrorKind::AlreadyExists`]) that names this site, temporary
    /// when a retry may succeed ([`is_temporary`]).
    pub fn error(&self, what: &str, err: sqlx::Error) -> Error {
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
        let error = Error::new(
            kind,
            format!("{self}: {what}: {}{hint}", driver_message(&err)),
        )
        .set_temporary(is_temporary(&err));
        with_driver_source(error, err)
    }

    /// An error of this site that does not come from the driver (bad stored data, a missing
    /// row).
    pub fn fault(&self, kind: ErrorKind, message: impl fmt::Display) -> Error {
        Error::new(kind, format!("{self}: {message}"))
    }

    /// Maps an error of connecting to this site's `database` on `server` (`host:port`): a
    /// missing database is a [`ErrorKind::Config`] error saying which database on which
    /// server, the command that creates it (`create`) and which URL to fix; other errors as
    /// [`SqlSite::error`].
    pub fn connect_error(
        &self,
        server: &str,
        database: &str,
        create: &str,
        err: sqlx::Error,
    ) -> Error {
        if !is_missing_database(&err) {
            return self.error("connecting", err);
        }
        Error::new(
            ErrorKind::Config,
            format!(
                "{self}: database \"{database}\" does not exist on {server}: create it \
                 ({create}) or fix the {}",
                self.url_name
            ),
        )
    }
}

impl fmt::Display for SqlSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.describe)
    }
}

/// SQLSTATEs and driver codes that mean "try again": serialization failure, deadlock,
/// SQLite busy/locked, too many connections, server shutting down, lock wait timeout.
const TEMPORARY_CODES: &[&str] = &[
    "40001", "40P01", "53300", "57P01", "57P02", "57P03", "08001", "08006", "5", "6", "261", "262",
    "517",
];

/// Whether `err` is a conflict between concurrent transactions (deadlock, serialization
/// failure, busy database) that is worth retrying as a whole.
pub fn is_conflict(err: &sqlx::Error) -> bool {
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

/// Whether a retry of what failed with `err` may succeed: a lost connection, a busy pool,
/// a conflict between transactions, a server shutting down or out of connections.
pub fn is_temporary(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            TEMPORARY_CODES.contains(&code.as_ref())
                || code.starts_with("08")
                || is_conflict(err)
                || db.message().contains("Lock wait timeout")
                || db.message().contains("Too many connections")
        }
        _ => false,
    }
}

/// `error` with `err` as its source, unless `err` is an error the server returned: its
/// message is all there is to it, and its `Display` adds the server's source line.
pub fn with_driver_source(error: Error, err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Database(_) => error,
        other => error.with_source(other),
    }
}

/// The driver's message: for an error the server returned, its message and SQLSTATE (not
/// sqlx's "error returned from database" nor the server's source line).
pub fn driver_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// Whether `err` says the database does not exist: PostgreSQL's SQLSTATE 3D000, MySQL's
/// error 1049 (`Unknown database`).
pub fn is_missing_database(err: &sqlx::Error) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_site_without_its_password() {
        let site = SqlSite::new(
            "status store",
            "status store URL",
            "postgres://u:tiger@h/db",
        );
        assert_eq!(site.to_string(), "status store postgres://u:***@h/db");
        let err = site.error("counting records", sqlx::Error::PoolTimedOut);
        assert_eq!(err.kind(), ErrorKind::Repository);
        assert!(err.is_temporary());
        assert!(
            err.message().starts_with(
                "status store postgres://u:***@h/db: counting records: pool timed out"
            ),
            "{err}"
        );
        let err = site.connect_error("h:5432", "db", "createdb db", sqlx::Error::PoolClosed);
        assert_eq!(err.kind(), ErrorKind::Repository);
        assert!(!err.is_temporary());
        let fault = site.fault(ErrorKind::NotFound, "no row 3");
        assert_eq!(
            fault.message(),
            "status store postgres://u:***@h/db: no row 3"
        );
        let memory =
            SqlSite::new("job repository", "repository URL", "").described("sqlite::memory:");
        assert_eq!(memory.describe(), "sqlite::memory:");
    }
}
