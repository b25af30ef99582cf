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
//! Adapted from Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0); see [`super`]
//! for what changed. Licensed to the Apache Software Foundation (ASF) under one or more
//! contributor license agreements; the ASF licenses the original to you under the Apache
//! License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::fmt::{self, Debug};
use std::str::FromStr;
use std::sync::Arc;

use super::core::{FtpCore, Login, Manager, create_parents, metadata};
use super::delete::FtpDeleter;
use super::error::ftp_error;
use super::lister::FtpLister;
use super::reader::FtpReader;
use super::writer::FtpWriter;
use asyncband::pool::bounded;
use opendal::raw::*;
use opendal::*;
use suppaftp::list::File;

/// The scheme OpenDAL reports for this service.
pub(super) const FTP_SCHEME: &str = "ftp";

/// At most this many connections of the service at once.
pub(super) const POOL_SIZE: usize = 64;

/// Builds the service (OpenDAL's `Operator::new` takes a builder).
#[derive(Debug, Default)]
pub(crate) struct FtpBuilder {
    pub(super) login: Option<Login>,
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

/// The service.
#[derive(Clone)]
pub(crate) struct FtpBackend {
    pub(super) core: Arc<FtpCore>,
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

pub(super) fn unsupported() -> Error {
    Error::new(ErrorKind::Unsupported, "operation is not supported")
}
