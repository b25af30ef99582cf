//! The `ikkatsu-testkit` job repository suite against every backend: the in-memory reference
//! and SQLite always, PostgreSQL and MariaDB/MySQL with their features, in plain text and
//! over TLS (the certificate verified against the test CA).

mod common;

use std::sync::Arc;

use common::{Backend, with_fresh};
use ikkatsu_core::{JobRepository, MemoryJobRepository};

macro_rules! memory_tests {
    ($($name:ident),*) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let repo: super::Arc<dyn super::JobRepository> =
                        super::Arc::new(super::MemoryJobRepository::new());
                    ikkatsu_testkit::repository::$name(repo).await;
                }
            )*
        }
    };
}

macro_rules! backend_tests {
    ($module:ident, $backend:expr, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::with_fresh($backend, |repo| async move {
                        ikkatsu_testkit::repository::$name(repo.as_dyn()).await;
                    })
                    .await;
                }
            )*
        }
    };
}

#[cfg(feature = "sqlite")]
macro_rules! sqlite_tests {
    ($($name:ident),*) => { backend_tests!(sqlite, super::Backend::Sqlite, $($name),*); };
}
#[cfg(feature = "postgres")]
macro_rules! postgres_tests {
    ($($name:ident),*) => { backend_tests!(postgres, super::Backend::Postgres, $($name),*); };
}
#[cfg(feature = "mysql")]
macro_rules! mysql_tests {
    ($($name:ident),*) => { backend_tests!(mysql, super::Backend::MySql, $($name),*); };
}
#[cfg(feature = "postgres")]
macro_rules! postgres_tls_tests {
    ($($name:ident),*) => { backend_tests!(postgres_tls, super::Backend::PostgresTls, $($name),*); };
}
#[cfg(feature = "mysql")]
macro_rules! mysql_tls_tests {
    ($($name:ident),*) => { backend_tests!(mysql_tls, super::Backend::MySqlTls, $($name),*); };
}

ikkatsu_testkit::repository_behaviours!(memory_tests);
#[cfg(feature = "sqlite")]
ikkatsu_testkit::repository_behaviours!(sqlite_tests);
#[cfg(feature = "postgres")]
ikkatsu_testkit::repository_behaviours!(postgres_tests);
#[cfg(feature = "mysql")]
ikkatsu_testkit::repository_behaviours!(mysql_tests);
#[cfg(feature = "postgres")]
ikkatsu_testkit::repository_behaviours!(postgres_tls_tests);
#[cfg(feature = "mysql")]
ikkatsu_testkit::repository_behaviours!(mysql_tls_tests);

#[tokio::test]
async fn run_all_passes_on_memory() {
    ikkatsu_testkit::repository::run_all(|| async {
        Arc::new(MemoryJobRepository::new()) as Arc<dyn JobRepository>
    })
    .await;
}
