//! Repository URLs: which backend a URL selects ([`ikkatsu_sql::SqlUrl`], the one parser of
//! SQL URLs), and what an unknown one says.

use ikkatsu_core::secret::mask_url;
use ikkatsu_core::{Error, Result};
use ikkatsu_sql::SQL_URL_FORMS;

/// The backend a repository URL selects.
pub use ikkatsu_sql::SqlUrl as RepositoryUrl;

/// Parses the job repository URL `url`; an unknown scheme is a
/// [`ErrorKind::Config`](ikkatsu_core::ErrorKind::Config) error naming the (masked) URL.
pub fn parse(url: &str) -> Result<RepositoryUrl> {
    RepositoryUrl::parse(url, "job repository")?.ok_or_else(|| {
        Error::config(format!(
            "job repository URL `{}` has an unknown scheme: use {SQL_URL_FORMS}",
            mask_url(url)
        ))
    })
}

#[cfg(test)]
mod tests {
    use ikkatsu_core::ErrorKind;

    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("postgres://app:s3cr:et@db.example:5432/batch"),
            "postgres://app:***@db.example:5432/batch"
        );
        assert_eq!(
            mask_url("mysql://root@127.0.0.1/test?password=x&ssl-mode=disabled"),
            "mysql://root@127.0.0.1/test?password=***&ssl-mode=disabled"
        );
        assert_eq!(mask_url("sqlite://ikkatsu.db"), "sqlite://ikkatsu.db");
    }

    #[test]
    fn selects_backends() {
        assert_eq!(
            parse("sqlite://data/ikkatsu.db").unwrap(),
            RepositoryUrl::Sqlite {
                path: Some("data/ikkatsu.db".into())
            }
        );
        assert_eq!(
            parse("sqlite:ikkatsu.db").unwrap(),
            RepositoryUrl::Sqlite {
                path: Some("ikkatsu.db".into())
            }
        );
        assert_eq!(
            parse("sqlite:///var/lib/ikkatsu.db").unwrap(),
            RepositoryUrl::Sqlite {
                path: Some("/var/lib/ikkatsu.db".into())
            }
        );
        assert_eq!(
            parse("sqlite::memory:").unwrap(),
            RepositoryUrl::Sqlite { path: None }
        );
        assert_eq!(
            parse("mariadb://u:p@h/db").unwrap(),
            RepositoryUrl::MySql {
                url: "mysql://u:p@h/db".into()
            }
        );
        assert!(matches!(
            parse("postgresql://h/db").unwrap(),
            RepositoryUrl::Postgres { .. }
        ));
        let err = parse("oracle://scott:tiger@h/db").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("oracle://scott:***@h/db"), "{err}");
        assert!(!err.message().contains("tiger"));
        assert!(parse("sqlite://").is_err());
    }
}
