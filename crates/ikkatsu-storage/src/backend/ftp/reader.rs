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

//! Reads one file over a data connection.
//
//! Adapted from Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0); see [`super`]
//! for what changed. Licensed to the Apache Software Foundation (ASF) under one or more
//! contributor license agreements; the ASF licenses the original to you under the Apache
//! License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::sync::Arc;

use super::core::{FtpCore, Manager};
use super::error::ftp_error;
use asyncband::pool::bounded;
use bytes::BytesMut;
use opendal::raw::*;
use opendal::*;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The size of the chunks a read returns.
pub(super) const READ_CHUNK: usize = 1024 * 1024;

/// Reads one file.
pub(crate) struct FtpReader {
    pub(super) core: Arc<FtpCore>,
    pub(super) path: String,
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
pub(super) struct FtpReadStream {
    /// Keeps the control connection while the data connection is read.
    pub(super) _stream: bounded::Object<Manager>,
    pub(super) data: Box<dyn AsyncRead + Send + Sync + Unpin>,
    pub(super) buf: BytesMut,
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
