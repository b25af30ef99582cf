//! The status stores over TLS, on the servers of `scripts/tls-servers` (the certificate
//! signed by the test CA of `scripts/test-servers`): the conformance suite on Redis
//! (`rediss://…?ca-file=`), PostgreSQL (`sslmode=verify-full`) and MariaDB
//! (`ssl-mode=VERIFY_IDENTITY`), and a certificate of another CA refused with what to set.

use ikkatsu_core::ErrorKind;

use super::*;

/// The test CA (`IKKATSU_TEST_CA`), or the unrelated one (`IKKATSU_TEST_OTHER_CA`).
fn ca(other: bool) -> String {
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

/// `url` with the test CA file replaced by the unrelated CA.
fn with_other_ca(url: &str) -> String {
    let replaced = url.replace(&ca(false), &ca(true));
    assert_ne!(replaced, url, "{url} names no {}", ca(false));
    replaced
}

/// What opening the status store at `url` fails with.
async fn open_error(url: &str) -> ikkatsu_core::Error {
    match ikkatsu_overwrite::open_status_store(url, StatusStoreOptions::new("tls")).await {
        Ok(_) => panic!("{url} was opened"),
        Err(err) => err,
    }
}

#[cfg(feature = "redis")]
mod redis_tls {
    use super::*;

    fn server_url() -> String {
        std::env::var("IKKATSU_TEST_REDIS_TLS_URL")
            .unwrap_or_else(|_| format!("rediss://127.0.0.1:6390/?ca-file={}", ca(false)))
    }

    /// Deletes every key of the namespaces tagged `tag`.
    async fn delete_keys(tag: &str) -> redis::RedisResult<()> {
        let url = server_url();
        let base = url.split('?').next().unwrap_or_default();
        let pem = std::fs::read(ca(false)).expect("the test CA");
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        let client = redis::Client::build_with_tls(base, certificates)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        for pattern in [format!("ikkatsu:{tag}-*"), format!("ikkatsu-*:{tag}-*")] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut connection)
                    .await?;
            }
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_over_tls_conformance() {
        let factory = Arc::new(UrlFactory::new(server_url()));
        let running = Arc::clone(&factory);
        let outcome = tokio::spawn(async move {
            run_all(running.as_ref()).await;
            running.close_all().await;
        })
        .await;
        let cleanup = delete_keys(&factory.tag).await;
        if let Err(err) = outcome {
            std::panic::resume_unwind(err.into_panic());
        }
        cleanup.unwrap();
    }

    #[tokio::test]
    async fn redis_insecure_accepts_any_certificate() {
        let url = "rediss://127.0.0.1:6390/?insecure=true";
        let namespace = format!("insecure-{}", unique_tag());
        let store = ikkatsu_overwrite::open_status_store(url, StatusStoreOptions::new(namespace))
            .await
            .unwrap();
        let file = ikkatsu_storage::FileInfo::new("a.txt", 1);
        store.report_done(&file, &file).await.unwrap();
        assert!(!store.is_empty().await.unwrap());
        store.clear().await.unwrap();
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn redis_certificate_of_another_ca_is_refused() {
        let url = with_other_ca(&server_url());
        let err = open_error(&url).await;
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(!err.is_temporary());
        assert_eq!(
            err.message(),
            format!(
                "status store {url}: connecting: the server's TLS certificate is not trusted \
                 (invalid peer certificate: UnknownIssuer): give the CA certificate that signed \
                 it with ?ca-file=FILE in the status store URL, or ?insecure=true to encrypt \
                 without verifying the server"
            )
        );
    }

    #[tokio::test]
    async fn redis_missing_ca_file_is_a_config_error() {
        let url = "rediss://127.0.0.1:6390/?ca-file=/nonexistent/ca.pem";
        let err = open_error(url).await;
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            err.message(),
            format!(
                "status store URL `{url}`: ca-file=/nonexistent/ca.pem cannot be read (No such \
                 file or directory (os error 2)): give the path of a PEM file"
            )
        );
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql_tls {
    use super::*;

    fn tls_server(postgres: bool) -> String {
        if postgres {
            std::env::var("IKKATSU_TEST_POSTGRES_TLS_URL").unwrap_or_else(|_| {
                format!(
                    "postgres://root@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert={}",
                    ca(false)
                )
            })
        } else {
            std::env::var("IKKATSU_TEST_MYSQL_TLS_URL").unwrap_or_else(|_| {
                format!(
                    "mysql://root@127.0.0.1:3306/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
                    ca(false)
                )
            })
        }
    }

    #[cfg(feature = "postgres")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_over_tls_conformance() {
        super::super::sql_backends::conformance_on_fresh_database(tls_server(true), true).await;
    }

    #[cfg(feature = "mysql")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql_over_tls_conformance() {
        super::super::sql_backends::conformance_on_fresh_database(tls_server(false), false).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_certificate_of_another_ca_is_refused() {
        let url = with_other_ca(&tls_server(true));
        let err = open_error(&url).await;
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(
            err.message(),
            format!(
                "status store {url}: connecting: the server's TLS certificate is not trusted \
                 (invalid peer certificate: UnknownIssuer): give the CA certificate that signed \
                 it with sslrootcert=FILE in the status store URL, or sslmode=require to \
                 encrypt without verifying the server"
            )
        );
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn mysql_certificate_of_another_ca_is_refused() {
        let url = with_other_ca(&tls_server(false));
        let err = open_error(&url).await;
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(
            err.message(),
            format!(
                "status store {url}: connecting: the server's TLS certificate is not trusted \
                 (invalid peer certificate: UnknownIssuer): give the CA certificate that signed \
                 it with ssl-ca=FILE in the status store URL, or ssl-mode=REQUIRED to encrypt \
                 without verifying the server"
            )
        );
    }
}
