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

//! Deletes files and directories.
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::sync::Arc;

use opendal::raw::*;
use opendal::*;

use super::core::SftpCore;
use super::error::{is_not_found, parse_sftp_error};

/// Deletes files and directories.
pub(crate) struct SftpDeleter {
    pub(super) core: Arc<SftpCore>,
}

impl oio::OneShotDelete for SftpDeleter {
    async fn delete_once(&self, path: String, _: OpDelete) -> Result<()> {
        let client = self.core.connect().await?;
        let mut fs = client.fs();
        fs.set_cwd(&self.core.root);
        // `/` is the root itself, not the server's root directory.
        let res = if path == "/" {
            fs.remove_dir(&self.core.root).await
        } else if path.ends_with('/') {
            fs.remove_dir(path).await
        } else {
            fs.remove_file(path).await
        };
        match res {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(parse_sftp_error(e)),
        }
    }
}
