//! The status store conformance suite (`ikkatsu_testkit::status_store`) on every backend:
//! memory, embedded (a temporary redb file), and — with their features — Redis,
//! PostgreSQL and MariaDB/MySQL on the servers named by `IKKATSU_TEST_REDIS_URL`,
//! `IKKATSU_TEST_POSTGRES_URL` and `IKKATSU_TEST_MYSQL_URL` (defaults: the loopback
//! servers). A missing server fails the test. The Redis tests also run on the Redis
//! Cluster of `scripts/redis-cluster` (`IKKATSU_TEST_REDIS_CLUSTER_URL`), with and without
//! reads from replicas. Over TLS: `status_store/tls.rs`.

// Which helpers are used depends on the features under test.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ikkatsu_overwrite::{MemoryStatusStore, StatusStore, StatusStoreOptions};
use ikkatsu_testkit::status_store::{StatusStoreFactory, run_all};

fn unique_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t{}x{}x{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn options(namespace: String, max_errors: u32) -> StatusStoreOptions {
    StatusStoreOptions::new(namespace).with_max_errors(max_errors)
}

struct MemoryFactory {
    base: MemoryStatusStore,
}

#[async_trait]
impl StatusStoreFactory for MemoryFactory {
    async fn open(&self, namespace: &str, max_errors: u32) -> Arc<dyn StatusStore> {
        Arc::new(self.base.share(options(namespace.to_string(), max_errors)))
    }

    async fn reopen(&self) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conformance() {
    let factory = MemoryFactory {
        base: MemoryStatusStore::new(StatusStoreOptions::default()),
    };
    run_all(&factory).await;
}

#[tokio::test]
async fn memory_url() {
    let store = ikkatsu_overwrite::open_status_store("memory:", StatusStoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.describe(), "memory:");
}

#[cfg(feature = "embedded")]
mod embedded {
    use super::*;
    use ikkatsu_overwrite::EmbeddedStatusStore;

    struct EmbeddedFactory {
        path: std::path::PathBuf,
        base: tokio::sync::Mutex<Option<EmbeddedStatusStore>>,
    }

    #[async_trait]
    impl StatusStoreFactory for EmbeddedFactory {
        async fn open(&self, namespace: &str, max_errors: u32) -> Arc<dyn StatusStore> {
            let mut base = self.base.lock().await;
            if base.is_none() {
                *base = Some(
                    EmbeddedStatusStore::open(&self.path, StatusStoreOptions::default())
                        .await
                        .unwrap(),
                );
            }
            let store = base
                .as_ref()
                .unwrap()
                .share(options(namespace.to_string(), max_errors))
                .unwrap();
            Arc::new(store)
        }

        async fn reopen(&self) -> bool {
            self.base.lock().await.take();
            true
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let factory = EmbeddedFactory {
            path: dir.path().join("nested/status.redb"),
            base: tokio::sync::Mutex::new(None),
        };
        run_all(&factory).await;
    }

    #[tokio::test]
    async fn embedded_url_forms_and_second_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let url = format!("redb://{}", path.display());
        let store = ikkatsu_overwrite::open_status_store(&url, StatusStoreOptions::new("a"))
            .await
            .unwrap();
        store
            .report_done(
                &ikkatsu_storage::FileInfo::new("x", 1),
                &ikkatsu_storage::FileInfo::new("x", 1),
            )
            .await
            .unwrap();
        // The file is open: a second open names it and says why.
        let err = ikkatsu_overwrite::open_status_store(
            &path.display().to_string(),
            StatusStoreOptions::new("a"),
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("s.redb"), "{err}");
        assert!(err.to_string().contains("one process at a time"), "{err}");
        assert_eq!(err.kind(), ikkatsu_core::ErrorKind::AlreadyRunning, "{err}");
        drop(store);
        let again = ikkatsu_overwrite::open_status_store(
            &format!("file://{}", path.display()),
            StatusStoreOptions::new("a"),
        )
        .await
        .unwrap();
        assert_eq!(again.counts().await.unwrap().done, 1);
    }
}

/// Opens stores through `open_status_store(url)` with namespaces prefixed by a per-test
/// tag, and closes them all at the end.
struct UrlFactory {
    url: String,
    tag: String,
    opened: Mutex<Vec<Arc<dyn StatusStore>>>,
}

impl UrlFactory {
    fn new(url: String) -> Self {
        UrlFactory {
            url,
            tag: unique_tag(),
            opened: Mutex::new(Vec::new()),
        }
    }

    async fn close_all(&self) {
        let opened: Vec<_> = self.opened.lock().unwrap().drain(..).collect();
        for store in opened {
            store.close().await.unwrap();
        }
    }
}

#[async_trait]
impl StatusStoreFactory for UrlFactory {
    async fn open(&self, namespace: &str, max_errors: u32) -> Arc<dyn StatusStore> {
        let namespace = format!("{}-{namespace}", self.tag);
        let store = ikkatsu_overwrite::open_status_store(&self.url, options(namespace, max_errors))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "opening the status store at {}: {err}\n\
                         the Redis/PostgreSQL/MariaDB tests need a running server; set \
                         IKKATSU_TEST_REDIS_URL / IKKATSU_TEST_POSTGRES_URL / \
                         IKKATSU_TEST_MYSQL_URL to point elsewhere",
                    ikkatsu_overwrite::mask_url(&self.url)
                )
            });
        self.opened.lock().unwrap().push(Arc::clone(&store));
        store
    }

    async fn reopen(&self) -> bool {
        self.close_all().await;
        true
    }
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;

    fn server_url() -> String {
        std::env::var("IKKATSU_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string())
    }

    /// Deletes every key of the factory's namespaces.
    async fn delete_keys(url: &str, tag: &str) -> redis::RedisResult<()> {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        for pattern in [format!("ikkatsu:{tag}-*"), format!("ikkatsu-*:{tag}-*")] {
            delete_matching(&mut connection, &pattern).await?;
        }
        Ok(())
    }

    async fn delete_matching(
        connection: &mut redis::aio::MultiplexedConnection,
        pattern: &str,
    ) -> redis::RedisResult<()> {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(connection)
                .await?;
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(connection)
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_conformance() {
        let url = server_url();
        let factory = Arc::new(UrlFactory::new(url.clone()));
        let running = Arc::clone(&factory);
        let outcome = tokio::spawn(async move {
            run_all(running.as_ref()).await;
            running.close_all().await;
        })
        .await;
        let cleanup = delete_keys(&url, &factory.tag).await;
        if let Err(err) = outcome {
            // The suite's failure is the one to report.
            std::panic::resume_unwind(err.into_panic());
        }
        if let Err(err) = cleanup {
            panic!("deleting the test keys on {url}: {err}");
        }
    }

    /// The single-server key layout is `ikkatsu:NAMESPACE:PATH` (records written by
    /// earlier versions stay readable).
    #[tokio::test]
    async fn redis_single_server_key_layout() {
        let url = server_url();
        let namespace = format!("layout-{}", unique_tag());
        let store = ikkatsu_overwrite::open_status_store(&url, StatusStoreOptions::new(&namespace))
            .await
            .unwrap();
        let file = ikkatsu_storage::FileInfo::new("a/b.txt", 3);
        store.report_done(&file, &file).await.unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("ikkatsu:{namespace}:a/b.txt");
        let state: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("state")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(state.as_deref(), Some("done"));
        store.clear().await.unwrap();
        assert!(store.is_empty().await.unwrap());
    }

    #[tokio::test]
    async fn redis_unreachable_is_a_clear_error() {
        let err = ikkatsu_overwrite::open_status_store(
            "redis://:secret@127.0.0.1:1/0",
            StatusStoreOptions::default(),
        )
        .await
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.contains("redis://:***@127.0.0.1:1/0"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}

/// The Redis Cluster of `scripts/redis-cluster` (3 masters + 3 replicas on 7101-7106), or
/// the one `IKKATSU_TEST_REDIS_CLUSTER_URL` names.
#[cfg(feature = "redis")]
#[path = "status_store/redis_cluster.rs"]
mod redis_cluster;

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql_backends {
    use super::*;
    use sqlx::Connection;

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

    async fn admin(url: &str, statement: String) {
        let masked = ikkatsu_overwrite::mask_url(url);
        let result: Result<(), sqlx::Error> = if url.starts_with("postgres") {
            #[cfg(feature = "postgres")]
            {
                match sqlx::PgConnection::connect(url).await {
                    Ok(mut conn) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                        .execute(&mut conn)
                        .await
                        .map(drop),
                    Err(err) => Err(err),
                }
            }
            #[cfg(not(feature = "postgres"))]
            panic!("PostgreSQL tests need the `postgres` feature")
        } else {
            #[cfg(feature = "mysql")]
            {
                match sqlx::MySqlConnection::connect(url).await {
                    Ok(mut conn) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                        .execute(&mut conn)
                        .await
                        .map(drop),
                    Err(err) => Err(err),
                }
            }
            #[cfg(not(feature = "mysql"))]
            panic!("MySQL tests need the `mysql` feature")
        };
        if let Err(err) = result {
            panic!(
                "test database server {masked} failed `{statement}`: {err}\n\
                 the PostgreSQL/MariaDB tests need a running server; set \
                 IKKATSU_TEST_POSTGRES_URL / IKKATSU_TEST_MYSQL_URL to point elsewhere"
            );
        }
    }

    /// Runs the suite on a fresh database `ikk_status_…` of the server at `server`, dropped
    /// afterwards (also when the suite panics).
    pub(super) async fn conformance_on_fresh_database(server: String, postgres: bool) {
        let name = format!("ikk_status_{}", unique_tag());
        admin(&server, format!("CREATE DATABASE {name}")).await;
        let url = with_database(&server, &name);
        let outcome = tokio::spawn(async move {
            // Several stores migrate the fresh database at once.
            let mut racers = Vec::new();
            for i in 0..4 {
                let url = url.clone();
                racers.push(tokio::spawn(async move {
                    ikkatsu_overwrite::open_status_store(
                        &url,
                        StatusStoreOptions::new(format!("race{i}")),
                    )
                    .await
                    .map(|_| ())
                }));
            }
            for racer in racers {
                racer.await.unwrap().unwrap();
            }
            let factory = UrlFactory::new(url);
            run_all(&factory).await;
            factory.close_all().await;
        })
        .await;
        let drop_statement = if postgres {
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        } else {
            format!("DROP DATABASE IF EXISTS {name}")
        };
        admin(&server, drop_statement).await;
        if let Err(err) = outcome {
            std::panic::resume_unwind(err.into_panic());
        }
    }

    #[cfg(feature = "postgres")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_conformance() {
        let server = std::env::var("IKKATSU_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string());
        conformance_on_fresh_database(server, true).await;
    }

    #[cfg(feature = "mysql")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql_conformance() {
        let server = std::env::var("IKKATSU_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string());
        conformance_on_fresh_database(server, false).await;
    }
}

/// The Redis, PostgreSQL and MariaDB status stores over TLS (`scripts/tls-servers`).
#[cfg(any(feature = "redis", feature = "postgres", feature = "mysql"))]
#[path = "status_store/tls.rs"]
mod tls;
