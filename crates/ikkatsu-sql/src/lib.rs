//! # ikkatsu-sql
//!
//! Access to SQL databases, written once for every part of ikkatsu that talks to one: the
//! job repository (`ikkatsu-repository-sql`), the SQL status store of the overwrite flow
//! (`ikkatsu-overwrite`, features `postgres` and `mysql`) and, next, the SQL item readers and
//! writers and their datasources (see `docs/adr/0014-where-data-access-lives.md`).
//!
//! * [`SqlUrl`]: which database a URL names (`sqlite://PATH`, `sqlite::memory:`,
//!   `postgres://…`, `postgresql://…`, `mysql://…`, `mariadb://…`), the one parser of SQL
//!   URLs;
//! * [`connect_postgres`] and [`connect_mysql`] (features `postgres`, `mysql`): a pool, after
//!   one direct connection that makes an unreachable server, refused credentials or a
//!   missing database fail at once with a message saying what to do;
//! * [`TlsOptions`]: the TLS options of a PostgreSQL URL (`sslmode`, `sslrootcert`, `sslcert`,
//!   `sslkey`) or a MySQL/MariaDB URL (`ssl-mode`, `ssl-ca`, …), checked before connecting;
//!   [`connect_postgres`] and [`connect_mysql`] connect with rustls (ring) and explain an
//!   untrusted certificate;
//! * [`migrate`]: embedded migrations applied by whichever of several starting processes
//!   gets there first, the others waiting for it, and a database a newer binary upgraded
//!   refused with both versions; [`schema_state`] reads the same without writing, for
//!   commands that only read;
//! * [`observed`]: a statement told to the step's call listeners (`ikkatsu_core::call`) as
//!   its kind, table, rows, duration and outcome, never its text or bound values;
//! * [`SqlSite`]: the mapping of sqlx errors to [`ikkatsu_core::Error`] (kind, temporary or
//!   not, the masked URL, the driver's message), with [`is_conflict`], [`is_temporary`] and
//!   [`is_missing_database`].
//!
//! Without features the crate is the URL parser alone (no sqlx): a crate that only needs to
//! recognize a SQL URL, to say which feature its driver needs, depends on it for free. The
//! features `sqlite`, `postgres` and `mysql` compile sqlx with that driver, and the error
//! mapping and connection helpers.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "postgres")] {
//! use ikkatsu_sql::{SqlSite, SqlUrl};
//!
//! let url = "postgres://batch:hunter2@db.example/jobs";
//! assert_eq!(
//!     SqlUrl::parse(url, "job repository")?,
//!     Some(SqlUrl::Postgres { url: url.into() })
//! );
//! let site = SqlSite::new("job repository", "repository URL", url);
//! assert_eq!(site.to_string(), "job repository postgres://batch:***@db.example/jobs");
//! # }
//! # Ok::<(), ikkatsu_core::Error>(())
//! ```
#![deny(missing_docs)]

mod call;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod connect;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod migrate;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod schema;
mod tls;
mod url;

pub use call::{backend_name, observed, statement_target};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use connect::PoolSettings;
#[cfg(feature = "mysql")]
pub use connect::connect_mysql;
#[cfg(feature = "postgres")]
pub use connect::connect_postgres;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use error::{
    SqlSite, driver_message, is_conflict, is_missing_database, is_temporary, with_driver_source,
};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use migrate::migrate;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use schema::{SchemaState, is_missing_table, latest_version, newer_schema, schema_state};
pub use tls::{Dialect, TlsOptions};
pub use url::{SQL_URL_FORMS, SqlUrl};
