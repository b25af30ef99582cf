//! The SFTP service: Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0), adapted
//! for ikkatsu. The changes: the SSH connection is made in-process with `russh` (TCP
//! connection and handshake bounded by the connection timeout, keep-alive every 15 s, host
//! key checked against known_hosts, key authentication) and the SFTP client runs over its
//! `sftp` subsystem channel; the connection pool has a configurable size and waits as long as
//! the storage's timeout; SSH failures are classified (refused host key and credentials are
//! permanent permission errors, connection failures temporary); names that are not UTF-8 are
//! errors instead of panics.
//!
//! Licensed to the Apache Software Foundation (ASF) under one or more contributor license
//! agreements; the ASF licenses the original to you under the Apache License, Version 2.0
//! <http://www.apache.org/licenses/LICENSE-2.0>.

use std::borrow::Cow;
use std::fmt::{self, Debug};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncband::pool::{ManageObject, ObjectStatus, bounded};
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use opendal::raw::oio::Entry;
use opendal::raw::*;
use opendal::*;
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::file::{File, TokioCompatFile};
use openssh_sftp_client::fs::{DirEntry, ReadDir};
use openssh_sftp_client::metadata::MetaData as SftpMeta;
use openssh_sftp_client::{Error as SftpClientError, Sftp, SftpAuxiliaryData, SftpOptions};
use russh::ChannelMsg;
use russh::client as ssh;
use russh::keys::agent::client::AgentClient;
use russh::keys::known_hosts::{known_host_keys_path, learn_known_hosts_path};
use russh::keys::{
    Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{HostKeyCheck, SftpSettings, home_dir};
use crate::error::{AUTH_MARK, HOST_KEY_MARK};

/// The scheme OpenDAL reports for this service.
const SFTP_SCHEME: &str = "sftp";

/// A pooled connection idle for longer than this is checked before it is handed out.
const RECHECK_IDLE: Duration = Duration::from_secs(10);
/// With nothing received from the server for this long, a keep-alive is sent; after three
/// unanswered ones the connection is closed.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// The system-wide known_hosts file, read but never written.
const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// What the connections of one storage authenticate with.
pub(crate) struct Credentials {
    /// The login name.
    user: String,
    /// The key of `key-file`, decrypted.
    key: Option<Arc<PrivateKey>>,
    /// Without `key-file`: the unencrypted default keys, offered after the agent's.
    default_keys: Vec<(PathBuf, Arc<PrivateKey>)>,
    /// Held while a host key is looked up and added to known_hosts (`add`), so that
    /// connections made together add it once.
    learning: Mutex<()>,
}

impl Credentials {
    /// The credentials for `user`.
    pub(crate) fn new(
        user: String,
        key: Option<Arc<PrivateKey>>,
        default_keys: Vec<(PathBuf, Arc<PrivateKey>)>,
    ) -> Self {
        Credentials {
            user,
            key,
            default_keys,
            learning: Mutex::new(()),
        }
    }
}

impl Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("key", &self.key.as_ref().map(|k| k.algorithm().to_string()))
            .field(
                "default_keys",
                &self.default_keys.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Builds the service (OpenDAL's `Operator::new` takes a builder).
#[derive(Debug, Default)]
pub(crate) struct SftpBuilder {
    settings: Option<(SftpSettings, Arc<Credentials>)>,
}

impl SftpBuilder {
    /// A builder of the service for `settings`.
    pub(crate) fn new(settings: SftpSettings, credentials: Arc<Credentials>) -> Self {
        SftpBuilder {
            settings: Some((settings, credentials)),
        }
    }
}

impl Builder for SftpBuilder {
    type Config = ();

    fn build(self) -> Result<impl Service> {
        let Some((settings, credentials)) = self.settings else {
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
                credentials,
            },
        );
        Ok(SftpBackend {
            core: Arc::new(SftpCore {
                info,
                capability,
                root: settings.root,
                pool,
                pool_timeout,
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
    credentials: Arc<Credentials>,
}

impl ManageObject for Manager {
    type Object = Sftp;
    type Error = Error;

    // The SSH session lives as long as the SFTP client and its open files (it is their
    // auxiliary data): when the last of them is dropped, the channel closes and the session
    // ends with its task.
    async fn create(&self) -> Result<Self::Object, Self::Error> {
        let s = &self.settings;
        let (handle, channel) = tokio::time::timeout(s.connect_timeout, self.ssh_channel())
            .await
            .map_err(|_| {
                let io = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no SSH session with {} within {:?}",
                        target(s),
                        s.connect_timeout
                    ),
                );
                Error::new(ErrorKind::Unexpected, format!("ssh: {io}"))
                    .set_source(io)
                    .set_temporary()
            })??;
        let (reader, writer) = tokio::io::split(channel.into_stream());
        let sftp = Sftp::new_with_auxiliary(
            writer,
            reader,
            SftpOptions::default(),
            SftpAuxiliaryData::Arced(Arc::new(handle)),
        )
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

impl Manager {
    /// Connects, checks the host key, authenticates and opens the `sftp` subsystem.
    async fn ssh_channel(&self) -> Result<(ssh::Handle<Client>, russh::Channel<ssh::Msg>)> {
        let s = &self.settings;
        let port = s.port.unwrap_or(22);
        let client = Client::new(s, self.credentials.clone());
        let mut config = ssh::Config {
            keepalive_interval: Some(KEEPALIVE),
            ..Default::default()
        };
        config.preferred.key = Cow::Owned(client.host_key_preference());
        let socket = tokio::net::TcpStream::connect((s.host.as_str(), port))
            .await
            .map_err(|e| transport_error(s, e))?;
        // SFTP waits for each answer: do not hold small packets back.
        let _ = socket.set_nodelay(true);
        let mut handle = ssh::connect_stream(Arc::new(config), socket, client)
            .await
            .map_err(|e| parse_ssh_error(e, s))?;
        self.authenticate(&mut handle).await?;
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(|e| parse_ssh_error(e.into(), s))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| parse_ssh_error(e.into(), s))?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("{} refused the `sftp` subsystem", target(s)),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(transport_error(
                        s,
                        std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "the SSH channel closed before the `sftp` subsystem started",
                        ),
                    ));
                }
            }
        }
        Ok((handle, channel))
    }

    /// Offers the key of `key-file`; without it, the agent's keys and then the default keys.
    async fn authenticate(&self, handle: &mut ssh::Handle<Client>) -> Result<()> {
        let s = &self.settings;
        let c = &self.credentials;
        let user = c.user.as_str();
        let mut tried = Vec::new();
        if let Some(key) = &c.key {
            let file = s
                .key_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            tried.push(file);
            if offer_key(handle, user, key.clone(), s).await? {
                return Ok(());
            }
            return Err(auth_refused(s, user, &tried));
        }
        if let Some(socket) = std::env::var_os("SSH_AUTH_SOCK") {
            match AgentClient::connect_uds(&socket).await {
                Ok(mut agent) => {
                    let identities = agent.request_identities().await.unwrap_or_default();
                    for identity in identities {
                        let key = identity.public_key().into_owned();
                        let hash = rsa_hash(handle, key.algorithm(), s).await?;
                        tried.push(format!("agent key {}", key.fingerprint(HashAlg::Sha256)));
                        match handle
                            .authenticate_publickey_with(user, key, hash, &mut agent)
                            .await
                        {
                            Ok(result) if result.success() => return Ok(()),
                            Ok(_) => {}
                            Err(e) => tracing::debug!(error = %e, "the SSH agent did not sign"),
                        }
                    }
                }
                Err(e) => tracing::debug!(
                    socket = %Path::new(&socket).display(),
                    error = %e,
                    "SSH agent not reachable"
                ),
            }
        }
        for (path, key) in &c.default_keys {
            tried.push(path.display().to_string());
            if offer_key(handle, user, key.clone(), s).await? {
                return Ok(());
            }
        }
        Err(auth_refused(s, user, &tried))
    }
}

/// Offers `key`; true when the server accepted it.
async fn offer_key(
    handle: &mut ssh::Handle<Client>,
    user: &str,
    key: Arc<PrivateKey>,
    s: &SftpSettings,
) -> Result<bool> {
    let hash = rsa_hash(handle, key.algorithm(), s).await?;
    handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
        .await
        .map(|r| r.success())
        .map_err(|e| parse_ssh_error(e.into(), s))
}

/// For an RSA key, the best signature hash the server takes.
async fn rsa_hash(
    handle: &ssh::Handle<Client>,
    algorithm: Algorithm,
    s: &SftpSettings,
) -> Result<Option<HashAlg>> {
    if !algorithm.is_rsa() {
        return Ok(None);
    }
    handle
        .best_supported_rsa_hash()
        .await
        .map(Option::flatten)
        .map_err(|e| parse_ssh_error(e.into(), s))
}

fn is_rsa(a: &Algorithm) -> bool {
    matches!(a, Algorithm::Rsa { .. })
}

/// The server refused every key offered.
fn auth_refused(s: &SftpSettings, user: &str, tried: &[String]) -> Error {
    let host = target(s);
    let message = if tried.is_empty() {
        format!(
            "{AUTH_MARK}: no key to offer {user}@{host}: give `key-file`, or put the key in the \
             SSH agent (`SSH_AUTH_SOCK`) or in ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa or \
             ~/.ssh/id_rsa"
        )
    } else {
        format!(
            "{AUTH_MARK}: {user}@{host} refused the key {}; check the user and that the \
             public key is in its authorized_keys",
            tried.join(", ")
        )
    };
    Error::new(ErrorKind::PermissionDenied, message)
}

/// `host` or `[host]:port`, as known_hosts names it.
fn target(s: &SftpSettings) -> String {
    match s.port {
        Some(port) if port != 22 => format!("[{}]:{port}", s.host),
        _ => s.host.clone(),
    }
}

/// Why the SSH handshake failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The host key was refused: the message says why and what to do.
    HostKey(String),
    /// Anything else.
    Ssh(russh::Error),
}

impl From<russh::Error> for Failure {
    fn from(e: russh::Error) -> Self {
        Failure::Ssh(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::HostKey(message) => f.write_str(message),
            Failure::Ssh(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::HostKey(_) => None,
            Failure::Ssh(e) => e.source(),
        }
    }
}

/// What known_hosts says about a host key.
#[derive(Debug, PartialEq, Eq)]
enum Known {
    /// The key is recorded for the host.
    Matches,
    /// Another key of the same type is recorded for the host, at `line` of `file`.
    Changed { file: PathBuf, line: usize },
    /// No key of that type is recorded for the host.
    Unknown,
}

/// The SSH client's callbacks: checks the server's host key.
pub(crate) struct Client {
    host: String,
    port: u16,
    check: HostKeyCheck,
    /// The known_hosts file keys are added to (and read from).
    user_file: Option<PathBuf>,
    /// Every known_hosts file read.
    files: Vec<PathBuf>,
    credentials: Arc<Credentials>,
}

impl Client {
    fn new(s: &SftpSettings, credentials: Arc<Credentials>) -> Self {
        let user_file = s
            .known_hosts
            .clone()
            .or_else(|| home_dir().map(|h| h.join(".ssh").join("known_hosts")));
        let mut files: Vec<PathBuf> = user_file.iter().cloned().collect();
        files.push(PathBuf::from(SYSTEM_KNOWN_HOSTS));
        Client {
            host: s.host.clone(),
            port: s.port.unwrap_or(22),
            check: s.check,
            user_file,
            files,
            credentials,
        }
    }

    /// The keys recorded for the host, with their file and line.
    fn recorded(&self) -> std::result::Result<Vec<(PathBuf, usize, PublicKey)>, String> {
        let mut out = Vec::new();
        for file in &self.files {
            let keys = known_host_keys_path(&self.host, self.port, file)
                .map_err(|e| format!("cannot read the known_hosts file {}: {e}", file.display()))?;
            out.extend(
                keys.into_iter()
                    .map(|(line, key)| (file.clone(), line, key)),
            );
        }
        Ok(out)
    }

    /// Host key algorithms, those of the keys recorded for the host first (as OpenSSH
    /// orders them), so that the server shows the key known_hosts has.
    fn host_key_preference(&self) -> Vec<Algorithm> {
        let all = russh::Preferred::default().key.into_owned();
        let known: Vec<Algorithm> = match self.check {
            HostKeyCheck::Accept => Vec::new(),
            _ => self
                .recorded()
                .unwrap_or_default()
                .into_iter()
                .map(|(_, _, k)| k.algorithm())
                .collect(),
        };
        let is_known = |a: &Algorithm| known.iter().any(|k| k == a || (is_rsa(k) && is_rsa(a)));
        let (mut first, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(is_known);
        first.extend(rest);
        first
    }

    /// Looks `key` up in the known_hosts files.
    fn lookup(&self, key: &PublicKey) -> std::result::Result<Known, String> {
        let recorded = self.recorded()?;
        if recorded
            .iter()
            .any(|(_, _, k)| k.key_data() == key.key_data())
        {
            return Ok(Known::Matches);
        }
        Ok(recorded
            .into_iter()
            .find(|(_, _, k)| k.algorithm() == key.algorithm())
            .map_or(Known::Unknown, |(file, line, _)| Known::Changed {
                file,
                line,
            }))
    }

    fn files_shown(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// Whether `key` is accepted; a refusal says why.
    fn check_key(&self, key: &PublicKey) -> std::result::Result<(), String> {
        let host = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        let fingerprint = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
        let refused = |why: String| format!("{HOST_KEY_MARK}: {why}");
        let _learning = self
            .credentials
            .learning
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match self.lookup(key).map_err(refused)? {
            Known::Matches => Ok(()),
            Known::Changed { file, line } => Err(refused(format!(
                "the host key of {host} CHANGED: the server shows {fingerprint}, which is not \
                 the key recorded at line {line} of {} (someone may be impersonating the \
                 server); if the server's key was replaced on purpose, remove the old entry \
                 (`ssh-keygen -R '{host}' -f {}`) and add the new one after checking its \
                 fingerprint",
                file.display(),
                file.display()
            ))),
            Known::Unknown => {
                let Some(file) = self.user_file.as_ref() else {
                    return Err(refused(format!(
                        "the host key of {host} ({fingerprint}) is not known and there is no \
                         known_hosts file (no home directory); give one with `known-hosts`"
                    )));
                };
                if self.check == HostKeyCheck::Add {
                    learn_known_hosts_path(&self.host, self.port, key, file).map_err(|e| {
                        refused(format!(
                            "the host key of {host} cannot be added to {}: {e}",
                            file.display()
                        ))
                    })?;
                    tracing::info!(
                        host = %host,
                        key = %fingerprint,
                        file = %file.display(),
                        "SSH host key added to known_hosts"
                    );
                    return Ok(());
                }
                Err(refused(format!(
                    "the host key of {host} ({fingerprint}) is not in {}; if this is the right \
                     server, add its key after checking the fingerprint (`ssh-keyscan -p {} {} \
                     >> {}`) or set `known-hosts-strategy=add`",
                    self.files_shown(),
                    self.port,
                    self.host,
                    file.display()
                )))
            }
        }
    }
}

impl ssh::Handler for Client {
    type Error = Failure;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        if self.check == HostKeyCheck::Accept {
            return Ok(true);
        }
        match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.check_key(key).map(|()| true).map_err(Failure::HostKey)
            }
            PublicKeyOrCertificate::Certificate(_) => Err(Failure::HostKey(format!(
                "{HOST_KEY_MARK}: the server showed a host certificate, which is not checked"
            ))),
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
                // The root is created when a connection is made: missing, it could not be.
                Err(e) if is_not_found(&e) && self.path == "/" => {
                    return Err(Error::new(
                        ErrorKind::PermissionDenied,
                        format!(
                            "the root directory {:?} can neither be entered nor created; check \
                             the path of the URL and the user's rights on the server",
                            self.backend.core.root
                        ),
                    )
                    .set_source(e));
                }
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

/// A connection that could not be made or broke: temporary, with the I/O error as the
/// source (the storage's error mapping reads it as "cannot reach the server").
fn transport_error(s: &SftpSettings, io: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unexpected,
        format!("ssh: connection to {}: {io}", target(s)),
    )
    .set_source(io)
    .set_temporary()
}

/// SSH failures: a refused host key is a permanent permission error with the message saying
/// why; algorithms the server does not share are permanent; anything else (connection
/// refused, reset, closed, timed out) is temporary.
fn parse_ssh_error(e: Failure, s: &SftpSettings) -> Error {
    let e = match e {
        Failure::HostKey(message) => {
            return Error::new(ErrorKind::PermissionDenied, message);
        }
        Failure::Ssh(e) => e,
    };
    use std::io::ErrorKind as Io;
    match e {
        russh::Error::IO(io) => transport_error(s, io),
        russh::Error::Keys(russh::keys::Error::IO(io)) => transport_error(s, io),
        russh::Error::UnknownKey | russh::Error::KeyChanged { .. } => Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{HOST_KEY_MARK}: the host key of {} was refused ({e})",
                target(s)
            ),
        ),
        russh::Error::NoCommonAlgo { .. } => Error::new(
            ErrorKind::Unsupported,
            format!(
                "ssh: {} shares no algorithm with this client ({e})",
                target(s)
            ),
        ),
        e => {
            let kind = match e {
                russh::Error::ConnectionTimeout
                | russh::Error::KeepaliveTimeout
                | russh::Error::InactivityTimeout
                | russh::Error::Elapsed(_) => Io::TimedOut,
                _ => Io::ConnectionAborted,
            };
            transport_error(s, std::io::Error::new(kind, e))
        }
    }
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

    fn credentials() -> Arc<Credentials> {
        Arc::new(Credentials::new("u".into(), None, Vec::new()))
    }

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFyfGZy0OdrG86LcyVCKMgL0onwFlokdbmJOlksv6RAd";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBjrmP7fQjWRVTbmqsyVYUG6GbeLRra3k7UbSKR0ln9o";

    fn key(base64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(base64).unwrap()
    }

    #[test]
    fn ssh_errors_are_classified() {
        let client = Client::new(&settings(), credentials());
        let refused = client.check_key(&key(KEY)).unwrap_err();
        let err = parse_ssh_error(Failure::HostKey(refused), &settings());
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!err.is_temporary());
        assert!(err.to_string().contains(HOST_KEY_MARK), "{err}");
        assert!(err.to_string().contains("/etc/kh"), "{err}");
        assert!(err.to_string().contains("[127.0.0.1]:2222"), "{err}");
        assert!(err.to_string().contains("ssh-keyscan -p 2222"), "{err}");

        let err = auth_refused(&settings(), "u", &["/k/id".to_string()]);
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!err.is_temporary());
        assert!(err.to_string().contains(AUTH_MARK), "{err}");
        assert!(err.to_string().contains("u@[127.0.0.1]:2222"), "{err}");
        assert!(err.to_string().contains("/k/id"), "{err}");

        for e in [
            russh::Error::IO(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused",
            )),
            russh::Error::HUP,
            russh::Error::Disconnect,
            russh::Error::KeepaliveTimeout,
        ] {
            let err = parse_ssh_error(Failure::Ssh(e), &settings());
            assert_eq!(err.kind(), ErrorKind::Unexpected);
            assert!(err.is_temporary(), "{err}");
            let source = std::error::Error::source(&err).expect("source");
            assert!(source.downcast_ref::<std::io::Error>().is_some(), "{err}");
        }
    }

    /// Hashed (`|1|...`) and plain `[host]:port` entries are found; another key of the same
    /// type for the host is a changed key; `add` appends an unknown key.
    #[test]
    fn known_hosts_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let mut s = settings();
        s.known_hosts = Some(file.clone());
        std::fs::write(&file, format!("[127.0.0.1]:2222 ssh-ed25519 {KEY}\n")).unwrap();
        let client = Client::new(&s, credentials());
        assert_eq!(client.lookup(&key(KEY)).unwrap(), Known::Matches);
        assert!(matches!(
            client.lookup(&key(OTHER)).unwrap(),
            Known::Changed { line: 1, .. }
        ));
        let changed = client.check_key(&key(OTHER)).unwrap_err();
        assert!(changed.contains("CHANGED"), "{changed}");

        let hashed = std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&file)
            .output();
        if let Ok(out) = hashed
            && out.status.success()
        {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.starts_with("|1|"), "{text}");
            assert_eq!(client.lookup(&key(KEY)).unwrap(), Known::Matches);
        }

        let on_22 = SftpSettings {
            port: None,
            ..s.clone()
        };
        assert_eq!(
            Client::new(&on_22, credentials())
                .lookup(&key(KEY))
                .unwrap(),
            Known::Unknown
        );

        std::fs::write(&file, "").unwrap();
        s.check = HostKeyCheck::Add;
        let client = Client::new(&s, credentials());
        client.check_key(&key(KEY)).unwrap();
        assert_eq!(client.lookup(&key(KEY)).unwrap(), Known::Matches);
        assert!(client.check_key(&key(OTHER)).is_err());
    }
}
