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

//! The service: its builder, its capabilities and its operations.
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use asyncband::pool::bounded;
use opendal::raw::*;
use opendal::*;

use super::config::{Credentials, SftpSettings};
use super::core::{Manager, SftpCore, settle, to_metadata};
use super::delete::SftpDeleter;
use super::error::{is_not_found, parse_sftp_error};
use super::lister::SftpLazyLister;
use super::reader::SftpReader;
use super::writer::SftpLazyWriter;

/// The scheme OpenDAL reports for this service.
pub(super) const SFTP_SCHEME: &str = "sftp";

/// Builds the service (OpenDAL's `Operator::new` takes a builder).
#[derive(Debug, Default)]
pub(crate) struct SftpBuilder {
    pub(super) settings: Option<(SftpSettings, Arc<Credentials>)>,
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

/// The service.
#[derive(Clone, Debug)]
pub(crate) struct SftpBackend {
    pub(super) core: Arc<SftpCore>,
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
        self.core.create_dir(path).await?;
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
            core: self.core.clone(),
            path: path.to_string(),
        }))
    }

    fn write(&self, _ctx: &OperationContext, path: &str, op: OpWrite) -> Result<Self::Writer> {
        Ok(SftpLazyWriter {
            core: self.core.clone(),

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
            core: self.core.clone(),
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
