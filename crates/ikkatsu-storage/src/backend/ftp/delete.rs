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

//! Deletes files and empty directories.
//
//! Adapted from Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0); see [`super`]
//! for what changed. Licensed to the Apache Software Foundation (ASF) under one or more
//! contributor license agreements; the ASF licenses the original to you under the Apache
//! License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::sync::Arc;

use super::core::FtpCore;
use super::error::{ftp_error, is_unavailable};
use opendal::raw::*;
use opendal::*;

/// Deletes files and empty directories; a missing one is no error.
pub(crate) struct FtpDeleter {
    pub(super) core: Arc<FtpCore>,
}

impl oio::OneShotDelete for FtpDeleter {
    async fn delete_once(&self, path: String, _: OpDelete) -> Result<()> {
        let mut stream = self.core.connect().await?;
        let result = if path.ends_with('/') {
            stream.rmdir(&path).await
        } else {
            stream.rm(&path).await
        };
        match result {
            Err(e) if !is_unavailable(&e) => Err(ftp_error(e)),
            _ => Ok(()),
        }
    }
}
