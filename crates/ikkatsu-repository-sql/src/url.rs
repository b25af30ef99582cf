//! Repository URLs: which backend a URL selects, and its printable (password-masked) form.

use ikkatsu_core::{Error, ErrorKind, Result};

/// The backend a repository URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryUrl {
    /// `sqlite://PATH`, `sqlite:PATH` (relative paths allowed) or `sqlite::memory:`.
    Sqlite {
        /// The database file; `None` for an in-memory database.
        path: Option<String>,
    },
    /// `postgres://…` or `postgresql://…`.
    Postgres {
        /// The URL as given.
        url: String,
    },
    /// `mysql://…` or `mariadb://…` (the latter rewritten to `mysql://`).
    MySql {
        /// The URL with the `mysql://` scheme.
        url: String,
    },
}

impl RepositoryUrl {
    /// Parses `url`; an unknown scheme is a [`ErrorKind::Config`] error naming the (masked) URL.
    pub fn parse(url: &str) -> Result<Self> {
        // Its password is redacted from every log line and message from now on.
        ikkatsu_core::secret::register_url(url);
        let trimmed = url.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            let rest = &trimmed["sqlite:".len()..];
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            // Query options (`?mode=rwc`) are not used: the file is always created if missing.
            let path = rest.split('?').next().unwrap_or_default();
            if path == ":memory:" {
                return Ok(RepositoryUrl::Sqlite { path: None });
            }
            if path.is_empty() {
                return Err(Error::config(format!(
                    "job repository URL `{}` names no database file: write sqlite://PATH, for example sqlite://ikkatsu.db",
                    mask_url(url)
                )));
            }
            return Ok(RepositoryUrl::Sqlite {
                path: Some(path.to_string()),
            });
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(RepositoryUrl::Postgres {
                url: trimmed.to_string(),
            });
        }
        if lower.starts_with("mysql://") {
            return Ok(RepositoryUrl::MySql {
                url: trimmed.to_string(),
            });
        }
        if lower.starts_with("mariadb://") {
            return Ok(RepositoryUrl::MySql {
                url: format!("mysql://{}", &trimmed["mariadb://".len()..]),
            });
        }
        Err(Error::new(
            ErrorKind::Config,
            format!(
                "job repository URL `{}` has an unknown scheme: use sqlite://PATH, postgres://USER@HOST/DB or mysql://USER@HOST/DB",
                mask_url(url)
            ),
        ))
    }

    /// The cargo feature that compiles this backend in.
    pub fn feature(&self) -> &'static str {
        match self {
            RepositoryUrl::Sqlite { .. } => "sqlite",
            RepositoryUrl::Postgres { .. } => "postgres",
            RepositoryUrl::MySql { .. } => "mysql",
        }
    }
}

/// `url` with its password (of the user info; a lone `redis://PASSWORD@…` too) and its
/// secret-looking query parameters replaced by `***`, fit for messages and logs
/// ([`ikkatsu_core::secret::mask_url`]).
pub fn mask_url(url: &str) -> String {
    ikkatsu_core::secret::mask_url(url)
}

#[cfg(test)]
mod tests {
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
            RepositoryUrl::parse("sqlite://data/ikkatsu.db").unwrap(),
            RepositoryUrl::Sqlite {
                path: Some("data/ikkatsu.db".into())
            }
        );
        assert_eq!(
            RepositoryUrl::parse("sqlite:ikkatsu.db").unwrap(),
            RepositoryUrl::Sqlite {
                path: Some("ikkatsu.db".into())
            }
        );
        assert_eq!(
            RepositoryUrl::parse("sqlite:///var/lib/ikkatsu.db").unwrap(),
            RepositoryUrl::Sqlite {
                path: Some("/var/lib/ikkatsu.db".into())
            }
        );
        assert_eq!(
            RepositoryUrl::parse("sqlite::memory:").unwrap(),
            RepositoryUrl::Sqlite { path: None }
        );
        assert_eq!(
            RepositoryUrl::parse("mariadb://u:p@h/db").unwrap(),
            RepositoryUrl::MySql {
                url: "mysql://u:p@h/db".into()
            }
        );
        assert!(matches!(
            RepositoryUrl::parse("postgresql://h/db").unwrap(),
            RepositoryUrl::Postgres { .. }
        ));
        let err = RepositoryUrl::parse("oracle://scott:tiger@h/db").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("oracle://scott:***@h/db"), "{err}");
        assert!(!err.message().contains("tiger"));
        assert!(RepositoryUrl::parse("sqlite://").is_err());
    }
}
