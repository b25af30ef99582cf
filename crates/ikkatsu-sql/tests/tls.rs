//! TLS to the PostgreSQL and MariaDB test servers (`scripts/tls-servers` turns it on, with
//! the test CA of `scripts/test-servers`): each mode connects in plain text or over TLS as
//! documented, and a certificate signed by another CA is refused with a message saying what
//! to set. A missing server fails the test.
#![cfg(any(feature = "postgres", feature = "mysql"))]

use ikkatsu_core::ErrorKind;
use ikkatsu_sql::{PoolSettings, SqlSite};

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

fn site(url: &str) -> SqlSite {
    SqlSite::new("job repository", "repository URL", url)
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    const SERVER: &str = "postgres://root@127.0.0.1:5432/test";

    /// Whether the connection of `url` is encrypted (`pg_stat_ssl`).
    async fn encrypted(url: &str) -> bool {
        let pool = ikkatsu_sql::connect_postgres(&site(url), url, &PoolSettings::new("tls"))
            .await
            .unwrap_or_else(|err| panic!("{url}: {err}"));
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        ssl
    }

    #[tokio::test]
    async fn each_sslmode_connects_as_documented() {
        let ca = ca(false);
        assert!(!encrypted(&format!("{SERVER}?sslmode=disable")).await);
        // The default is prefer: TLS when the server offers it.
        assert!(encrypted(SERVER).await);
        assert!(encrypted(&format!("{SERVER}?sslmode=prefer")).await);
        assert!(encrypted(&format!("{SERVER}?sslmode=require")).await);
        assert!(encrypted(&format!("{SERVER}?sslmode=verify-ca&sslrootcert={ca}")).await);
        assert!(encrypted(&format!("{SERVER}?sslmode=verify-full&sslrootcert={ca}")).await);
    }

    #[tokio::test]
    async fn a_certificate_of_another_ca_is_refused_with_what_to_set() {
        let url = format!("{SERVER}?sslmode=verify-full&sslrootcert={}", ca(true));
        let err = ikkatsu_sql::connect_postgres(&site(&url), &url, &PoolSettings::new("tls"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(!err.is_temporary());
        assert_eq!(
            err.message(),
            format!(
                "job repository {url}: connecting: the server's TLS certificate is not trusted \
                 (invalid peer certificate: UnknownIssuer): give the CA certificate that signed \
                 it with sslrootcert=FILE in the repository URL, or sslmode=require to encrypt \
                 without verifying the server"
            )
        );
    }

    #[tokio::test]
    async fn a_missing_ca_file_is_a_config_error() {
        let url = format!("{SERVER}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let err = ikkatsu_sql::connect_postgres(&site(&url), &url, &PoolSettings::new("tls"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            err.message(),
            format!(
                "job repository {url}: sslrootcert=/nonexistent/ca.pem cannot be read (No such \
                 file or directory (os error 2)): give the path of a PEM file"
            )
        );
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;

    const SERVER: &str = "mysql://root@127.0.0.1:3306/test";

    /// Whether the connection of `url` is encrypted (`Ssl_cipher` is set).
    async fn encrypted(url: &str) -> bool {
        let pool = ikkatsu_sql::connect_mysql(&site(url), url, &PoolSettings::new("tls"))
            .await
            .unwrap_or_else(|err| panic!("{url}: {err}"));
        let (_, cipher): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        !cipher.is_empty()
    }

    #[tokio::test]
    async fn each_ssl_mode_connects_as_documented() {
        let ca = ca(false);
        assert!(!encrypted(&format!("{SERVER}?ssl-mode=DISABLED")).await);
        // The default is PREFERRED: TLS when the server offers it.
        assert!(encrypted(SERVER).await);
        assert!(encrypted(&format!("{SERVER}?ssl-mode=PREFERRED")).await);
        assert!(encrypted(&format!("{SERVER}?ssl-mode=REQUIRED")).await);
        assert!(encrypted(&format!("{SERVER}?ssl-mode=VERIFY_CA&ssl-ca={ca}")).await);
        assert!(encrypted(&format!("{SERVER}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}")).await);
    }

    #[tokio::test]
    async fn a_certificate_of_another_ca_is_refused_with_what_to_set() {
        let url = format!("{SERVER}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca(true));
        let err = ikkatsu_sql::connect_mysql(&site(&url), &url, &PoolSettings::new("tls"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(
            err.message(),
            format!(
                "job repository {url}: connecting: the server's TLS certificate is not trusted \
                 (invalid peer certificate: UnknownIssuer): give the CA certificate that signed \
                 it with ssl-ca=FILE in the repository URL, or ssl-mode=REQUIRED to encrypt \
                 without verifying the server"
            )
        );
    }

    #[tokio::test]
    async fn an_unknown_ssl_mode_is_a_config_error() {
        let url = format!("{SERVER}?ssl-mode=verify-full");
        let err = ikkatsu_sql::connect_mysql(&site(&url), &url, &PoolSettings::new("tls"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            err.message(),
            format!(
                "job repository {url}: ssl-mode=verify-full is not a TLS mode: use one of \
                 DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
            )
        );
    }
}
