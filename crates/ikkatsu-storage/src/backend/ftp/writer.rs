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

//! Writes one file under a temporary name, then renames it over the target.
//
//! Adapted from Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0); see [`super`]
//! for what changed. Licensed to the Apache Software Foundation (ASF) under one or more
//! contributor license agreements; the ASF licenses the original to you under the Apache
//! License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::sync::Arc;

use super::core::{FtpCore, Manager, create_parents};
use super::error::ftp_error;
use asyncband::pool::bounded;
use bytes::Buf;
use opendal::raw::*;
use opendal::*;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes one file: stores it under a temporary name (connecting and creating its parent
/// directories at the first write), then renames it over the target.
pub(crate) struct FtpWriter {
    pub(super) core: Arc<FtpCore>,
    pub(super) path: String,
    pub(super) temp: String,
    pub(super) stream: Option<bounded::Object<Manager>>,
    pub(super) data: Option<Box<dyn AsyncWrite + Send + Sync + Unpin>>,
}

impl FtpWriter {
    pub(super) async fn open(&mut self) -> Result<Box<dyn AsyncWrite + Send + Sync + Unpin>> {
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
