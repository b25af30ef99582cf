//! SQL URLs (the job repository, the SQL status store): `SqlUrl::parse` names a database or
//! none or errors, never panics; a SQLite path has no query; a MariaDB URL becomes a
//! `mysql://` one; the TLS options of PostgreSQL and MySQL URLs (`TlsOptions::parse`) are
//! options or an error naming the option; no error shows the password or a secret query
//! parameter.
#![no_main]

use ikkatsu_core::secret::mask_url;
use ikkatsu_fuzz::Secrets;
use ikkatsu_sql::{Dialect, SqlUrl, TlsOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let secrets = Secrets::of_url(url, url);
    let shown = shown_texts(url);
    let blanked = shown_texts(&secrets.blank(url));
    for ((what, shown), (_, blanked)) in shown.iter().zip(&blanked) {
        secrets.assert_hidden(what, shown, blanked);
    }
});

/// Parses `url` and returns what shows it: the masked URL, the errors.
fn shown_texts(url: &str) -> Vec<(&'static str, String)> {
    let shown = mask_url(url);
    let mut texts = vec![("the masked URL", shown.clone())];
    let parsed = match SqlUrl::parse(url, "job repository") {
        Ok(parsed) => parsed,
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains("job repository"), "{message}");
            texts.push(("the error", message));
            return texts;
        }
    };
    let (server_url, dialect) = match &parsed {
        None => return texts,
        Some(SqlUrl::Sqlite { path }) => {
            assert!(
                path.as_deref()
                    .is_none_or(|p| !p.is_empty() && !p.contains('?'))
            );
            return texts;
        }
        Some(SqlUrl::Postgres { url }) => (url, Dialect::Postgres),
        Some(SqlUrl::MySql { url }) => {
            assert!(url.starts_with("mysql://"), "{url}");
            (url, Dialect::MySql)
        }
    };
    match TlsOptions::parse(server_url, dialect, &shown) {
        Ok(options) => {
            if let Some(mode) = &options.mode {
                let again = format!("x://h/d?{}={mode}", dialect.mode_option());
                assert!(
                    TlsOptions::parse(&again, dialect, "again").is_ok(),
                    "the mode {mode:?} is accepted once only"
                );
            }
            assert_eq!(options.cert_file.is_some(), options.key_file.is_some());
        }
        Err(err) => texts.push(("the TLS error", err.to_string())),
    }
    texts
}
