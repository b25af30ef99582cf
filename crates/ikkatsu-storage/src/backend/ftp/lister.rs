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
//! Adapted from Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0); see [`super`]
//! for what changed. Licensed to the Apache Software Foundation (ASF) under one or more
//! contributor license agreements; the ASF licenses the original to you under the Apache
//! License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::str::FromStr;
use std::sync::Arc;

use super::core::{FtpCore, metadata};
use super::error::ftp_error;
use opendal::raw::*;
use opendal::*;
use suppaftp::list::File;

/// Lists one directory (one `LIST` at the first entry asked for).
pub(crate) struct FtpLister {
    pub(super) core: Arc<FtpCore>,
    pub(super) path: String,
    pub(super) lines: Option<std::vec::IntoIter<String>>,
}

impl oio::List for FtpLister {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        let lines = match &mut self.lines {
            Some(lines) => lines,
            None => {
                let mut stream = self.core.connect().await?;
                let pathname = (self.path != "/").then_some(self.path.as_str());
                let lines = stream.list(pathname).await.map_err(ftp_error)?;
                self.lines.insert(lines.into_iter())
            }
        };
        let Some(line) = lines.next() else {
            return Ok(None);
        };
        let file = File::from_str(&line).map_err(|e| {
            Error::new(ErrorKind::Unexpected, "parse file from response").set_source(e)
        })?;
        let prefix = if self.path == "/" { "" } else { &self.path };
        let path = if file.is_directory() {
            format!("{prefix}{}/", file.name())
        } else {
            format!("{prefix}{}", file.name())
        };
        Ok(Some(oio::Entry::new(&path, metadata(&file)?)))
    }
}
