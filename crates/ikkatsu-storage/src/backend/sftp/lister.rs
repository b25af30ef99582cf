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

//! Lists one directory.
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use opendal::raw::oio::Entry;
use opendal::raw::*;
use opendal::*;
use openssh_sftp_client::fs::{DirEntry, ReadDir};

use super::core::{SftpCore, to_metadata};
use super::error::{is_not_found, parse_sftp_error};

/// Opens the directory at the first entry.
pub(crate) struct SftpLazyLister {
    pub(super) core: Arc<SftpCore>,
    pub(super) path: String,
    pub(super) inner: Option<Option<SftpLister>>,
}

impl oio::List for SftpLazyLister {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        if self.inner.is_none() {
            let client = self.core.connect().await?;
            let mut fs = client.fs();
            fs.set_cwd(&self.core.root);
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
                            self.core.root
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
pub(super) struct SftpLister {
    pub(super) dir: Pin<Box<ReadDir>>,
    pub(super) prefix: String,
}

impl SftpLister {
    pub(super) async fn next(&mut self) -> Result<Option<Entry>> {
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

pub(super) fn map_entry(prefix: &str, value: DirEntry) -> Result<Entry> {
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
