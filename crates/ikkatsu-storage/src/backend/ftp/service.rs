//! The FTP service: Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0), adapted
//! for ikkatsu. The changes: FTPS connections take the storage's rustls configuration (the
//! system trust store, `ca-file` or `insecure`, built once) instead of reading the platform
//! store at each connection and panicking when it cannot; the connection code is shared with
//! ikkatsu's own upload connections; a missing root is created with its parents; connection
//! failures are temporary errors; appends are not offered.
//!
//! Licensed to the Apache Software Foundation (ASF) under one or more contributor license
//! agreements; the ASF licenses the original to you under the Apache License, Version 2.0
//! <http://www.apache.org/licenses/LICENSE-2.0>.

use std::fmt::{self, Debug};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use asyncband::pool::{ManageObject, ObjectStatus, bounded};
use bytes::{Buf, BytesMut};
use opendal::raw::*;
use opendal::*;
use suppaftp::list::File;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream, ImplAsyncFtpStream};
use suppaftp::tokio_rustls::TlsConnector;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The scheme OpenDAL reports for this service.
const FTP_SCHEME: &str = "ftp";
/// At most this many connections of the service at once.
const POOL_SIZE: usize = 64;
/// How long an operation waits for a connection (a free one, or a new one made).
const POOL_WAIT: Duration = Duration::from_secs(10);
/// The size of the chunks a read returns.
const READ_CHUNK: usize = 1024 * 1024;

/// Where and how to connect: the server, its TLS configuration (FTPS), the credentials and
/// the root directory.
#[derive(Clone)]
pub(crate) struct Login {
    /// `host:port`.
    pub(crate) address: String,
    /// The host name the certificate must be for (FTPS).
    pub(crate) host: String,
    /// The TLS configuration for FTPS, `None` for plain FTP.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    /// The root directory, absolute, ending with `/`.
    pub(crate) root: String,
}

impl Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .field("user", &self.user)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A new connection, secured (FTPS), logged in and in binary mode.
pub(crate) async fn connect(login: &Login) -> std::result::Result<AsyncRustlsFtpStream, FtpError> {
    let stream = ImplAsyncFtpStream::connect(&login.address).await?;
    let mut stream = match &login.tls {
        Some(config) => {
            let connector = AsyncRustlsConnector::from(TlsConnector::from(config.clone()));
            stream.into_secure(connector, &login.host).await?
        }
        None => stream,
    };
    if let Some(user) = &login.user {
        stream
            .login(user.as_str(), login.password.as_deref().unwrap_or(""))
            .await?;
    }
    stream.transfer_type(FileType::Binary).await?;
    Ok(stream)
}

/// Goes to `root`, creating it and its parents when missing.
pub(crate) async fn enter_root(
    stream: &mut AsyncRustlsFtpStream,
    root: &str,
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
    Ok(())
}

/// Creates the directories of `path` (relative to the current directory) up to its last
/// `/`, those that exist being kept.
pub(crate) async fn create_parents(
    stream: &mut AsyncRustlsFtpStream,
    path: &str,
) -> std::result::Result<(), FtpError> {
    let mut current = String::new();
    for part in path.split_inclusive('/').filter(|p| p.ends_with('/')) {
        current.push_str(part);
        mkdir_if_missing(stream, &current).await?;
    }
    Ok(())
}

/// Whether the server answered `550` (no such file, or it exists already).
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

/// An FTP error, classified: `550` is `NotFound`; `421` (too many connections), broken
/// connections and unreadable answers are temporary.
pub(crate) fn ftp_error(err: FtpError) -> Error {
    let (kind, temporary) = match &err {
        FtpError::UnexpectedResponse(resp) if resp.status == Status::FileUnavailable => {
            (ErrorKind::NotFound, false)
        }
        FtpError::UnexpectedResponse(resp) if resp.status == Status::NotAvailable => {
            (ErrorKind::Unexpected, true)
        }
        FtpError::ConnectionError(_) | FtpError::BadResponse => (ErrorKind::Unexpected, true),
        _ => (ErrorKind::Unexpected, false),
    };
    Error::new(kind, "ftp error")
        .with_temporary(temporary)
        .set_source(err)
}

/// Builds the service (OpenDAL's `Operator::new` takes a builder).
#[derive(Debug, Default)]
pub(crate) struct FtpBuilder {
    login: Option<Login>,
}

impl FtpBuilder {
    /// A builder of the service connecting with `login`.
    pub(crate) fn new(login: Login) -> Self {
        FtpBuilder { login: Some(login) }
    }
}

impl Builder for FtpBuilder {
    type Config = ();

    fn build(self) -> Result<impl Service> {
        let Some(login) = self.login else {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "the FTP service needs its login",
            ));
        };
        let info = ServiceInfo::new(FTP_SCHEME, &login.root, "");
        let capability = Capability {
            stat: true,
            read: true,
            write: true,
            write_can_multi: true,
            delete: true,
            create_dir: true,
            list: true,
            shared: true,
            ..Default::default()
        };
        let pool = bounded::Pool::new(bounded::PoolConfig::new(POOL_SIZE), Manager { login });
        Ok(FtpBackend {
            core: Arc::new(FtpCore {
                info,
                capability,
                pool,
            }),
        })
    }
}

/// The shared state of the service.
struct FtpCore {
    info: ServiceInfo,
    capability: Capability,
    pool: Arc<bounded::Pool<Manager>>,
}

impl FtpCore {
    async fn connect(&self) -> Result<bounded::Object<Manager>> {
        tokio::select! {
            _ = tokio::time::sleep(POOL_WAIT) => Err(Error::new(
                ErrorKind::Unexpected,
                "no FTP connection became free in time",
            )
            .set_temporary()),
            result = self.pool.get() => result.map_err(|e| self.connect_error(e)),
        }
    }

    /// An error of making a connection. The only `550` a new connection can get is the
    /// refusal of its root directory, which could neither be entered nor created: that is
    /// not a missing file (which a listing would read as an empty directory) but a root the
    /// user cannot use.
    fn connect_error(&self, err: FtpError) -> Error {
        if is_unavailable(&err) {
            let root = self.info.root();
            return Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the root directory {root:?} can neither be entered nor created; check the \
                     path of the URL and the user's rights on the server"
                ),
            )
            .set_source(err);
        }
        ftp_error(err)
    }
}

/// Creates and checks the connections of the pool.
struct Manager {
    login: Login,
}

impl ManageObject for Manager {
    type Object = AsyncRustlsFtpStream;
    type Error = FtpError;

    async fn create(&self) -> Result<Self::Object, Self::Error> {
        let mut stream = connect(&self.login).await?;
        enter_root(&mut stream, &self.login.root).await?;
        Ok(stream)
    }

    async fn is_recyclable(
        &self,
        o: &mut Self::Object,
        _: &ObjectStatus,
    ) -> Result<(), Self::Error> {
        o.noop().await
    }
}

/// The service.
#[derive(Clone)]
pub(crate) struct FtpBackend {
    core: Arc<FtpCore>,
}

impl Debug for FtpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FtpBackend").finish_non_exhaustive()
    }
}

impl Service for FtpBackend {
    type Reader = oio::StreamReader<FtpReader>;
    type Writer = FtpWriter;
    type Lister = FtpLister;
    type Deleter = oio::OneShotDeleter<FtpDeleter>;
    type Copier = ();
    type Composer = ();

    fn info(&self) -> ServiceInfo {
        self.core.info.clone()
    }

    fn capability(&self) -> Capability {
        self.core.capability
    }

    async fn create_dir(
        &self,
        _ctx: &OperationContext,
        path: &str,
        _: OpCreateDir,
    ) -> Result<RpCreateDir> {
        let mut stream = self.core.connect().await?;
        create_parents(&mut stream, path).await.map_err(ftp_error)?;
        Ok(RpCreateDir::default())
    }

    async fn stat(&self, _ctx: &OperationContext, path: &str, _: OpStat) -> Result<RpStat> {
        let mut stream = self.core.connect().await?;
        let (parent, basename) = (get_parent(path), get_basename(path));
        let pathname = if parent == "/" { None } else { Some(parent) };
        let lines = stream.list(pathname).await.map_err(ftp_error)?;
        let name = basename.trim_end_matches('/');
        let file = lines
            .iter()
            .filter_map(|line| File::from_str(line).ok())
            .find(|f| f.name() == name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "file is not found during list"))?;
        Ok(RpStat::new(metadata(&file)?))
    }

    fn read(&self, _ctx: &OperationContext, path: &str, _: OpRead) -> Result<Self::Reader> {
        Ok(oio::StreamReader::new(FtpReader {
            core: self.core.clone(),
            path: path.to_string(),
        }))
    }

    fn write(&self, _ctx: &OperationContext, path: &str, _: OpWrite) -> Result<Self::Writer> {
        Ok(FtpWriter {
            core: self.core.clone(),
            path: path.to_string(),
            temp: build_tmp_path_of(path),
            stream: None,
            data: None,
        })
    }

    fn delete(&self, _ctx: &OperationContext) -> Result<Self::Deleter> {
        Ok(oio::OneShotDeleter::new(FtpDeleter {
            core: self.core.clone(),
        }))
    }

    fn list(&self, _ctx: &OperationContext, path: &str, _: OpList) -> Result<Self::Lister> {
        Ok(FtpLister {
            core: self.core.clone(),
            path: path.to_string(),
            lines: None,
        })
    }

    fn copy(
        &self,
        _ctx: &OperationContext,
        _from: &str,
        _to: &str,
        _args: OpCopy,
    ) -> Result<Self::Copier> {
        Err(unsupported())
    }

    async fn rename(
        &self,
        _ctx: &OperationContext,
        _from: &str,
        _to: &str,
        _args: OpRename,
    ) -> Result<RpRename> {
        Err(unsupported())
    }

    async fn presign(
        &self,
        _ctx: &OperationContext,
        _path: &str,
        _args: OpPresign,
    ) -> Result<RpPresign> {
        Err(unsupported())
    }
}

fn unsupported() -> Error {
    Error::new(ErrorKind::Unsupported, "operation is not supported")
}

/// The metadata of a listed file.
fn metadata(file: &File) -> Result<Metadata> {
    let mut meta = if file.is_file() {
        MetadataBuilder::file(file.size() as u64)
    } else if file.is_directory() {
        MetadataBuilder::dir()
    } else {
        MetadataBuilder::unknown()
    };
    meta.last_modified(Timestamp::try_from(file.modified())?);
    Ok(meta.build())
}

/// Reads one file.
pub(crate) struct FtpReader {
    core: Arc<FtpCore>,
    path: String,
}

impl oio::StreamRead for FtpReader {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let mut stream = self.core.connect().await?;
        if range.offset() != 0 {
            stream
                .resume_transfer(range.offset() as usize)
                .await
                .map_err(ftp_error)?;
        }
        let data = stream
            .retr_as_stream(&self.path)
            .await
            .map_err(ftp_error)?
            .take(range.size().unwrap_or(u64::MAX));
        let read = FtpReadStream {
            _stream: stream,
            data: Box::new(data),
            buf: BytesMut::new(),
        };
        Ok((
            RpRead::default(),
            Box::new(read) as Box<dyn oio::ReadStreamDyn>,
        ))
    }
}

/// The bytes of one file, from its data connection.
struct FtpReadStream {
    /// Keeps the control connection while the data connection is read.
    _stream: bounded::Object<Manager>,
    data: Box<dyn AsyncRead + Send + Sync + Unpin>,
    buf: BytesMut,
}

impl oio::ReadStream for FtpReadStream {
    async fn read(&mut self) -> Result<Buffer> {
        self.buf.resize(READ_CHUNK, 0);
        let n = self
            .data
            .read(&mut self.buf)
            .await
            .map_err(new_std_io_error)?;
        Ok(Buffer::from(self.buf.split_to(n).freeze()))
    }
}

/// Writes one file: stores it under a temporary name (connecting and creating its parent
/// directories at the first write), then renames it over the target.
pub(crate) struct FtpWriter {
    core: Arc<FtpCore>,
    path: String,
    temp: String,
    stream: Option<bounded::Object<Manager>>,
    data: Option<Box<dyn AsyncWrite + Send + Sync + Unpin>>,
}

impl FtpWriter {
    async fn open(&mut self) -> Result<Box<dyn AsyncWrite + Send + Sync + Unpin>> {
        let mut stream = self.core.connect().await?;
        create_parents(&mut stream, &self.path)
            .await
            .map_err(ftp_error)?;
        let data = stream
            .append_with_stream(&self.temp)
            .await
            .map_err(ftp_error)?;
        self.stream = Some(stream);
        Ok(Box::new(data))
    }
}

impl oio::Write for FtpWriter {
    async fn write(&mut self, mut bs: Buffer) -> Result<()> {
        if self.data.is_none() {
            self.data = Some(self.open().await?);
        }
        let Some(data) = self.data.as_mut() else {
            return Err(Error::new(
                ErrorKind::Unexpected,
                "the FTP data connection is not open",
            ));
        };
        while bs.has_remaining() {
            let chunk = bs.chunk();
            let n = chunk.len();
            data.write_all(chunk).await.map_err(|e| {
                Error::new(ErrorKind::Unexpected, "write to the FTP data connection").set_source(e)
            })?;
            bs.advance(n);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<Metadata> {
        if let (Some(mut data), Some(stream)) = (self.data.take(), self.stream.as_mut()) {
            data.flush().await.map_err(|e| {
                Error::new(ErrorKind::Unexpected, "flush the FTP data connection").set_source(e)
            })?;
            stream.finalize_put_stream(data).await.map_err(ftp_error)?;
            stream
                .rename(&self.temp, &self.path)
                .await
                .map_err(ftp_error)?;
        }
        Ok(MetadataBuilder::unknown().build())
    }

    async fn abort(&mut self) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "FtpWriter doesn't support abort",
        ))
    }
}

/// Lists one directory (one `LIST` at the first entry asked for).
pub(crate) struct FtpLister {
    core: Arc<FtpCore>,
    path: String,
    lines: Option<std::vec::IntoIter<String>>,
}

impl oio::List for FtpLister {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        let lines = match &mut self.lines {
            Some(lines) => lines,
            None => {
                let mut stream = self.core.connect().await?;
                let pathname = (self.path != "/").then_some(self.path.as_str());
                let lines = stream.list(pathname).await.map_err(ftp_error)?;
                self.lines.insert(lines.into_iter())
            }
        };
        let Some(line) = lines.next() else {
            return Ok(None);
        };
        let file = File::from_str(&line).map_err(|e| {
            Error::new(ErrorKind::Unexpected, "parse file from response").set_source(e)
        })?;
        let prefix = if self.path == "/" { "" } else { &self.path };
        let path = if file.is_directory() {
            format!("{prefix}{}/", file.name())
        } else {
            format!("{prefix}{}", file.name())
        };
        Ok(Some(oio::Entry::new(&path, metadata(&file)?)))
    }
}

/// Deletes files and empty directories; a missing one is no error.
pub(crate) struct FtpDeleter {
    core: Arc<FtpCore>,
}

impl oio::OneShotDelete for FtpDeleter {
    async fn delete_once(&self, path: String, _: OpDelete) -> Result<()> {
        let mut stream = self.core.connect().await?;
        let result = if path.ends_with('/') {
            stream.rmdir(&path).await
        } else {
            stream.rm(&path).await
        };
        match result {
            Err(e) if !is_unavailable(&e) => Err(ftp_error(e)),
            _ => Ok(()),
        }
    }
}
