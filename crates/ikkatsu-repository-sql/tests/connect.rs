//! `connect` and `migrate` by URL: schemes, relative SQLite paths, masked errors.

mod common;

use ikkatsu_core::ErrorKind;

#[tokio::test]
async fn sqlite_relative_path_is_created_and_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let relative = dir
        .path()
        .strip_prefix(std::env::current_dir().unwrap())
        .map(|p| p.join("nested.db"))
        .unwrap_or_else(|_| dir.path().join("nested.db"));
    let url = format!("sqlite:{}", relative.display());
    ikkatsu_repository_sql::migrate(&url).await.unwrap();
    assert!(dir.path().join("nested.db").exists());
    // Connecting again finds the schema applied and the repository empty.
    let repository = ikkatsu_repository_sql::connect(&url).await.unwrap();
    assert!(repository.job_names().await.unwrap().is_empty());
    assert_eq!(
        repository.describe(),
        format!("sqlite://{}", relative.display())
    );
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let repository = ikkatsu_repository_sql::connect("sqlite::memory:")
        .await
        .unwrap();
    assert_eq!(repository.describe(), "sqlite::memory:");
    assert!(repository.job_names().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_scheme_names_the_masked_url() {
    let err = ikkatsu_repository_sql::connect("redis://user:hunter2@localhost/0")
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("redis://user:***@localhost/0"),
        "{err}"
    );
    assert!(!err.message().contains("hunter2"));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn unreachable_postgres_is_a_temporary_repository_error_without_password() {
    let err = ikkatsu_repository_sql::connect("postgres://root:hunter2@127.0.0.1:1/test")
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Repository);
    assert!(err.is_temporary(), "{err}");
    assert!(
        err.message()
            .contains("postgres://root:***@127.0.0.1:1/test"),
        "{err}"
    );
    assert!(!err.message().contains("hunter2"));
}

#[cfg(not(feature = "mysql"))]
#[tokio::test]
async fn feature_not_compiled_in_is_named() {
    let err = ikkatsu_repository_sql::connect("mariadb://root:pw@127.0.0.1/test")
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("`mysql` feature"), "{err}");
    assert!(
        err.message().contains("mariadb://root:***@127.0.0.1/test"),
        "{err}"
    );
}

/// Processes started together (a job and `ikkatsu executions`, two cron runs) open a new
/// database file at once: the one that loses the race to switch it to WAL waits instead of
/// failing with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_new_sqlite_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let path = dir.path().join(format!("race-{round}.db"));
        let path = path.display().to_string();
        let opens = (0..4).map(|_| {
            let path = path.clone();
            tokio::spawn(
                async move { ikkatsu_repository_sql::SqliteJobRepository::open(&path).await },
            )
        });
        for open in futures::future::join_all(opens).await {
            if let Err(err) = open.unwrap() {
                panic!("round {round}: {err}");
            }
        }
    }
}

/// The job repository refuses a server whose certificate another CA signed (the TLS URL of
/// `scripts/tls-servers` with `IKKATSU_TEST_OTHER_CA`), saying which option to set.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn other_ca_is_refused(postgres: bool, fix: &str) {
    let url =
        common::tls_server_url(postgres).replace(&common::test_ca(false), &common::test_ca(true));
    let err = ikkatsu_repository_sql::connect(&url).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(!err.is_temporary());
    assert_eq!(
        err.message(),
        format!(
            "job repository {url}: connecting: the server's TLS certificate is not trusted \
             (invalid peer certificate: UnknownIssuer): give the CA certificate that signed it \
             with {fix}"
        )
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_certificate_of_another_ca_is_refused() {
    other_ca_is_refused(
        true,
        "sslrootcert=FILE in the repository URL, or sslmode=require to encrypt without \
         verifying the server",
    )
    .await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_certificate_of_another_ca_is_refused() {
    other_ca_is_refused(
        false,
        "ssl-ca=FILE in the repository URL, or ssl-mode=REQUIRED to encrypt without verifying \
         the server",
    )
    .await;
}
