//! FTP and FTPS (explicit TLS, `AUTH TLS`): `ftp://[user[:password]@]host[:port]/dir`,
//! `ftps://…`.
//!
//! FTPS verifies the server's certificate against the system trust store (as
//! `rustls-native-certs` reads it, honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`), or against
//! the CA certificates of the `ca-file` option only; `insecure=true` accepts any
//! certificate. One rustls configuration per storage serves the service's connections and
//! ikkatsu's own upload connections ([`FtpUploads`]).
//!
//! The service is Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0), adapted for
//! ikkatsu, in OpenDAL's layout: [`backend`] (the builder and the operations), [`core`] (the
//! connections and their pool), [`reader`], [`writer`], [`lister`], [`delete`] and
//! [`error`]. The changes: FTPS connections take the storage's rustls configuration (the
//! system trust store, `ca-file` or `insecure`, built once) instead of reading the platform
//! store at each connection and panicking when it cannot; the connection code is shared with
//! ikkatsu's own upload connections ([`uploads`]); a missing root is created with its
//! parents; connection failures are temporary errors; appends are not offered. Licensed to
//! the Apache Software Foundation (ASF) under one or more contributor license agreements; the
//! ASF licenses the original to you under the Apache License, Version 2.0
//! <http://www.apache.org/licenses/LICENSE-2.0>.

mod backend;
mod core;
mod delete;
mod error;
mod lister;
mod reader;
mod uploads;
mod writer;

use std::sync::Arc;

use ikkatsu_core::{Error, Result};
use opendal::Operator;

use self::backend::FtpBuilder;
use self::core::Login;
use self::uploads::FtpUploads;
use super::opened::Opened;
use super::tls::{
    AcceptAnyCertificate, TlsSettings, install_crypto_provider, read_ca_file, warn_insecure,
};
use crate::error::build_error;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::RemoteUrl;

/// The options of this backend (`ca-file` and `insecure` for FTPS only).
const OPTIONS: &[&str] = &["user", "password", "ca-file", "insecure"];

/// The login for `url` and its options, without its TLS configuration, and the TLS options
/// (`Some` for FTPS).
fn parse(url: &RemoteUrl, settings: &mut Settings) -> Result<(Login, Option<TlsSettings>)> {
    let shown = settings.shown().to_string();
    let trust = if url.scheme == "ftps" {
        Some(TlsSettings::take(settings)?)
    } else {
        if let Some(refused) = ["ca-file", "insecure"]
            .into_iter()
            .find(|o| settings.has(o))
        {
            return Err(Error::config(format!(
                "storage {shown}: `{refused}` applies to TLS; plain `ftp://` has none (use \
                 `ftps://`)"
            )));
        }
        None
    };
    let (user, password) = settings.take_user_and_password(url)?;
    let address = if url.port.is_some() {
        url.authority()
    } else {
        format!("{}:21", url.authority())
    };
    let login = Login {
        address,
        host: url.host.clone(),
        tls: None,
        user,
        password,
        root: if url.path.is_empty() {
            "/".to_string()
        } else {
            format!("/{}/", url.path)
        },
    };
    Ok((login, trust))
}

/// The TLS configuration of an FTPS storage: certificates verified against the system
/// trust store, or against the CA certificates of `ca-file` only, or not at all
/// (`insecure`, with a warning).
fn tls_config(trust: &TlsSettings, shown: &str) -> Result<Arc<rustls::ClientConfig>> {
    install_crypto_provider();
    let builder = rustls::ClientConfig::builder();
    let config = if trust.insecure {
        warn_insecure(shown);
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new()))
            .with_no_client_auth()
    } else {
        let roots = match &trust.ca_file {
            Some(path) => root_store(read_ca_file(path, shown)?).map_err(|ignored| {
                Error::config(format!(
                    "storage {shown}: `ca-file` {} holds {ignored} certificate(s) that cannot \
                     be parsed",
                    path.display()
                ))
            })?,
            None => system_roots(shown)?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// A root store of `certs`, or how many of them cannot be parsed.
fn root_store(
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> std::result::Result<rustls::RootCertStore, usize> {
    let mut roots = rustls::RootCertStore::empty();
    match roots.add_parsable_certificates(certs) {
        (_, 0) => Ok(roots),
        (_, ignored) => Err(ignored),
    }
}

/// The system trust store, refused when it cannot be read, is empty or holds certificates
/// rustls cannot parse.
fn system_roots(shown: &str) -> Result<rustls::RootCertStore> {
    let loaded = rustls_native_certs::load_native_certs();
    if let Some(err) = loaded.errors.first() {
        return Err(Error::config(format!(
            "storage {shown}: the TLS trust store for FTPS cannot be read ({err}); fix \
             SSL_CERT_FILE / SSL_CERT_DIR or the system certificates, or give the CA with \
             `ca-file`"
        )));
    }
    if loaded.certs.is_empty() {
        return Err(Error::config(format!(
            "storage {shown}: the TLS trust store for FTPS is empty; install the system CA \
             certificates or give the CA with `ca-file`"
        )));
    }
    root_store(loaded.certs).map_err(|ignored| {
        Error::config(format!(
            "storage {shown}: the TLS trust store for FTPS holds {ignored} certificate(s) that \
             cannot be parsed; fix SSL_CERT_FILE / SSL_CERT_DIR or the system certificates, \
             or give the CA with `ca-file`"
        ))
    })
}

/// Opens an FTP or FTPS storage.
pub(crate) fn open(
    url: &RemoteUrl,
    mut settings: Settings,
    layers: &StorageOptions,
) -> Result<Opened> {
    let (mut login, trust) = parse(url, &mut settings)?;
    let shown = settings.shown().to_string();
    settings.finish(&url.scheme, OPTIONS)?;
    if let Some(trust) = &trust {
        login.tls = Some(tls_config(trust, &shown)?);
    }
    let secure = login.tls.is_some();
    let operator =
        Operator::new(FtpBuilder::new(login.clone())).map_err(|e| build_error(e, &shown))?;
    let mut opened = Opened::remote(operator);
    // Over FTPS, reading a missing file sets up a TLS data connection the server never
    // opens (suppaftp 10 starts it before reading the `550`): the read would wait for the
    // IO timeout, retried. A stat first answers `NotFound` at once.
    opened.stat_before_read = secure;
    let uploads = Arc::new(FtpUploads::new(login, layers));
    if secure {
        opened.uploader = Some(uploads.clone());
    }
    opened.empty_files = Some(uploads);
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::remote as url;

    fn settings(url: &RemoteUrl, options: &[(&str, &str)]) -> Settings {
        let options = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::new(url.query.clone(), &options, "ftp://shown").unwrap()
    }

    /// The error of opening `url` with `options`, checked to say each of `says`.
    fn open_error(url: &str, options: &[(&str, &str)], says: &[&str]) -> Error {
        let url = self::url(url);
        let settings = settings(&url, options);
        let err = match open(&url, settings, &StorageOptions::default()) {
            Ok(_) => panic!("{url:?} opened"),
            Err(e) => e,
        };
        for said in says {
            assert!(err.message().contains(said), "{}", err.message());
        }
        err
    }

    #[test]
    fn maps_url_and_options() {
        let url = url("ftps://bob:pw@files.example.org/in/box?insecure=true");
        let mut s = settings(&url, &[]);
        let (login, trust) = parse(&url, &mut s).unwrap();
        assert_eq!(login.address, "files.example.org:21");
        assert_eq!(login.host, "files.example.org");
        assert_eq!(login.root, "/in/box/");
        assert_eq!(login.user.as_deref(), Some("bob"));
        assert_eq!(login.password.as_deref(), Some("pw"));
        assert!(!format!("{login:?}").contains("pw"), "{login:?}");
        assert!(trust.unwrap().insecure);
        s.finish("ftps", OPTIONS).unwrap();

        let url = self::url("ftp://h:2121/");
        let mut s = settings(&url, &[("user", "u"), ("password", "p")]);
        let (login, trust) = parse(&url, &mut s).unwrap();
        assert_eq!(login.address, "h:2121");
        assert_eq!(login.root, "/");
        assert_eq!(login.user.as_deref(), Some("u"));
        assert!(trust.is_none());
    }

    #[test]
    fn insecure_gives_a_configuration_without_verification() {
        let url = url("ftps://u@h/d");
        let mut s = settings(&url, &[("insecure", "true")]);
        let (_, trust) = parse(&url, &mut s).unwrap();
        let config = tls_config(&trust.unwrap(), "ftps://u@h/d").unwrap();
        assert!(format!("{config:?}").contains("AcceptAnyCertificate"));
    }

    #[test]
    fn refuses_bad_options() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let ca = ca.to_str().unwrap();
        let url = "ftps://u@h/d?insecure=true";
        let err = open_error(url, &[("ca-file", ca)], &["exclude each other"]);
        assert_eq!(err.kind(), ikkatsu_core::ErrorKind::Config);
        for (option, value) in [("ca-file", ca), ("insecure", "true")] {
            let err = open_error("ftp://u@h/d", &[(option, value)], &[option, "ftps://"]);
            assert_eq!(err.kind(), ikkatsu_core::ErrorKind::Config);
        }
        open_error("ftps://u@h/d?colour=blue", &[], &["colour"]);
        open_error("ftp://u:p@h/d", &[("password", "q")], &["both"]);
        open_error("ftp://h/d", &[("password", "q")], &["without a user"]);
    }

    #[test]
    fn missing_empty_or_unparsable_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let options = [("ca-file", missing.to_str().unwrap())];
        let err = open_error("ftps://u@h/d", &options, &["ca-file", "missing.pem"]);
        assert!(!err.is_temporary());

        let not_a_certificate =
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        for (content, said) in [
            ("", "holds no PEM certificate"),
            (not_a_certificate, "cannot be parsed"),
        ] {
            let file = dir.path().join("ca.pem");
            std::fs::write(&file, content).unwrap();
            let options = [("ca-file", file.to_str().unwrap())];
            let err = open_error("ftps://u@h/d", &options, &[said]);
            assert_eq!(err.kind(), ikkatsu_core::ErrorKind::Config);
        }
    }
}
