//! Connecting to a server database: one direct connection first, so that an unreachable
//! server, refused credentials or a missing database fail at once with the driver's own
//! message (instead of after the pool's acquire timeout), then the pool. The TLS options of
//! the URL are checked first (see [`crate::tls::TlsOptions`]), and a failed TLS handshake says which
//! option fixes it.

#[cfg(any(feature = "postgres", feature = "mysql"))]
use std::str::FromStr;
use std::time::Duration;

#[cfg(any(feature = "postgres", feature = "mysql"))]
use ikkatsu_core::Result;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use sqlx::Connection;

#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::error::SqlSite;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::tls::{Dialect, TlsOptions, tls_error};

/// How a pool is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// The name the server shows for the connections (PostgreSQL's `application_name`).
    pub application_name: &'static str,
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How long a statement waits for a free connection before failing (temporarily).
    pub acquire_timeout: Duration,
}

impl PoolSettings {
    /// Ten connections, a 30 s acquire timeout, shown as `application_name`.
    pub fn new(application_name: &'static str) -> Self {
        PoolSettings {
            application_name,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Connects to the PostgreSQL database at `url` (`postgres://…`, `postgresql://…`) for
/// `site`: a missing database is a config error naming it and `createdb NAME`. The server's
/// NOTICEs are not sent (`client_min_messages = warning`): the migrations' `CREATE TABLE IF
/// NOT EXISTS` would otherwise log "relation … already exists, skipping" at INFO.
///
/// TLS: `sslmode` (`disable`, `prefer` — the default —, `require`, `verify-ca`,
/// `verify-full`), `sslrootcert`, `sslcert`, `sslkey`; an unknown mode or an unreadable
/// file is a config error, an untrusted certificate an I/O error saying what to set.
#[cfg(feature = "postgres")]
pub async fn connect_postgres(
    site: &SqlSite,
    url: &str,
    settings: &PoolSettings,
) -> Result<sqlx::PgPool> {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    check_tls(site, url, Dialect::Postgres)?;
    let options = PgConnectOptions::from_str(url)
        .map_err(|err| site.error("parsing the URL", err))?
        .application_name(settings.application_name);
    let database = options
        .get_database()
        .unwrap_or(options.get_username())
        .to_string();
    let server = format!("{}:{}", options.get_host(), options.get_port());
    sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|err| match tls_error(site, Dialect::Postgres, &err) {
            Some(tls) => tls.with_source(err),
            None => site.connect_error(&server, &database, &format!("createdb {database}"), err),
        })?
        .close()
        .await
        .map_err(|err| site.error("connecting", err))?;
    PgPoolOptions::new()
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql("SET client_min_messages = warning")
                    .execute(conn)
                    .await
                    .map(drop)
            })
        })
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|err| site.error("connecting", err))
}

/// Connects to the MySQL or MariaDB database at `url` (`mysql://…`) for `site`: a missing
/// database is a config error naming it and `CREATE DATABASE NAME`.
///
/// TLS: `ssl-mode` (`DISABLED`, `PREFERRED` — the default —, `REQUIRED`, `VERIFY_CA`,
/// `VERIFY_IDENTITY`), `ssl-ca`, `ssl-cert`, `ssl-key`, checked as for
/// [`connect_postgres`]. The driver is built with the RSA password exchange that MySQL 8's
/// `caching_sha2_password` needs on a plain connection.
#[cfg(feature = "mysql")]
pub async fn connect_mysql(
    site: &SqlSite,
    url: &str,
    settings: &PoolSettings,
) -> Result<sqlx::MySqlPool> {
    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

    check_tls(site, url, Dialect::MySql)?;
    let options =
        MySqlConnectOptions::from_str(url).map_err(|err| site.error("parsing the URL", err))?;
    let database = options.get_database().unwrap_or_default().to_string();
    let server = format!("{}:{}", options.get_host(), options.get_port());
    sqlx::MySqlConnection::connect_with(&options)
        .await
        .map_err(|err| match tls_error(site, Dialect::MySql, &err) {
            Some(tls) => tls.with_source(err),
            None => site.connect_error(
                &server,
                &database,
                &format!("CREATE DATABASE {database}"),
                err,
            ),
        })?
        .close()
        .await
        .map_err(|err| site.error("connecting", err))?;
    MySqlPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|err| site.error("connecting", err))
}

/// Checks the TLS options of `url` and the files they name.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn check_tls(site: &SqlSite, url: &str, dialect: Dialect) -> Result<()> {
    let describe = site.to_string();
    TlsOptions::parse(url, dialect, &describe)?.check_files(dialect, &describe)
}
