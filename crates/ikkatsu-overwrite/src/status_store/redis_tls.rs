//! Connecting to one Redis server, in plain text (`redis://`) or over TLS (`rediss://`):
//! the `ca-file` and `insecure` options of the URL, the rustls crypto provider (ring), and
//! what an untrusted certificate says.
//!
//! `rediss://HOST:PORT/DB` verifies the server's certificate against the system's CAs (or
//! `SSL_CERT_FILE`'s); `?ca-file=PATH` adds the CAs of a PEM file; `?insecure=true` accepts
//! any certificate (the traffic is encrypted, the server not verified). Both need
//! `rediss://`, and they exclude each other.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::{Error, ErrorKind, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::store_error;

/// The TLS options of a Redis URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RedisTls {
    /// A PEM file of CA certificates to trust (`ca-file`).
    pub(crate) ca_file: Option<PathBuf>,
    /// Accept any certificate (`insecure=true`).
    pub(crate) insecure: bool,
}

/// Takes `ca-file` and `insecure` out of the query of `url` (`describe` is its masked
/// form, for messages): the URL the redis crate reads (`insecure` as its `#insecure`
/// fragment) and the options. A [`ErrorKind::Config`] error when they are given for a
/// `redis://` URL, together, or with a value that is not a boolean.
pub(crate) fn take_tls_options(url: &str, describe: &str) -> Result<(String, RedisTls)> {
    let bad = |why: &str| Error::config(format!("status store URL `{describe}`: {why}"));
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, query),
        None => (base, ""),
    };
    let mut tls = RedisTls::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        match key {
            "ca-file" | "ca_file" => {
                tls.ca_file = Some(PathBuf::from(ikkatsu_core::secret::percent_decode(value)));
            }
            "insecure" => {
                tls.insecure = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(bad(&format!("insecure is `{value}`, not true or false"))),
                }
            }
            _ => kept.push(pair),
        }
    }
    let tls_scheme = head
        .get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"));
    if !tls_scheme && (tls.ca_file.is_some() || tls.insecure) {
        return Err(bad(
            "ca-file and insecure are TLS options: write rediss:// to connect over TLS",
        ));
    }
    if tls.insecure && tls.ca_file.is_some() {
        return Err(bad("insecure and ca-file exclude each other: keep one"));
    }
    let mut out = head.to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    match (tls.insecure, fragment) {
        (true, _) => out.push_str("#insecure"),
        (false, Some(fragment)) => {
            out.push('#');
            out.push_str(fragment);
        }
        (false, None) => {}
    }
    Ok((out, tls))
}

/// Connects to the one Redis server at `url` (`describe`: its masked form); fails at once
/// when it cannot be reached, or when its certificate is not trusted.
pub(crate) async fn connect_single(url: &str, describe: &str) -> Result<ConnectionManager> {
    let (url, tls) = take_tls_options(url, describe)?;
    let invalid = |err: redis::RedisError| {
        Error::new(
            ErrorKind::Config,
            format!("status store URL `{describe}` is not a valid Redis URL: {err}"),
        )
        .with_source(err)
    };
    let client = match &tls.ca_file {
        Some(path) => {
            let pem = read_ca_file(path, describe)?;
            ikkatsu_net::install_crypto_provider();
            redis::Client::build_with_tls(
                url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(invalid)?
        }
        None => {
            ikkatsu_net::install_crypto_provider();
            redis::Client::open(url.as_str()).map_err(invalid)?
        }
    };
    if tls.insecure {
        tracing::warn!(
            "status store {describe}: insecure=true: the server's TLS certificate is not verified"
        );
    }
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|err| match certificate_error(describe, &err) {
            Some(tls) => tls.with_source(err),
            None => store_error(
                describe,
                "connecting (is the Redis server running and the URL right?)",
                err,
                true,
            ),
        })
}

/// The CA certificates of `path`, checked to hold at least one PEM certificate.
fn read_ca_file(path: &std::path::Path, describe: &str) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).map_err(|err| {
        Error::config(format!(
            "status store URL `{describe}`: ca-file={} cannot be read ({err}): give the path of a PEM file",
            path.display()
        ))
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::config(format!(
            "status store URL `{describe}`: ca-file={} holds no PEM certificate: give a PEM file (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(pem)
}

/// The rustls error somewhere in `err`'s chain. The redis crate keeps an I/O error in an
/// `Arc` (whose `source` skips the I/O error itself), and the I/O error wraps rustls's.
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    fn within<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(shared) = e.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>() {
            return within(shared.as_ref());
        }
        e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| within(inner))
    }
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = within(e) {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// An untrusted certificate (or another failed TLS handshake) explained: an
/// [`ErrorKind::Io`] error, not temporary, saying what to set; `None` for other errors.
fn certificate_error(describe: &str, err: &redis::RedisError) -> Option<Error> {
    let message = match rustls_error(err)? {
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's TLS certificate does not name the host of the URL ({}): connect with a host name the certificate names",
            rustls_error(err)?
        ),
        rustls::Error::InvalidCertificate(cert) => format!(
            "the server's TLS certificate is not trusted ({}): give the CA certificate that signed it with ?ca-file=FILE in the status store URL, or ?insecure=true to encrypt without verifying the server",
            rustls::Error::InvalidCertificate(cert.clone())
        ),
        other => format!("the TLS handshake failed ({other}): check the status store URL"),
    };
    Some(Error::new(
        ErrorKind::Io,
        format!("status store {describe}: connecting: {message}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_tls_options_out_of_the_url() {
        let (url, tls) = take_tls_options(
            "rediss://:pw@h:6390/2?ca-file=%2Ftmp%2Fca.pem&protocol=3",
            "M",
        )
        .unwrap();
        assert_eq!(url, "rediss://:pw@h:6390/2?protocol=3");
        assert_eq!(tls.ca_file, Some(PathBuf::from("/tmp/ca.pem")));
        let (url, tls) = take_tls_options("REDISS://h/?insecure=true", "M").unwrap();
        assert_eq!(url, "REDISS://h/#insecure");
        assert!(tls.insecure);
        let (url, tls) = take_tls_options("redis://h:6379/0", "M").unwrap();
        assert_eq!(
            (url.as_str(), tls),
            ("redis://h:6379/0", RedisTls::default())
        );
        for (bad, why) in [
            ("redis://h/?ca-file=/ca.pem", "write rediss://"),
            (
                "rediss://h/?ca-file=/ca.pem&insecure=true",
                "exclude each other",
            ),
            ("rediss://h/?insecure=maybe", "not true or false"),
        ] {
            let err = take_tls_options(bad, "MASKED").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(
                err.message().starts_with("status store URL `MASKED`: ")
                    && err.message().contains(why),
                "{err}"
            );
        }
    }
}
