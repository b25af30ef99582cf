//! FTP and FTPS (explicit TLS, `AUTH TLS`): `ftp://[user[:password]@]host[:port]/dir`,
//! `ftps://…`, through OpenDAL's FTP service.
//!
//! OpenDAL's FTP service verifies the FTPS certificate against the platform trust store as
//! `rustls-native-certs` reads it, which honours the `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! environment variables; it takes neither a CA file nor a switch to skip verification, so
//! `ca-file` and `insecure` are refused here with a message saying what to do instead.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use ikkatsu_core::{Error, Result};
use opendal::Operator;
use opendal::services::Ftp;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream, ImplAsyncFtpStream};
use suppaftp::tokio_rustls::TlsConnector;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{EmptyFileWriter, Opened, StreamUploader, build_error};
use crate::connection::Settings;
use crate::layers::StorageOptions;
use crate::url::RemoteUrl;

/// The options of this backend.
const OPTIONS: &[&str] = &["user", "password"];

/// What a connection of ikkatsu's own needs (see [`FtpUploads`]).
#[derive(Clone)]
struct Login {
    address: String,
    host: String,
    secure: bool,
    user: Option<String>,
    password: Option<String>,
    root: String,
}

/// The OpenDAL builder for `url` and its options.
#[cfg(test)]
fn builder(url: &RemoteUrl, settings: &mut Settings) -> Result<Ftp> {
    builder_and_login(url, settings).map(|(b, _)| b)
}

/// The OpenDAL builder, and the login for ikkatsu's own connection.
fn builder_and_login(url: &RemoteUrl, settings: &mut Settings) -> Result<(Ftp, Login)> {
    let secure = url.scheme == "ftps";
    let shown = settings.shown().to_string();
    for refused in ["ca-file", "insecure"] {
        if settings.has(refused) {
            let what = if secure {
                format!(
                    "OpenDAL's FTP service verifies FTPS certificates against the system trust \
                     store only: to trust a private CA, start ikkatsu with \
                     SSL_CERT_FILE=/path/ca.pem (it replaces the system store for FTPS \
                     connections); certificate verification cannot be turned off; remove \
                     `{refused}`"
                )
            } else {
                format!("`{refused}` applies to TLS; plain `ftp://` has none (use `ftps://`)")
            };
            return Err(Error::config(format!("storage {shown}: {what}")));
        }
    }
    let user = pick(settings.take("user"), url.user.clone(), "user", &shown)?;
    let password = pick(
        settings.take("password"),
        url.password.clone(),
        "password",
        &shown,
    )?;
    if password.is_some() && user.is_none() {
        return Err(Error::config(format!(
            "storage {shown}: a password without a user; write `{}://USER@host/dir`",
            url.scheme
        )));
    }
    let address = if url.port.is_some() {
        url.authority()
    } else {
        format!("{}:21", url.authority())
    };
    let endpoint = format!("{}://{address}", url.scheme);
    let root = format!("/{}", url.path);
    let mut builder = Ftp::default().endpoint(&endpoint).root(&root);
    if let Some(user) = &user {
        builder = builder.user(user);
    }
    if let Some(password) = &password {
        builder = builder.password(password);
    }
    Ok((
        builder,
        Login {
            address,
            host: url.host.clone(),
            secure,
            user,
            password,
            root: if url.path.is_empty() {
                "/".to_string()
            } else {
                format!("/{}/", url.path)
            },
        },
    ))
}

/// Uploads through connections of ikkatsu's own, for two things OpenDAL's FTP writer gets
/// wrong: given no bytes it sends nothing, so an empty result would neither create a file
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
        Self::within(self.timeout, self.connect_now()).await
    }

    async fn connect_now(&self) -> std::result::Result<AsyncRustlsFtpStream, FtpError> {
        let login = &self.login;
        let stream = ImplAsyncFtpStream::connect(&login.address).await?;
        let mut stream = if login.secure {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            stream
                .into_secure(
                    AsyncRustlsConnector::from(TlsConnector::from(Arc::new(config))),
                    &login.host,
                )
                .await?
        } else {
            stream
        };
        if let Some(user) = &login.user {
            stream
                .login(user.as_str(), login.password.as_deref().unwrap_or(""))
                .await?;
        }
        stream.transfer_type(FileType::Binary).await?;
        Ok(stream)
    }

    /// Goes to the root (creating it, as OpenDAL does when it connects) and creates the
    /// parent directories of `path`.
    async fn prepare(
        stream: &mut AsyncRustlsFtpStream,
        root: &str,
        path: &str,
    ) -> std::result::Result<(), FtpError> {
        if let Err(e) = stream.cwd(root).await {
            if !is_unavailable(&e) {
                return Err(e);
            }
            let mut current = String::new();
            for part in root.split('/').filter(|p| !p.is_empty()) {
                current.push('/');
                current.push_str(part);
                mkdir_if_missing(stream, &current).await?;
            }
            stream.cwd(root).await?;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            let mut current = String::new();
            for part in parent.split('/') {
                current.push_str(part);
                current.push('/');
                mkdir_if_missing(stream, &current).await?;
            }
        }
        Ok(())
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

fn is_unavailable(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(resp) if resp.status == Status::FileUnavailable)
}

async fn mkdir_if_missing(
    stream: &mut AsyncRustlsFtpStream,
    dir: &str,
) -> std::result::Result<(), FtpError> {
    match stream.mkdir(dir).await {
        Err(e) if !is_unavailable(&e) => Err(e),
        _ => Ok(()),
    }
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
        self.login.secure
    }
}

impl EmptyFileWriter for FtpUploads {
    fn create_empty<'a>(&'a self, path: &'a str) -> BoxFuture<'a, opendal::Result<()>> {
        self.put(path, futures::stream::empty().boxed()).boxed()
    }
}

/// An error of ikkatsu's own FTP connection, classified like OpenDAL's.
fn ftp_error(err: FtpError) -> opendal::Error {
    let (kind, temporary) = match &err {
        FtpError::UnexpectedResponse(resp) if resp.status == Status::FileUnavailable => {
            (opendal::ErrorKind::NotFound, false)
        }
        FtpError::UnexpectedResponse(resp) if resp.status == Status::NotAvailable => {
            (opendal::ErrorKind::Unexpected, true)
        }
        FtpError::ConnectionError(_) | FtpError::BadResponse => {
            (opendal::ErrorKind::Unexpected, true)
        }
        _ => (opendal::ErrorKind::Unexpected, false),
    };
    opendal::Error::new(kind, "ftp error")
        .with_temporary(temporary)
        .set_source(err)
}

/// A value given in the URL or as an option, not both.
fn pick(
    option: Option<String>,
    in_url: Option<String>,
    what: &str,
    shown: &str,
) -> Result<Option<String>> {
    match (option, in_url) {
        (Some(_), Some(_)) => Err(Error::config(format!(
            "storage {shown}: the {what} is given both in the URL and as the `{what}` option; \
             keep one"
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

/// Opens an FTP or FTPS storage.
pub(crate) fn open(
    url: &RemoteUrl,
    mut settings: Settings,
    layers: &StorageOptions,
) -> Result<Opened> {
    let (builder, login) = builder_and_login(url, &mut settings)?;
    let shown = settings.shown().to_string();
    settings.finish(&url.scheme, OPTIONS)?;
    if url.scheme == "ftps" {
        super::tls::install_crypto_provider();
        check_trust_store(&shown)?;
    }
    let operator = Operator::new(builder).map_err(|e| build_error(e, &shown))?;
    let mut opened = Opened::remote(operator);
    // Over FTPS, reading a missing file sets up a TLS data connection the server never
    // opens (suppaftp 10 starts it before reading the `550`): the read would wait for the
    // IO timeout, retried. A stat first answers `NotFound` at once.
    opened.stat_before_read = url.scheme == "ftps";
    let secure = login.secure;
    let uploads = Arc::new(FtpUploads::new(login, layers));
    if secure {
        opened.uploader = Some(uploads.clone());
    }
    opened.empty_files = Some(uploads);
    Ok(opened)
}

/// OpenDAL's FTP service panics when the trust store cannot be read: check it first and say
/// what is wrong.
fn check_trust_store(shown: &str) -> Result<()> {
    let loaded = rustls_native_certs::load_native_certs();
    if let Some(err) = loaded.errors.first() {
        return Err(Error::config(format!(
            "storage {shown}: the TLS trust store for FTPS cannot be read ({err}); fix \
             SSL_CERT_FILE / SSL_CERT_DIR or the system certificates"
        )));
    }
    if loaded.certs.is_empty() {
        return Err(Error::config(format!(
            "storage {shown}: the TLS trust store for FTPS is empty; install the system CA \
             certificates or point SSL_CERT_FILE at a CA bundle"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(
            storage = %shown,
            ignored,
            "the FTPS trust store holds certificates rustls cannot parse"
        );
        return Err(Error::config(format!(
            "storage {shown}: the TLS trust store for FTPS holds {ignored} certificate(s) that \
             cannot be parsed (OpenDAL's FTP service would fail on them); fix SSL_CERT_FILE / \
             SSL_CERT_DIR or the system certificates"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::StorageUrl;

    fn parse(url: &str) -> RemoteUrl {
        match StorageUrl::parse(url).unwrap() {
            StorageUrl::Remote(r) => r,
            _ => unreachable!(),
        }
    }

    fn settings(url: &RemoteUrl, options: &[(&str, &str)]) -> Settings {
        let options = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::new(url.query.clone(), &options, "ftp://shown").unwrap()
    }

    #[test]
    fn maps_url_and_options() {
        let url = parse("ftps://bob:pw@files.example.org/in/box");
        let mut s = settings(&url, &[]);
        let b = builder(&url, &mut s).unwrap();
        let debug = format!("{b:?}");
        assert!(debug.contains("ftps://files.example.org:21"), "{debug}");
        assert!(debug.contains("/in/box"), "{debug}");
        assert!(!debug.contains("pw"), "{debug}");
        s.finish("ftps", OPTIONS).unwrap();

        let url = parse("ftp://h:2121/");
        let mut s = settings(&url, &[("user", "u"), ("password", "p")]);
        let b = builder(&url, &mut s).unwrap();
        assert!(format!("{b:?}").contains("ftp://h:2121"));
    }

    #[test]
    fn refuses_what_opendal_cannot_do() {
        let url = parse("ftps://u@h/d?ca-file=/x");
        let err = builder(&url, &mut settings(&url, &[])).unwrap_err();
        assert!(err.message().contains("SSL_CERT_FILE"), "{}", err.message());
        let url = parse("ftp://u@h/d?insecure=true");
        let err = builder(&url, &mut settings(&url, &[])).unwrap_err();
        assert!(err.message().contains("ftps"), "{}", err.message());
        let url = parse("ftp://u:p@h/d");
        let err = builder(&url, &mut settings(&url, &[("password", "q")])).unwrap_err();
        assert!(err.message().contains("both"), "{}", err.message());
        let url = parse("ftp://h/d");
        let err = builder(&url, &mut settings(&url, &[("password", "q")])).unwrap_err();
        assert!(
            err.message().contains("without a user"),
            "{}",
            err.message()
        );
    }
}
