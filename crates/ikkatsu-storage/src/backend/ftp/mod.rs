//! FTP and FTPS (explicit TLS, `AUTH TLS`): `ftp://[user[:password]@]host[:port]/dir`,
//! `ftps://…`, through [`service`] (OpenDAL's FTP service adapted).
//!
//! FTPS verifies the server's certificate against the system trust store (as
//! `rustls-native-certs` reads it, honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`), or against
//! the CA certificates of the `ca-file` option only; `insecure=true` accepts any
//! certificate. One rustls configuration per storage serves the service's connections and
//! ikkatsu's own upload connections ([`FtpUploads`]).

mod service;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use ikkatsu_core::{Error, Result};
use opendal::Operator;
use suppaftp::FtpError;
use suppaftp::tokio::AsyncRustlsFtpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::service::{FtpBuilder, Login, connect, create_parents, enter_root, ftp_error};
use super::tls::{
    AcceptAnyCertificate, TlsSettings, install_crypto_provider, read_ca_file, warn_insecure,
};
use super::{EmptyFileWriter, Opened, StreamUploader, build_error, user_and_password};
use crate::connection::Settings;
use crate::layers::StorageOptions;
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
    let (user, password) = user_and_password(url, settings)?;
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

/// Uploads through connections of ikkatsu's own, for two things the service's writer (as
/// OpenDAL's) gets wrong: given no bytes it sends nothing, so an empty result would neither create a file
/// nor replace an old one; and over FTPS it closes the TLS data connection without a TLS
/// shutdown while the server's session tickets sit unread, so the server sees the connection
/// reset and refuses uploads with `426 Failure reading network stream`. Here a file is
/// stored (`STOR`) under a temporary name beside it, its TLS data connection is shut down
/// properly, and the file is renamed over the target, as OpenDAL does. Idle connections
/// are kept for reuse; at most [`MAX_UPLOADS`] run at once.
struct FtpUploads {
    login: Login,
    idle: std::sync::Mutex<Vec<AsyncRustlsFtpStream>>,
    permits: tokio::sync::Semaphore,
    /// Deadline of connecting and of each command.
    timeout: std::time::Duration,
    /// Deadline of each chunk written to a data connection.
    io_timeout: std::time::Duration,
}

/// At most this many uploads through ikkatsu's own FTP connections at once.
const MAX_UPLOADS: usize = 16;

static UPLOAD_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl FtpUploads {
    fn new(login: Login, layers: &StorageOptions) -> Self {
        FtpUploads {
            login,
            idle: std::sync::Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(layers.concurrency.clamp(1, MAX_UPLOADS)),
            timeout: layers.timeout,
            io_timeout: layers.io_timeout,
        }
    }

    /// `fut` within `limit`, a timeout being a connection error (temporary).
    async fn within<T>(
        limit: std::time::Duration,
        fut: impl std::future::Future<Output = std::result::Result<T, FtpError>>,
    ) -> std::result::Result<T, FtpError> {
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Err(FtpError::ConnectionError(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs_f64()),
            ))),
        }
    }

    async fn connect(&self) -> std::result::Result<AsyncRustlsFtpStream, FtpError> {
        Self::within(self.timeout, connect(&self.login)).await
    }

    /// Goes to the root (creating it, as the service does when it connects) and creates the
    /// parent directories of `path`.
    async fn prepare(
        stream: &mut AsyncRustlsFtpStream,
        root: &str,
        path: &str,
    ) -> std::result::Result<(), FtpError> {
        enter_root(stream, root).await?;
        create_parents(stream, path).await
    }

    /// Stores `body` as `temp`, shutting the data connection down properly.
    async fn store(
        &self,
        stream: &mut AsyncRustlsFtpStream,
        temp: &str,
        mut body: BoxStream<'static, Result<Bytes>>,
    ) -> std::result::Result<(), StoreError> {
        let mut data = Self::within(self.timeout, stream.put_with_stream(temp))
            .await
            .map_err(StoreError::Ftp)?;
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    let written = Self::within(self.io_timeout, async {
                        data.write_all(&chunk)
                            .await
                            .map_err(FtpError::ConnectionError)
                    })
                    .await;
                    if let Err(e) = written {
                        failed = Some(StoreError::Ftp(e));
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(StoreError::Body(e));
                    break;
                }
            }
        }
        // TLS: send close_notify, then read what the server still sends (session tickets,
        // its close_notify) so that closing does not reset the connection.
        let _ = data.flush().await;
        let _ = data.shutdown().await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            data.read_to_end(&mut rest),
        )
        .await;
        let finished = Self::within(self.timeout, stream.finalize_put_stream(data)).await;
        match (failed, finished) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(StoreError::Ftp(e)),
            (None, Ok(())) => Ok(()),
        }
    }

    async fn put(
        &self,
        path: &str,
        body: BoxStream<'static, Result<Bytes>>,
    ) -> opendal::Result<()> {
        let _permit = self.permits.acquire().await.map_err(|_| {
            opendal::Error::new(opendal::ErrorKind::Unexpected, "FTP uploads are closed")
        })?;
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut stream = match reused {
            Some(mut stream) => {
                // A kept connection may have been closed by the server: one fresh try.
                let prepared = Self::within(
                    self.timeout,
                    Self::prepare(&mut stream, &self.login.root, path),
                )
                .await;
                match prepared {
                    Ok(()) => stream,
                    Err(_) => self.fresh(path).await?,
                }
            }
            None => self.fresh(path).await?,
        };
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (format!("{dir}/"), name),
            None => (String::new(), path),
        };
        let temp = format!(
            "{dir}.{name}.ikkatsu-upload-{}-{}.tmp",
            std::process::id(),
            UPLOAD_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let stored = self.store(&mut stream, &temp, body).await;
        let result = match stored {
            Ok(()) => Self::within(self.timeout, stream.rename(temp.as_str(), path))
                .await
                .map_err(ftp_error),
            Err(StoreError::Ftp(e)) => Err(ftp_error(e)),
            Err(StoreError::Body(e)) => Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("the content to upload failed: {e}"),
            )
            .set_source(e)),
        };
        if result.is_err() {
            let _ = Self::within(self.timeout, stream.rm(&temp)).await;
        }
        if result.is_ok() || Self::within(self.timeout, stream.noop()).await.is_ok() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(stream);
        }
        result
    }
}

impl FtpUploads {
    /// A new connection, at the root, with the parents of `path` created.
    async fn fresh(&self, path: &str) -> opendal::Result<AsyncRustlsFtpStream> {
        let mut stream = self.connect().await.map_err(ftp_error)?;
        Self::within(
            self.timeout,
            Self::prepare(&mut stream, &self.login.root, path),
        )
        .await
        .map_err(ftp_error)?;
        Ok(stream)
    }
}

/// Why a store failed.
enum StoreError {
    /// The server or the connection.
    Ftp(FtpError),
    /// The content stream.
    Body(Error),
}

impl StreamUploader for FtpUploads {
    fn upload<'a>(
        &'a self,
        _op: &'a Operator,
        path: &'a str,
        body: BoxStream<'static, Result<Bytes>>,
        _size: Option<u64>,
    ) -> BoxFuture<'a, opendal::Result<()>> {
        self.put(path, body).boxed()
    }

    fn all_writes(&self) -> bool {
        // Over FTPS every upload needs the proper TLS shutdown.
        self.login.tls.is_some()
    }
}

impl EmptyFileWriter for FtpUploads {
    fn create_empty<'a>(&'a self, path: &'a str) -> BoxFuture<'a, opendal::Result<()>> {
        self.put(path, futures::stream::empty().boxed()).boxed()
    }
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
