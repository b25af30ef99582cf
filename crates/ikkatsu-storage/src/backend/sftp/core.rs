// Licensed to the Apache Software Foundation (ASF) under one
// or more contributor license agreements.  See the NOTICE file
// distributed with this work for additional information
// regarding copyright ownership.  The ASF licenses this file
// to you under the Apache License, Version 2.0 (the
// "License"); you may not use this file except in compliance
// with the License.  You may obtain a copy of the License at
//
//   http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing,
// software distributed under the License is distributed on an
// "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
// KIND, either express or implied.  See the License for the
// specific language governing permissions and limitations
// under the License.
//
// Modified by the ikkatsu developers: see the module documentation for what changed.

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

use super::auth::authenticate;
use super::config::{Credentials, SftpSettings, target};
use super::error::{is_sftp_protocol_error, parse_sftp_error, parse_ssh_error, transport_error};
use super::host_key::Client;

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
        authenticate(&mut handle, s, &self.credentials).await?;
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
