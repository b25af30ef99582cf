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

//! Reads one file.
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::io::SeekFrom;
use std::sync::Arc;

use asyncband::pool::bounded;
use bytes::BytesMut;
use opendal::raw::*;
use opendal::*;
use openssh_sftp_client::file::File;
use tokio::io::AsyncSeekExt;

use super::core::{Manager, SftpCore, broken};
use super::error::parse_sftp_error;

/// Reads one file.
pub(crate) struct SftpReader {
    pub(super) core: Arc<SftpCore>,
    pub(super) path: String,
}

impl oio::StreamRead for SftpReader {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let client = self.core.connect().await?;
        let opened = client.open(self.core.server_path(&self.path)).await;
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
pub(super) struct SftpReadStream {
    /// Keeps the connection while the file is read.
    pub(super) _conn: bounded::Object<Manager>,
    pub(super) file: File,
    pub(super) chunk: usize,
    pub(super) size: Option<usize>,
    pub(super) read: usize,
    pub(super) buf: BytesMut,
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
