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
