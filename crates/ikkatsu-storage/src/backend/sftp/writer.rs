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

//! Writes one file.
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Buf;
use opendal::raw::*;
use opendal::*;
use openssh_sftp_client::file::TokioCompatFile;
use tokio::io::AsyncWriteExt;

use super::core::{SftpCore, broken};
use super::error::{is_not_found, is_sftp_failure, parse_sftp_error};

/// Opens the file at the first write.
pub(crate) struct SftpLazyWriter {
    pub(super) core: Arc<SftpCore>,
    pub(super) path: String,
    pub(super) op: OpWrite,
    pub(super) inner: Option<SftpWriter>,
}

impl SftpLazyWriter {
    pub(super) async fn inner(&mut self) -> Result<&mut SftpWriter> {
        if self.inner.is_none() {
            let client = self.core.connect().await?;
            let mut fs = client.fs();
            fs.set_cwd(&self.core.root);
            let path = self.core.server_path(&self.path);
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
                self.core.create_dir(dir).await?;
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
pub(super) struct SftpWriter {
    pub(super) file: Pin<Box<TokioCompatFile>>,
}

impl SftpWriter {
    pub(super) async fn write(&mut self, mut bs: Buffer) -> Result<()> {
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

    pub(super) async fn close(&mut self) -> Result<Metadata> {
        self.file.shutdown().await.map_err(new_std_io_error)?;
        Ok(MetadataBuilder::unknown().build())
    }

    pub(super) async fn abort(&mut self) -> Result<()> {
        // The partly written file stays; the storage deletes or overwrites it.
        let _ = self.file.shutdown().await;
        Ok(())
    }
}
