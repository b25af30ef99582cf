//! The TLS options of PostgreSQL and MySQL/MariaDB URLs: which mode, which CA file, which
//! client certificate, checked before connecting so that a typo or a missing file is a
//! configuration error naming the option, not a failed handshake.
//!
//! | PostgreSQL                 | MySQL / MariaDB             | meaning                                   |
//! |----------------------------|-----------------------------|-------------------------------------------|
//! | `sslmode=disable`          | `ssl-mode=DISABLED`         | plain text                                |
//! | `sslmode=prefer` (default) | `ssl-mode=PREFERRED` (default) | TLS when the server offers it, not verified |
//! | `sslmode=require`          | `ssl-mode=REQUIRED`         | TLS or fail, not verified                 |
//! | `sslmode=verify-ca`        | `ssl-mode=VERIFY_CA`        | TLS, certificate signed by a trusted CA   |
//! | `sslmode=verify-full`      | `ssl-mode=VERIFY_IDENTITY`  | and naming the host of the URL            |
//!
//! The trusted CAs are the system's (or `SSL_CERT_FILE`'s) plus `sslrootcert=FILE`
//! (PostgreSQL) or `ssl-ca=FILE` (MySQL); `sslcert=FILE` with `sslkey=FILE` (both) log in
//! with a client certificate.

use ikkatsu_core::{Error, Result};

/// Which server a URL names, for the names of its TLS options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `sslmode`, `sslrootcert`.
    Postgres,
    /// MySQL or MariaDB: `ssl-mode`, `ssl-ca`.
    MySql,
}

impl Dialect {
    /// The option that sets the mode, as the documentation writes it.
    pub fn mode_option(self) -> &'static str {
        match self {
            Dialect::Postgres => "sslmode",
            Dialect::MySql => "ssl-mode",
        }
    }

    /// The option that names the CA file, as the documentation writes it.
    pub fn ca_option(self) -> &'static str {
        match self {
            Dialect::Postgres => "sslrootcert",
            Dialect::MySql => "ssl-ca",
        }
    }

    /// The modes, as the documentation writes them.
    fn modes(self) -> &'static [&'static str] {
        match self {
            Dialect::Postgres => &["disable", "prefer", "require", "verify-ca", "verify-full"],
            Dialect::MySql => &[
                "DISABLED",
                "PREFERRED",
                "REQUIRED",
                "VERIFY_CA",
                "VERIFY_IDENTITY",
            ],
        }
    }

    /// The mode that encrypts without verifying the server.
    pub fn require_mode(self) -> &'static str {
        self.modes()[2]
    }

    /// The mode that verifies the CA but not the host name.
    pub fn verify_ca_mode(self) -> &'static str {
        self.modes()[3]
    }

    /// What an option of the URL's query is, by its name (the aliases sqlx reads).
    fn option(self, key: &str) -> Option<TlsOption> {
        match (self, key) {
            (_, "sslmode" | "ssl-mode") => Some(TlsOption::Mode),
            (Dialect::Postgres, "sslrootcert" | "ssl-root-cert" | "ssl-ca")
            | (Dialect::MySql, "sslca" | "ssl-ca") => Some(TlsOption::Ca),
            (_, "sslcert" | "ssl-cert") => Some(TlsOption::Cert),
            (_, "sslkey" | "ssl-key") => Some(TlsOption::Key),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsOption {
    Mode,
    Ca,
    Cert,
    Key,
}

/// The TLS options of a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The mode as written in the URL (`None`: the default, `prefer` / `PREFERRED`).
    pub mode: Option<String>,
    /// The CA file (`sslrootcert`, `ssl-ca`).
    pub ca_file: Option<String>,
    /// The client certificate file (`sslcert`).
    pub cert_file: Option<String>,
    /// The client key file (`sslkey`).
    pub key_file: Option<String>,
}

impl TlsOptions {
    /// The TLS options of `url` (a `postgres://` or `mysql://` URL; `describe` names it in
    /// messages, its secrets masked): a [`ErrorKind::Config`](ikkatsu_core::ErrorKind::Config) error
    /// for an unknown mode, listing the known ones, or for a client certificate without its
    /// key.
    pub fn parse(url: &str, dialect: Dialect, describe: &str) -> Result<TlsOptions> {
        let mut out = TlsOptions::default();
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = ikkatsu_core::secret::percent_decode(&value.replace('+', " "));
            match dialect.option(key) {
                Some(TlsOption::Mode) => {
                    if !dialect
                        .modes()
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&value))
                    {
                        return Err(Error::config(format!(
                            "{describe}: {}={value} is not a TLS mode: use one of {}",
                            dialect.mode_option(),
                            dialect.modes().join(", ")
                        )));
                    }
                    out.mode = Some(value);
                }
                Some(TlsOption::Ca) => out.ca_file = Some(value),
                Some(TlsOption::Cert) => out.cert_file = Some(value),
                Some(TlsOption::Key) => out.key_file = Some(value),
                None => {}
            }
        }
        if out.cert_file.is_some() != out.key_file.is_some() {
            return Err(Error::config(format!(
                "{describe}: sslcert and sslkey go together (the client certificate and its private key): give both or neither"
            )));
        }
        Ok(out)
    }

    /// Checks that each file named by the options can be read and holds PEM data, so that
    /// a wrong path fails before connecting: a [`ErrorKind::Config`](ikkatsu_core::ErrorKind::Config)
    /// error naming the option, the file and the URL. A value that is PEM text itself
    /// (`-----BEGIN …`) is not a file.
    pub fn check_files(&self, dialect: Dialect, describe: &str) -> Result<()> {
        let files = [
            (dialect.ca_option(), &self.ca_file, "CERTIFICATE"),
            ("sslcert", &self.cert_file, "CERTIFICATE"),
            ("sslkey", &self.key_file, "PRIVATE KEY"),
        ];
        for (option, file, label) in files {
            let Some(file) = file else { continue };
            if file.trim_start().starts_with("-----BEGIN") {
                continue;
            }
            let text = std::fs::read(file).map_err(|err| {
                Error::config(format!(
                    "{describe}: {option}={file} cannot be read ({err}): give the path of a PEM file"
                ))
            })?;
            let text = String::from_utf8_lossy(&text);
            if !text.contains("-----BEGIN") || !text.contains(label) {
                return Err(Error::config(format!(
                    "{describe}: {option}={file} holds no PEM {}: give a PEM file (-----BEGIN {label}-----)",
                    label.to_ascii_lowercase()
                )));
            }
        }
        Ok(())
    }
}

/// An error of connecting to `site` that is about TLS, explained: a certificate that is
/// not trusted or does not name the host, a server without TLS, another failed handshake.
/// An [`ErrorKind::Io`](ikkatsu_core::ErrorKind::Io) error (not temporary: retrying gets
/// the same certificate) naming the masked URL and the option that fixes it; `None` when
/// `err` is not about TLS.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn tls_error(
    site: &crate::error::SqlSite,
    dialect: Dialect,
    err: &sqlx::Error,
) -> Option<Error> {
    use rustls::CertificateError;

    let url_name = site.url_name();
    let (mode, ca) = (dialect.mode_option(), dialect.ca_option());
    let rustls_error = match err {
        sqlx::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        sqlx::Error::Tls(tls) => tls.downcast_ref::<rustls::Error>(),
        _ => None,
    };
    let message = match (err, rustls_error) {
        (
            _,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )),
        ) => format!(
            "the server's TLS certificate does not name the host of the URL ({}): connect with a host name the certificate names, or {mode}={} to check the CA only",
            rustls_error.map(ToString::to_string).unwrap_or_default(),
            dialect.verify_ca_mode()
        ),
        (_, Some(rustls::Error::InvalidCertificate(cert))) => format!(
            "the server's TLS certificate is not trusted ({}): give the CA certificate that signed it with {ca}=FILE in the {url_name}, or {mode}={} to encrypt without verifying the server",
            rustls::Error::InvalidCertificate(cert.clone()),
            dialect.require_mode()
        ),
        (_, Some(other)) => {
            format!("the TLS handshake failed ({other}): check {mode} and {ca} in the {url_name}")
        }
        (sqlx::Error::Tls(tls), None) if tls.to_string().contains("does not support TLS") => {
            format!(
                "the server does not offer TLS, and {mode} requires it: turn TLS on in the server, or use {mode}={} in the {url_name}",
                dialect.modes()[0]
            )
        }
        (sqlx::Error::Tls(tls), None) => {
            format!("the TLS handshake failed ({tls}): check {mode} and {ca} in the {url_name}")
        }
        _ => return None,
    };
    Some(Error::new(
        ikkatsu_core::ErrorKind::Io,
        format!("{site}: connecting: {message}"),
    ))
}

#[cfg(test)]
mod tests {
    use ikkatsu_core::ErrorKind;

    use super::*;

    #[test]
    fn reads_the_options_of_each_dialect() {
        let pg = TlsOptions::parse(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
            Dialect::Postgres,
            "x",
        )
        .unwrap();
        assert_eq!(pg.mode.as_deref(), Some("verify-full"));
        assert_eq!(pg.ca_file.as_deref(), Some("/etc/ca.pem"));
        let my = TlsOptions::parse(
            "mysql://u@h/db?ssl-mode=verify_identity&ssl-ca=/ca.pem",
            Dialect::MySql,
            "x",
        )
        .unwrap();
        assert_eq!(my.mode.as_deref(), Some("verify_identity"));
        assert_eq!(my.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(
            TlsOptions::parse("mysql://u@h/db", Dialect::MySql, "x").unwrap(),
            TlsOptions::default()
        );
    }

    #[test]
    fn refuses_unknown_modes_and_a_certificate_without_its_key() {
        let err = TlsOptions::parse("postgres://h/db?sslmode=allow", Dialect::Postgres, "MASKED")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            err.message(),
            "MASKED: sslmode=allow is not a TLS mode: use one of disable, prefer, require, verify-ca, verify-full"
        );
        let err = TlsOptions::parse("mysql://h/db?ssl-mode=verify-full", Dialect::MySql, "M")
            .unwrap_err();
        assert!(
            err.message()
                .ends_with("use one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"),
            "{err}"
        );
        let err = TlsOptions::parse("postgres://h/db?sslcert=/c.pem", Dialect::Postgres, "M")
            .unwrap_err();
        assert!(
            err.message().contains("sslcert and sslkey go together"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_or_non_pem_file_names_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let options = TlsOptions {
            ca_file: Some(missing.display().to_string()),
            ..TlsOptions::default()
        };
        let err = options.check_files(Dialect::MySql, "M").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.message()
                .starts_with(&format!("M: ssl-ca={} cannot be read (", missing.display())),
            "{err}"
        );
        let text = dir.path().join("ca.txt");
        std::fs::write(&text, "not a certificate").unwrap();
        let options = TlsOptions {
            ca_file: Some(text.display().to_string()),
            ..TlsOptions::default()
        };
        let err = options.check_files(Dialect::Postgres, "M").unwrap_err();
        assert!(
            err.message().contains("sslrootcert=")
                && err.message().contains("holds no PEM certificate"),
            "{err}"
        );
        let inline = TlsOptions {
            ca_file: Some("-----BEGIN CERTIFICATE-----\n...".into()),
            ..TlsOptions::default()
        };
        inline.check_files(Dialect::Postgres, "M").unwrap();
    }
}
