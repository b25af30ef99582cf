//! Connecting a [`super::SqlStatusStore`]: what a failed connection says, and quiet sessions.

use ikkatsu_core::{Error, ErrorKind};

/// The driver's message: for an error the server returned, its message and SQLSTATE (not
/// sqlx's "error returned from database" nor the server's source line).
pub(super) fn driver_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// `error` with `err` as its source, unless `err` is an error the server returned: its
/// message is all there is to it, and its `Display` adds the server's source line.
pub(super) fn with_driver_source(error: Error, err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Database(_) => error,
        other => error.with_source(other),
    }
}

/// Whether `err` says the database does not exist: PostgreSQL's SQLSTATE 3D000, MySQL's
/// error 1049 (`Unknown database`).
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

/// Maps an error of connecting to the status store `describe` (a masked URL): a missing
/// `database` on `server` (`host:port`) is a [`ErrorKind::Config`] error naming them and
/// `create`, the command that creates it; other errors as `map_sqlx`.
pub(super) fn map_connect(
    describe: &str,
    server: &str,
    database: &str,
    create: &str,
    err: sqlx::Error,
) -> Error {
    if is_missing_database(&err) {
        return Error::new(
            ErrorKind::Config,
            format!(
                "status store {describe}: database \"{database}\" does not exist on {server}: \
                 create it ({create}) or fix the status store URL"
            ),
        );
    }
    super::map_sqlx(describe, "connecting", err)
}

/// `pool` with every connection's `client_min_messages` set to `warning`: the server's NOTICEs (e.g. "relation … already exists, skipping" from
/// the migrations' `CREATE TABLE IF NOT EXISTS`) are not sent, so they do not reach the log
/// (sqlx would log them at INFO). Warnings and errors still come.
#[cfg(feature = "postgres")]
pub(super) fn quiet_notices(pool: sqlx::postgres::PgPoolOptions) -> sqlx::postgres::PgPoolOptions {
    use sqlx::Executor;

    pool.after_connect(|conn, _| {
        Box::pin(async move {
            conn.execute("SET client_min_messages = warning")
                .await
                .map(drop)
        })
    })
}
