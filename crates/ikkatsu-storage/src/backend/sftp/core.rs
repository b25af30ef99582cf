//! The connections of the service: the pool, and how one is made (TCP, SSH handshake, key authentication, the `sftp` subsystem) and checked.
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::borrow::Cow;
use std::fmt::{self, Debug};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use asyncband::pool::{ManageObject, ObjectStatus, bounded};
use opendal::raw::*;
use opendal::*;
use openssh_sftp_client::metadata::MetaData as SftpMeta;
use openssh_sftp_client::{Error as SftpClientError, Sftp, SftpAuxiliaryData, SftpOptions};
use russh::ChannelMsg;
use russh::client as ssh;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::config::{Credentials, SftpSettings, target};
use super::error::{is_sftp_protocol_error, parse_sftp_error, parse_ssh_error, transport_error};
use super::host_key::Client;
use crate::error::AUTH_MARK;

/// A pooled connection idle for longer than this is checked before it is handed out.
pub(super) const RECHECK_IDLE: Duration = Duration::from_secs(10);

/// With nothing received from the server for this long, a keep-alive is sent; after three
/// unanswered ones the connection is closed.
pub(super) const KEEPALIVE: Duration = Duration::from_secs(15);

/// The shared state of the service.
pub(crate) struct SftpCore {
    pub(super) info: ServiceInfo,
    pub(super) capability: Capability,
    pub(super) root: String,
    pub(super) pool: Arc<bounded::Pool<Manager>>,
    pub(super) pool_timeout: Duration,
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
    pub(super) fn server_path(&self, path: &str) -> PathBuf {
        Path::new(&self.root).join(path.trim_start_matches('/'))
    }

    /// Creates the directory `path` (relative to the root) and its parents, those that
    /// exist being kept.
    pub(super) async fn create_dir(&self, path: &str) -> Result<()> {
        let client = self.connect().await?;
        let mut fs = client.fs();
        fs.set_cwd(&self.root);

        let mut current = PathBuf::from(&self.root);
        for p in Path::new(&path).components() {
            current = current.join(p);
            if let Err(e) = fs.create_dir(p).await
                && !is_sftp_protocol_error(&e)
            {
                return Err(parse_sftp_error(e));
            }
            fs.set_cwd(&current);
        }
        Ok(())
    }

    pub(super) async fn connect(&self) -> Result<bounded::Object<Manager>> {
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
    pub(super) settings: SftpSettings,
    pub(super) credentials: Arc<Credentials>,
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
    pub(super) async fn ssh_channel(
        &self,
    ) -> Result<(ssh::Handle<Client>, russh::Channel<ssh::Msg>)> {
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
    pub(super) async fn authenticate(&self, handle: &mut ssh::Handle<Client>) -> Result<()> {
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
pub(super) async fn offer_key(
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
pub(super) async fn rsa_hash(
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

/// The server refused every key offered.
pub(super) fn auth_refused(s: &SftpSettings, user: &str, tried: &[String]) -> Error {
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

/// `result` as an OpenDAL result; see [`broken`].
pub(super) fn settle<T>(
    client: bounded::Object<Manager>,
    result: std::result::Result<T, SftpClientError>,
) -> Result<T> {
    result.map_err(|e| broken(client, e))
}

/// `e` as an OpenDAL error. An error that is not the server's answer means the connection
/// broke: `client` is dropped from the pool, so that the next operation gets a new one.
pub(super) fn broken(client: bounded::Object<Manager>, e: SftpClientError) -> Error {
    if !is_sftp_protocol_error(&e) {
        drop(client.detach());
    }
    parse_sftp_error(e)
}

pub(super) fn to_metadata(meta: SftpMeta) -> Result<Metadata> {
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
