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

//! The connections of the service: how one is made (TLS, login, root directory), the pool
//! that keeps them, and the metadata of a listed file.
//
//! Adapted from Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0); see [`super`]
//! for what changed. Licensed to the Apache Software Foundation (ASF) under one or more
//! contributor license agreements; the ASF licenses the original to you under the Apache
//! License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use super::error::{ftp_error, is_unavailable};
use asyncband::pool::{ManageObject, ObjectStatus, bounded};
use opendal::raw::*;
use opendal::*;
use suppaftp::FtpError;
use suppaftp::list::File;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream, ImplAsyncFtpStream};
use suppaftp::tokio_rustls::TlsConnector;
use suppaftp::types::FileType;

/// How long an operation waits for a connection (a free one, or a new one made).
pub(super) const POOL_WAIT: Duration = Duration::from_secs(10);

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

pub(super) async fn mkdir_if_missing(
    stream: &mut AsyncRustlsFtpStream,
    dir: &str,
) -> std::result::Result<(), FtpError> {
    match stream.mkdir(dir).await {
        Err(e) if !is_unavailable(&e) => Err(e),
        _ => Ok(()),
    }
}

/// The shared state of the service.
pub(super) struct FtpCore {
    pub(super) info: ServiceInfo,
    pub(super) capability: Capability,
    pub(super) pool: Arc<bounded::Pool<Manager>>,
}

impl FtpCore {
    pub(super) async fn connect(&self) -> Result<bounded::Object<Manager>> {
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
    pub(super) fn connect_error(&self, err: FtpError) -> Error {
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
pub(super) struct Manager {
    pub(super) login: Login,
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

/// The metadata of a listed file.
pub(super) fn metadata(file: &File) -> Result<Metadata> {
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
