//! Uploads through FTP connections of ikkatsu's own (see [`FtpUploads`]): every upload over
//! FTPS, and empty files over FTP and FTPS.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use ikkatsu_core::{Error, Result};
use opendal::Operator;
use suppaftp::FtpError;
use suppaftp::tokio::AsyncRustlsFtpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::core::{Login, connect, create_parents, enter_root};
use super::error::ftp_error;
use crate::backend::opened::{EmptyFileWriter, StreamUploader};
use crate::layers::StorageOptions;

/// Uploads through connections of ikkatsu's own, for two things the service's writer (as
/// OpenDAL's) gets wrong: given no bytes it sends nothing, so an empty result would neither create a file
/// nor replace an old one; and over FTPS it closes the TLS data connection without a TLS
/// shutdown while the server's session tickets sit unread, so the server sees the connection
/// reset and refuses uploads with `426 Failure reading network stream`. Here a file is
/// stored (`STOR`) under a temporary name beside it, its TLS data connection is shut down
/// properly, and the file is renamed over the target, as OpenDAL does. Idle connections
/// are kept for reuse; at most [`MAX_UPLOADS`] run at once.
pub(super) struct FtpUploads {
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
    pub(super) fn new(login: Login, layers: &StorageOptions) -> Self {
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
