//! SQL database URLs: which database a URL names, for every part of ikkatsu that connects to
//! one (the job repository, the SQL status store).

use ikkatsu_core::{Error, Result};

/// The SQL URL forms, for messages that list them.
pub const SQL_URL_FORMS: &str = "sqlite://PATH, postgres://USER@HOST/DB or mysql://USER@HOST/DB";

/// The database a SQL URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlUrl {
    /// `sqlite://PATH`, `sqlite:PATH` (relative paths allowed) or `sqlite::memory:`.
    Sqlite {
        /// The database file; `None` for an in-memory database.
        path: Option<String>,
    },
    /// `postgres://…` or `postgresql://…`.
    Postgres {
        /// The URL as given (trimmed).
        url: String,
    },
    /// `mysql://…` or `mariadb://…` (the latter rewritten to `mysql://`).
    MySql {
        /// The URL with the `mysql://` scheme.
        url: String,
    },
}

impl SqlUrl {
    /// Recognizes `url` as the URL of a SQL database: `Ok(None)` when its scheme names none
    /// (the caller may know other schemes), a [`ErrorKind::Config`](ikkatsu_core::ErrorKind::Config)
    /// error naming the `role` (`job repository`) and the masked URL when a SQLite URL names no
    /// file.
    ///
    /// The URL's password and secret query parameters are redacted from every log line and
    /// message from now on ([`ikkatsu_core::secret::register_url`]).
    ///
    /// ```
    /// use ikkatsu_sql::SqlUrl;
    ///
    /// assert_eq!(
    ///     SqlUrl::parse("mariadb://app:pw@db/batch", "job repository").unwrap(),
    ///     Some(SqlUrl::MySql { url: "mysql://app:pw@db/batch".into() })
    /// );
    /// assert_eq!(SqlUrl::parse("redis://db/0", "status store").unwrap(), None);
    /// assert!(SqlUrl::parse("sqlite://", "job repository").is_err());
    /// ```
    pub fn parse(url: &str, role: &str) -> Result<Option<SqlUrl>> {
        ikkatsu_core::secret::register_url(url);
        let trimmed = url.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            let rest = &trimmed["sqlite:".len()..];
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            // Query options (`?mode=rwc`) are not used: the file is always created if missing.
            let path = rest.split('?').next().unwrap_or_default();
            if path == ":memory:" {
                return Ok(Some(SqlUrl::Sqlite { path: None }));
            }
            if path.is_empty() {
                return Err(Error::config(format!(
                    "{role} URL `{}` names no database file: write sqlite://PATH, for example sqlite://ikkatsu.db",
                    ikkatsu_core::secret::mask_url(url)
                )));
            }
            return Ok(Some(SqlUrl::Sqlite {
                path: Some(path.to_string()),
            }));
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Some(SqlUrl::Postgres {
                url: trimmed.to_string(),
            }));
        }
        // The scheme in any case (`MySQL://`) is written `mysql://`, as the variant says.
        for scheme in ["mysql://", "mariadb://"] {
            if lower.starts_with(scheme) {
                return Ok(Some(SqlUrl::MySql {
                    url: format!("mysql://{}", &trimmed[scheme.len()..]),
                }));
            }
        }
        Ok(None)
    }

    /// The cargo feature that compiles this database's driver in (`sqlite`, `postgres`,
    /// `mysql`: the same name in every crate that has one).
    pub fn feature(&self) -> &'static str {
        match self {
            SqlUrl::Sqlite { .. } => "sqlite",
            SqlUrl::Postgres { .. } => "postgres",
            SqlUrl::MySql { .. } => "mysql",
        }
    }
}

#[cfg(test)]
mod tests {
    use ikkatsu_core::ErrorKind;

    use super::*;

    fn parse(url: &str) -> Option<SqlUrl> {
        SqlUrl::parse(url, "job repository").unwrap()
    }

    #[test]
    fn selects_databases() {
        assert_eq!(
            parse("sqlite://data/ikkatsu.db"),
            Some(SqlUrl::Sqlite {
                path: Some("data/ikkatsu.db".into())
            })
        );
        assert_eq!(
            parse("sqlite:ikkatsu.db?mode=rwc"),
            Some(SqlUrl::Sqlite {
                path: Some("ikkatsu.db".into())
            })
        );
        assert_eq!(
            parse("sqlite:///var/lib/ikkatsu.db"),
            Some(SqlUrl::Sqlite {
                path: Some("/var/lib/ikkatsu.db".into())
            })
        );
        assert_eq!(
            parse("sqlite::memory:"),
            Some(SqlUrl::Sqlite { path: None })
        );
        assert_eq!(
            parse(" MariaDB://u:p@h/db "),
            Some(SqlUrl::MySql {
                url: "mysql://u:p@h/db".into()
            })
        );
        assert_eq!(
            parse("postgresql://h/db"),
            Some(SqlUrl::Postgres {
                url: "postgresql://h/db".into()
            })
        );
        assert_eq!(parse("oracle://scott:tiger@h/db"), None);
        assert_eq!(parse("ikkatsu.db"), None);
        assert_eq!(
            parse("sqlite::memory:").map(|u| u.feature()),
            Some("sqlite")
        );
    }

    /// Found by the `sql_url` fuzz target (`scripts/fuzz`): `mYsql://…` kept its scheme as
    /// written, though a MySQL URL is documented to have the `mysql://` scheme.
    #[test]
    fn a_mysql_url_has_the_mysql_scheme_in_lower_case() {
        assert_eq!(
            parse("mYsql://\u{2026}"),
            Some(SqlUrl::MySql {
                url: "mysql://\u{2026}".into()
            })
        );
        assert_eq!(
            parse("MYSQL://u:p@h/db"),
            Some(SqlUrl::MySql {
                url: "mysql://u:p@h/db".into()
            })
        );
    }

    #[test]
    fn a_sqlite_url_without_a_file_names_the_role() {
        let err = SqlUrl::parse("sqlite://?password=tiger", "status store").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.message()
                .starts_with("status store URL `sqlite://?password=***` names no database file"),
            "{err}"
        );
    }
}
