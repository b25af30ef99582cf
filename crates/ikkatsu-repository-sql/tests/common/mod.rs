//! Fresh databases for tests: a temporary SQLite file, or a uniquely named database on the
//! PostgreSQL / MariaDB servers (URLs from `IKKATSU_TEST_POSTGRES_URL` /
//! `IKKATSU_TEST_MYSQL_URL`; over TLS `IKKATSU_TEST_POSTGRES_TLS_URL` /
//! `IKKATSU_TEST_MYSQL_TLS_URL`, see `scripts/tls-servers`), dropped afterwards. A missing
//! server fails the test.

// Which helpers and arms are used depends on the features under test.
#![allow(dead_code, unreachable_code, unused_variables)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use ikkatsu_repository_sql::SqlJobRepository;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use sqlx::Connection;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://root@127.0.0.1:5432/test";
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
    /// PostgreSQL over TLS, `sslmode=verify-full` with the test CA.
    PostgresTls,
    /// MariaDB over TLS, `ssl-mode=VERIFY_IDENTITY` with the test CA.
    MySqlTls,
}

impl Backend {
    fn is_postgres(self) -> bool {
        matches!(self, Backend::Postgres | Backend::PostgresTls)
    }
}

/// The test CA of `scripts/test-servers` (`IKKATSU_TEST_CA`), or `IKKATSU_TEST_OTHER_CA`.
pub fn test_ca(other: bool) -> String {
    let (var, file) = if other {
        ("IKKATSU_TEST_OTHER_CA", "other-ca.pem")
    } else {
        ("IKKATSU_TEST_CA", "ca.pem")
    };
    std::env::var(var).unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/ikkatsu-test-servers/tls/{file}")
    })
}

/// The URL of the TLS server of `scripts/tls-servers` for PostgreSQL or MariaDB.
pub fn tls_server_url(postgres: bool) -> String {
    if postgres {
        std::env::var("IKKATSU_TEST_POSTGRES_TLS_URL").unwrap_or_else(|_| {
            format!(
                "postgres://root@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert={}",
                test_ca(false)
            )
        })
    } else {
        std::env::var("IKKATSU_TEST_MYSQL_TLS_URL").unwrap_or_else(|_| {
            format!(
                "mysql://root@127.0.0.1:3306/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
                test_ca(false)
            )
        })
    }
}

fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ikk_test_{}_{}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with its database (path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn server_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => std::env::var("IKKATSU_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string()),
        Backend::MySql => std::env::var("IKKATSU_TEST_MYSQL_URL")
            .unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_string()),
        Backend::PostgresTls => tls_server_url(true),
        Backend::MySqlTls => tls_server_url(false),
        Backend::Sqlite => String::new(),
    }
}

async fn admin(backend: Backend, url: &str, statement: String) {
    let masked = ikkatsu_core::secret::mask_url(url);
    let result = match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres | Backend::PostgresTls => match sqlx::PgConnection::connect(url).await {
            Ok(mut conn) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&mut conn)
                .await
                .map(drop),
            Err(err) => Err(err),
        },
        #[cfg(feature = "mysql")]
        Backend::MySql | Backend::MySqlTls => match sqlx::MySqlConnection::connect(url).await {
            Ok(mut conn) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&mut conn)
                .await
                .map(drop),
            Err(err) => Err(err),
        },
        #[allow(unreachable_patterns)]
        other => panic!("{other:?} needs its cargo feature of ikkatsu-repository-sql"),
    };
    if let Err::<(), sqlx::Error>(err) = result {
        panic!(
            "test database server {masked} ({backend:?}) failed `{statement}`: {err}\n\
             the PostgreSQL/MariaDB tests need a running server; set IKKATSU_TEST_POSTGRES_URL / \
             IKKATSU_TEST_MYSQL_URL to point elsewhere"
        );
    }
}

/// Runs `test` against a repository on a fresh database of `backend`, then drops the
/// database (also when the test panics, whose panic is then resumed).
pub async fn with_fresh<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(SqlJobRepository) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = unique_name();
    let server = server_url(backend);
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("ikkatsu.db").display()),
        _ => {
            admin(backend, &server, format!("CREATE DATABASE {name}")).await;
            with_database(&server, &name)
        }
    };
    let outcome = tokio::spawn(async move {
        let repository = SqlJobRepository::connect(&url)
            .await
            .unwrap_or_else(|err| panic!("connecting to {url}: {err}"));
        test(repository.clone()).await;
        repository.close().await;
    })
    .await;
    match backend {
        Backend::Sqlite => {}
        _ if backend.is_postgres() => {
            admin(
                backend,
                &server,
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
        }
        _ => admin(backend, &server, format!("DROP DATABASE IF EXISTS {name}")).await,
    }
    drop(dir);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}
