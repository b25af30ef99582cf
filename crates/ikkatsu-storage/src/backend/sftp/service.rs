//! The SFTP service: Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0), adapted
//! for ikkatsu. The changes: ssh is given a known_hosts file, a private agent, a port, a
//! connection timeout, a keep-alive and a private control directory; the connection pool has
//! a configurable size and waits as long as the storage's timeout; SSH failures are
//! classified (refused host key and credentials are permanent permission errors, connection
//! failures temporary); names that are not UTF-8 are errors instead of panics.
//!
//! Licensed to the Apache Software Foundation (ASF) under one or more contributor license
//! agreements; the ASF licenses the original to you under the Apache License, Version 2.0
//! <http://www.apache.org/licenses/LICENSE-2.0>.

use std::fmt::{self, Debug};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use asyncband::pool::{ManageObject, ObjectStatus, bounded};
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use opendal::raw::oio::Entry;
use opendal::raw::*;
use opendal::*;
use openssh::{ControlPersist, KnownHosts, SessionBuilder};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::file::{File, TokioCompatFile};
use openssh_sftp_client::fs::{DirEntry, ReadDir};
use openssh_sftp_client::metadata::MetaData as SftpMeta;
use openssh_sftp_client::{Error as SftpClientError, Sftp, SftpOptions};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::agent::PrivateAgent;
use super::{HostKeyCheck, SftpSettings};
use crate::error::{AUTH_MARK, HOST_KEY_MARK};

/// The scheme OpenDAL reports for this service.
const SFTP_SCHEME: &str = "sftp";

/// A pooled connection idle for longer than this is checked before it is handed out.
const RECHECK_IDLE: Duration = Duration::from_secs(10);
/// How long an SSH master connection outlives its last session.
const IDLE_MASTER: std::num::NonZeroUsize = std::num::NonZeroUsize::new(30).unwrap();

/// What lives as long as the storage: its private directory (control sockets, agent socket)
/// and the private agent.
#[derive(Debug)]
pub(crate) struct Resources {
    /// The private directory, removed when the storage is dropped.
    pub(crate) runtime: tempfile::TempDir,
    /// The agent holding a passphrase-protected key.
    pub(crate) agent: Option<PrivateAgent>,
}

/// Builds the service (OpenDAL's `Operator::new` takes a builder).
#[derive(Debug, Default)]
pub(crate) struct SftpBuilder {
    settings: Option<(SftpSettings, Arc<Resources>)>,
}

impl SftpBuilder {
    /// A builder of the service for `settings`.
    pub(crate) fn new(settings: SftpSettings, resources: Arc<Resources>) -> Self {
        SftpBuilder {
            settings: Some((settings, resources)),
        }
    }
}

impl Builder for SftpBuilder {
    type Config = ();

    fn build(self) -> Result<impl Service> {
        let Some((settings, resources)) = self.settings else {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "the SFTP service needs its settings",
            ));
        };
        let info = ServiceInfo::new(SFTP_SCHEME, &settings.root, "");
        let capability = Capability {
            stat: true,
            read: true,
            write: true,
            write_can_multi: true,
            write_with_if_not_exists: true,
            create_dir: true,
            delete: true,
            list: true,
            list_with_limit: true,
            copy: true,
            rename: true,
            shared: true,
            ..Default::default()
        };
        let pool_timeout = settings.connect_timeout + Duration::from_secs(30);
        let pool = bounded::Pool::new(
            bounded::PoolConfig::new(settings.connections),
            Manager {
                settings: settings.clone(),
                resources: resources.clone(),
            },
        );
        Ok(SftpBackend {
            core: Arc::new(SftpCore {
                info,
                capability,
                root: settings.root,
                pool,
                pool_timeout,
                _resources: resources,
            }),
        })
    }
}

/// The shared state of the service.
pub(crate) struct SftpCore {
    info: ServiceInfo,
    capability: Capability,
    root: String,
    pool: Arc<bounded::Pool<Manager>>,
    pool_timeout: Duration,
    /// Dropped after the pool (fields drop in order), so that the connections are closed
    /// (`ssh -O exit` through their control sockets) before the private directory holding
    /// those sockets is removed.
    _resources: Arc<Resources>,
}

impl Debug for SftpCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpCore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl SftpCore {
    /// `path` (relative to the root) as the server sees it. Nothing is resolved on the
    /// server: a relative root is relative to the login directory there, as for `cd`.
    fn server_path(&self, path: &str) -> PathBuf {
        Path::new(&self.root).join(path.trim_start_matches('/'))
    }

    async fn connect(&self) -> Result<bounded::Object<Manager>> {
        tokio::select! {
            _ = tokio::time::sleep(self.pool_timeout) => Err(Error::new(
                ErrorKind::Unexpected,
                "no SFTP connection became free in time",
            )
            .set_temporary()),
            result = self.pool.get() => result,
        }
    }
}

/// Creates and checks the SSH connections of the pool.
pub(crate) struct Manager {
    settings: SftpSettings,
    resources: Arc<Resources>,
}

impl ManageObject for Manager {
    type Object = Sftp;
    type Error = Error;

    async fn create(&self) -> Result<Self::Object, Self::Error> {
        let s = &self.settings;
        let mut session = SessionBuilder::default();
        if let Some(user) = &s.user {
            session.user(user.clone());
        }
        if let Some(port) = s.port {
            session.port(port);
        }
        if let Some(key) = &s.key_file {
            session.keyfile(key);
        }
        match s.check {
            HostKeyCheck::Strict => {
                session.known_hosts_check(KnownHosts::Strict);
            }
            HostKeyCheck::Add => {
                session.known_hosts_check(KnownHosts::Add);
            }
            HostKeyCheck::Accept => {
                // Accept any key without recording it anywhere.
                session.known_hosts_check(KnownHosts::Accept);
                session.user_known_hosts_file("/dev/null");
            }
        }
        if s.check != HostKeyCheck::Accept
            && let Some(known_hosts) = &s.known_hosts
        {
            session.user_known_hosts_file(known_hosts);
        }
        if let Some(agent) = &self.resources.agent {
            session.ssh_auth_sock(agent.socket());
        }
        session.connect_timeout(s.connect_timeout);
        session.server_alive_interval(Duration::from_secs(15));
        session.control_directory(self.resources.runtime.path());
        // The master connection ends 30 s after its last session (the SFTP channel) closes,
        // even if this process could not tell it to: no ssh process outlives the storage
        // for long, whatever way the process ends.
        session.control_persist(ControlPersist::IdleFor(IDLE_MASTER));

        let session = session
            .connect(&s.host)
            .await
            .map_err(|e| parse_ssh_error(e, s))?;
        let sftp = Sftp::from_session(session, SftpOptions::default())
            .await
            .map_err(parse_sftp_error)?;

        let mut fs = sftp.fs();
        let mut current = PathBuf::new();
        for p in Path::new(&s.root).components() {
            current.push(p);
            if let Err(e) = fs.create_dir(p).await {
                // An existing directory is fine.
                if !is_sftp_protocol_error(&e) {
                    return Err(parse_sftp_error(e));
                }
            }
            fs.set_cwd(&current);
        }
        Ok(sftp)
    }

    // A connection used in the last seconds is handed out as it is (an operation that finds
    // it broken drops it from the pool, see `settle`); one idle for longer is alive when the
    // root can be read.
    async fn is_recyclable(
        &self,
        o: &mut Self::Object,
        status: &ObjectStatus,
    ) -> Result<(), Self::Error> {
        if status.last_used().elapsed() < RECHECK_IDLE {
            return Ok(());
        }
        match o.fs().metadata(&self.settings.root).await {
            Ok(_) => Ok(()),
            Err(e) => Err(parse_sftp_error(e)),
        }
    }
}

/// The service.
#[derive(Clone, Debug)]
pub(crate) struct SftpBackend {
    core: Arc<SftpCore>,
}

impl Service for SftpBackend {
    type Reader = oio::StreamReader<SftpReader>;
    type Writer = SftpLazyWriter;
    type Lister = SftpLazyLister;
    type Deleter = oio::OneShotDeleter<SftpDeleter>;
    type Copier = oio::OneShotCopier;
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
        let client = self.core.connect().await?;
        let mut fs = client.fs();
        fs.set_cwd(&self.core.root);

        let mut current = PathBuf::from(&self.core.root);
        for p in Path::new(&path).components() {
            current = current.join(p);
            if let Err(e) = fs.create_dir(p).await
                && !is_sftp_protocol_error(&e)
            {
                return Err(parse_sftp_error(e));
            }
            fs.set_cwd(&current);
        }
        Ok(RpCreateDir::default())
    }

    async fn stat(&self, _ctx: &OperationContext, path: &str, _: OpStat) -> Result<RpStat> {
        let client = self.core.connect().await?;
        let mut fs = client.fs();
        fs.set_cwd(&self.core.root);
        // `/` is the root itself, not the server's root directory.
        let path = if path == "/" { "." } else { path };
        let meta = fs.metadata(path).await;
        Ok(RpStat::new(to_metadata(settle(client, meta)?)?))
    }

    fn read(&self, _ctx: &OperationContext, path: &str, _args: OpRead) -> Result<Self::Reader> {
        Ok(oio::StreamReader::new(SftpReader {
            backend: self.clone(),
            path: path.to_string(),
        }))
    }

    fn write(&self, ctx: &OperationContext, path: &str, op: OpWrite) -> Result<Self::Writer> {
        Ok(SftpLazyWriter {
            backend: self.clone(),
            ctx: ctx.clone(),
            path: path.to_string(),
            op,
            inner: None,
        })
    }

    fn delete(&self, _ctx: &OperationContext) -> Result<Self::Deleter> {
        Ok(oio::OneShotDeleter::new(SftpDeleter {
            core: self.core.clone(),
        }))
    }

    fn list(&self, _ctx: &OperationContext, path: &str, _: OpList) -> Result<Self::Lister> {
        Ok(SftpLazyLister {
            backend: self.clone(),
            path: path.to_string(),
            inner: None,
        })
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> Result<Self::Copier> {
        let backend = self.clone();
        let ctx = ctx.clone();
        let from = from.to_string();
        let to = to.to_string();
        Ok(oio::OneShotCopier::new(async move {
            let client = backend.core.connect().await?;
            let mut fs = client.fs();
            fs.set_cwd(&backend.core.root);
            if let Some((dir, _)) = to.rsplit_once('/') {
                backend
                    .create_dir(&ctx, dir, OpCreateDir::default())
                    .await?;
            }
            let src = fs.canonicalize(&from).await.map_err(parse_sftp_error)?;
            let dst = fs.canonicalize(&to).await.map_err(parse_sftp_error)?;
            let mut src_file = client.open(&src).await.map_err(parse_sftp_error)?;
            let mut dst_file = client.create(dst).await.map_err(parse_sftp_error)?;
            let size = match args.source_content_length_hint() {
                Some(size) => size,
                None => src_file
                    .metadata()
                    .await
                    .map_err(parse_sftp_error)?
                    .len()
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unexpected,
                            "sftp source metadata does not contain file length",
                        )
                    })?,
            };
            src_file
                .copy_all_to(&mut dst_file)
                .await
                .map_err(parse_sftp_error)?;
            Ok(MetadataBuilder::file(size).build())
        }))
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        _: OpRename,
    ) -> Result<RpRename> {
        let client = self.core.connect().await?;
        let mut fs = client.fs();
        fs.set_cwd(&self.core.root);
        // posix-rename@openssh.com when the server has it: atomic, replaces the target. The
        // target's directory is created only when the rename says it is missing.
        let mut renamed = fs.rename(from, to).await;
        if let (Err(e), Some((dir, _))) = (&renamed, to.rsplit_once('/'))
            && is_not_found(e)
        {
            self.create_dir(ctx, dir, OpCreateDir::default()).await?;
            renamed = fs.rename(from, to).await;
        }
        settle(client, renamed)?;
        Ok(RpRename::default())
    }

    async fn presign(
        &self,
        _ctx: &OperationContext,
        _path: &str,
        _args: OpPresign,
    ) -> Result<RpPresign> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "operation is not supported",
        ))
    }
}

/// Reads one file.
pub(crate) struct SftpReader {
    backend: SftpBackend,
    path: String,
}

impl oio::StreamRead for SftpReader {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let client = self.backend.core.connect().await?;
        let opened = client.open(self.backend.core.server_path(&self.path)).await;
        let mut file = match opened {
            Ok(file) => file,
            Err(e) => return Err(broken(client, e)),
        };
        if range.offset() != 0 {
            file.seek(SeekFrom::Start(range.offset()))
                .await
                .map_err(new_std_io_error)?;
        }
        let stream = SftpReadStream {
            _conn: client,
            file,
            size: range.size().map(|v| v as usize),
            chunk: 2 * 1024 * 1024,
            read: 0,
            buf: BytesMut::new(),
        };
        Ok((
            RpRead::default(),
            Box::new(stream) as Box<dyn oio::ReadStreamDyn>,
        ))
    }
}

/// The bytes of one open file.
struct SftpReadStream {
    /// Keeps the connection while the file is read.
    _conn: bounded::Object<Manager>,
    file: File,
    chunk: usize,
    size: Option<usize>,
    read: usize,
    buf: BytesMut,
}

impl oio::ReadStream for SftpReadStream {
    async fn read(&mut self) -> Result<Buffer> {
        if self.read >= self.size.unwrap_or(usize::MAX) {
            return Ok(Buffer::new());
        }
        let size = match self.size {
            Some(size) => (size - self.read).min(self.chunk),
            None => self.chunk,
        };
        self.buf.reserve(size);
        let Some(bytes) = self
            .file
            .read(size as u32, self.buf.split_off(0))
            .await
            .map_err(parse_sftp_error)?
        else {
            return Ok(Buffer::new());
        };
        self.read += bytes.len();
        self.buf = bytes;
        let bs = self.buf.split();
        Ok(Buffer::from(bs.freeze()))
    }
}

/// Opens the file at the first write.
pub(crate) struct SftpLazyWriter {
    backend: SftpBackend,
    ctx: OperationContext,
    path: String,
    op: OpWrite,
    inner: Option<SftpWriter>,
}

impl SftpLazyWriter {
    async fn inner(&mut self) -> Result<&mut SftpWriter> {
        if self.inner.is_none() {
            let client = self.backend.core.connect().await?;
            let mut fs = client.fs();
            fs.set_cwd(&self.backend.core.root);
            let path = self.backend.core.server_path(&self.path);
            let mut option = client.options();
            if self.op.if_not_exists() {
                option.create_new(true);
            } else {
                option.create(true);
            }
            if self.op.append() {
                option.append(true);
            } else {
                option.write(true).truncate(true);
            }
            let mut opened = option.open(&path).await;
            // The file's directory is created only when the open says it is missing.
            if let (Err(e), Some((dir, _))) = (&opened, self.path.rsplit_once('/'))
                && is_not_found(e)
            {
                self.backend
                    .create_dir(&self.ctx, dir, OpCreateDir::default())
                    .await?;
                opened = option.open(&path).await;
            }
            let file = match opened {
                Ok(f) => f,
                Err(e) if self.op.if_not_exists() && is_sftp_failure(&e) => {
                    if fs.metadata(&path).await.is_ok() {
                        return Err(Error::new(
                            ErrorKind::ConditionNotMatch,
                            "file already exists, doesn't match the condition if_not_exists",
                        )
                        .set_source(e));
                    }
                    return Err(parse_sftp_error(e));
                }
                Err(e) => return Err(broken(client, e)),
            };
            self.inner = Some(SftpWriter {
                file: Box::pin(TokioCompatFile::new(file)),
            });
        }
        self.inner
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "sftp writer is not open"))
    }
}

impl oio::Write for SftpLazyWriter {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        self.inner().await?.write(bs).await
    }

    async fn close(&mut self) -> Result<Metadata> {
        self.inner().await?.close().await
    }

    async fn abort(&mut self) -> Result<()> {
        match &mut self.inner {
            // Nothing was opened: nothing to undo.
            None => Ok(()),
            Some(writer) => writer.abort().await,
        }
    }
}

/// Writes one open file.
struct SftpWriter {
    file: Pin<Box<TokioCompatFile>>,
}

impl SftpWriter {
    async fn write(&mut self, mut bs: Buffer) -> Result<()> {
        while bs.has_remaining() {
            let n = self
                .file
                .write(bs.chunk())
                .await
                .map_err(new_std_io_error)?;
            bs.advance(n);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<Metadata> {
        self.file.shutdown().await.map_err(new_std_io_error)?;
        Ok(MetadataBuilder::unknown().build())
    }

    async fn abort(&mut self) -> Result<()> {
        // The partly written file stays; the storage deletes or overwrites it.
        let _ = self.file.shutdown().await;
        Ok(())
    }
}

/// Opens the directory at the first entry.
pub(crate) struct SftpLazyLister {
    backend: SftpBackend,
    path: String,
    inner: Option<Option<SftpLister>>,
}

impl oio::List for SftpLazyLister {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        if self.inner.is_none() {
            let client = self.backend.core.connect().await?;
            let mut fs = client.fs();
            fs.set_cwd(&self.backend.core.root);
            let dir_path = format!("./{}", self.path);
            self.inner = Some(match fs.open_dir(&dir_path).await {
                Ok(dir) => Some(SftpLister {
                    dir: Box::pin(dir.read_dir()),
                    prefix: if self.path == "/" {
                        String::new()
                    } else {
                        self.path.clone()
                    },
                }),
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(parse_sftp_error(e)),
            });
        }
        match self.inner.as_mut() {
            Some(Some(lister)) => lister.next().await,
            _ => Ok(None),
        }
    }
}

/// The entries of one directory.
struct SftpLister {
    dir: Pin<Box<ReadDir>>,
    prefix: String,
}

impl SftpLister {
    async fn next(&mut self) -> Result<Option<Entry>> {
        loop {
            let item = self
                .dir
                .next()
                .await
                .transpose()
                .map_err(parse_sftp_error)?;
            let Some(e) = item else {
                return Ok(None);
            };
            match e.filename().to_str() {
                Some("..") => continue,
                Some(".") => {
                    let path = if self.prefix.is_empty() {
                        "/"
                    } else {
                        self.prefix.as_str()
                    };
                    return Ok(Some(Entry::new(path, to_metadata(e.metadata())?)));
                }
                _ => return map_entry(&self.prefix, e).map(Some),
            }
        }
    }
}

fn map_entry(prefix: &str, value: DirEntry) -> Result<Entry> {
    let Some(name) = value.filename().to_str() else {
        return Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "the name {:?} in {prefix:?} is not UTF-8; rename it or exclude its directory",
                value.filename()
            ),
        ));
    };
    let is_dir = value.file_type().is_some_and(|t| t.is_dir());
    let path = format!("{prefix}{name}{}", if is_dir { "/" } else { "" });
    Ok(Entry::new(&path, to_metadata(value.metadata())?))
}

/// Deletes files and directories.
pub(crate) struct SftpDeleter {
    core: Arc<SftpCore>,
}

impl oio::OneShotDelete for SftpDeleter {
    async fn delete_once(&self, path: String, _: OpDelete) -> Result<()> {
        let client = self.core.connect().await?;
        let mut fs = client.fs();
        fs.set_cwd(&self.core.root);
        // `/` is the root itself, not the server's root directory.
        let res = if path == "/" {
            fs.remove_dir(&self.core.root).await
        } else if path.ends_with('/') {
            fs.remove_dir(path).await
        } else {
            fs.remove_file(path).await
        };
        match res {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(parse_sftp_error(e)),
        }
    }
}

/// `result` as an OpenDAL result; see [`broken`].
fn settle<T>(
    client: bounded::Object<Manager>,
    result: std::result::Result<T, SftpClientError>,
) -> Result<T> {
    result.map_err(|e| broken(client, e))
}

/// `e` as an OpenDAL error. An error that is not the server's answer means the connection
/// broke: `client` is dropped from the pool, so that the next operation gets a new one.
fn broken(client: bounded::Object<Manager>, e: SftpClientError) -> Error {
    if !is_sftp_protocol_error(&e) {
        drop(client.detach());
    }
    parse_sftp_error(e)
}

fn parse_sftp_error(e: SftpClientError) -> Error {
    let kind = match &e {
        SftpClientError::UnsupportedSftpProtocol { version: _ } => ErrorKind::Unsupported,
        SftpClientError::SftpError(kind, _msg) => match kind {
            SftpErrorKind::NoSuchFile => ErrorKind::NotFound,
            SftpErrorKind::PermDenied => ErrorKind::PermissionDenied,
            SftpErrorKind::OpUnsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Unexpected,
        },
        _ => ErrorKind::Unexpected,
    };
    // A broken connection may pass; an error the server reports (`SSH_FX_FAILURE` is its
    // "cannot do that", e.g. a directory that is not empty) will not.
    let temporary = kind == ErrorKind::Unexpected && !is_sftp_protocol_error(&e);
    Error::new(kind, "sftp error")
        .set_source(e)
        .with_temporary(temporary)
}

/// SSH connection failures: a refused host key or refused credentials are permanent
/// permission errors with a message saying so; anything else (connection refused, timed out,
/// reset) is temporary.
fn parse_ssh_error(e: openssh::Error, settings: &SftpSettings) -> Error {
    let text = error_text(&e);
    let lower = text.to_ascii_lowercase();
    let target = match settings.port {
        Some(port) => format!("[{}]:{port}", settings.host),
        None => settings.host.clone(),
    };
    let known_hosts = settings
        .known_hosts
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.ssh/known_hosts".to_string());
    if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
        || lower.contains("no matching host key")
    {
        return Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{HOST_KEY_MARK}: the host key of {target} is not in {known_hosts} or does not \
                 match it ({})",
                last_line(&text)
            ),
        )
        .set_source(e);
    }
    let io_kind = match &e {
        openssh::Error::Connect(io) | openssh::Error::Master(io) => Some(io.kind()),
        _ => None,
    };
    if io_kind == Some(std::io::ErrorKind::PermissionDenied) || lower.contains("permission denied")
    {
        return Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{AUTH_MARK}: {target} refused the key ({})",
                last_line(&text)
            ),
        )
        .set_source(e);
    }
    Error::new(ErrorKind::Unexpected, format!("ssh: {}", last_line(&text)))
        .set_source(e)
        .set_temporary()
}

fn error_text(e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn last_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('@'))
        .unwrap_or(text)
}

fn is_not_found(e: &SftpClientError) -> bool {
    matches!(e, SftpClientError::SftpError(SftpErrorKind::NoSuchFile, _))
}

fn is_sftp_protocol_error(e: &SftpClientError) -> bool {
    matches!(e, SftpClientError::SftpError(_, _))
}

fn is_sftp_failure(e: &SftpClientError) -> bool {
    matches!(e, SftpClientError::SftpError(SftpErrorKind::Failure, _))
}

fn to_metadata(meta: SftpMeta) -> Result<Metadata> {
    let mode = meta
        .file_type()
        .map(|t| {
            if t.is_file() {
                EntryMode::FILE
            } else if t.is_dir() {
                EntryMode::DIR
            } else {
                EntryMode::Unknown
            }
        })
        .unwrap_or(EntryMode::Unknown);
    let mut metadata = match mode {
        EntryMode::FILE => MetadataBuilder::file(meta.len().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "sftp metadata does not contain file length",
            )
        })?),
        EntryMode::DIR => MetadataBuilder::dir(),
        EntryMode::Unknown => MetadataBuilder::unknown(),
    };
    if let Some(modified) = meta.modified()
        && let Ok(m) = Timestamp::try_from(modified.as_system_time())
    {
        metadata.last_modified(m);
    }
    Ok(metadata.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SftpSettings {
        SftpSettings {
            host: "127.0.0.1".into(),
            port: Some(2222),
            user: Some("u".into()),
            root: "/data/".into(),
            key_file: None,
            known_hosts: Some("/etc/kh".into()),
            check: HostKeyCheck::Strict,
            connect_timeout: Duration::from_secs(5),
            connections: 2,
        }
    }

    fn connect_error(kind: std::io::ErrorKind, text: &str) -> openssh::Error {
        // The shape `openssh` gives a failed `ssh` start.
        openssh::Error::Connect(std::io::Error::new(kind, text.to_string()))
    }

    #[test]
    fn ssh_errors_are_classified() {
        let err = parse_ssh_error(
            connect_error(
                std::io::ErrorKind::ConnectionAborted,
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.",
            ),
            &settings(),
        );
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!err.is_temporary());
        assert!(err.to_string().contains("/etc/kh"), "{err}");
        assert!(err.to_string().contains("[127.0.0.1]:2222"), "{err}");

        let err = parse_ssh_error(
            connect_error(
                std::io::ErrorKind::PermissionDenied,
                "u@127.0.0.1: Permission denied (publickey).",
            ),
            &settings(),
        );
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains(AUTH_MARK), "{err}");

        let err = parse_ssh_error(
            connect_error(
                std::io::ErrorKind::ConnectionRefused,
                "connect to host 127.0.0.1 port 2222: Connection refused",
            ),
            &settings(),
        );
        assert_eq!(err.kind(), ErrorKind::Unexpected);
        assert!(err.is_temporary());
    }
}
