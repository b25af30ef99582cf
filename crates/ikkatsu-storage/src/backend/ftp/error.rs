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

//! FTP errors as OpenDAL errors: `550` is `NotFound`; `421`, broken connections and
//! unreadable answers are temporary.
//
//! Adapted from Apache OpenDAL's `opendal-service-ftp` 0.59.5 (Apache-2.0); see [`super`]
//! for what changed. Licensed to the Apache Software Foundation (ASF) under one or more
//! contributor license agreements; the ASF licenses the original to you under the Apache
//! License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use opendal::*;
use suppaftp::{FtpError, Status};

/// Whether the server answered `550` (no such file, or it exists already).
pub(super) fn is_unavailable(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(resp) if resp.status == Status::FileUnavailable)
}

/// An FTP error, classified: `550` is `NotFound`; `421` (too many connections), broken
/// connections and unreadable answers are temporary.
pub(crate) fn ftp_error(err: FtpError) -> Error {
    let (kind, temporary) = match &err {
        FtpError::UnexpectedResponse(resp) if resp.status == Status::FileUnavailable => {
            (ErrorKind::NotFound, false)
        }
        FtpError::UnexpectedResponse(resp) if resp.status == Status::NotAvailable => {
            (ErrorKind::Unexpected, true)
        }
        FtpError::ConnectionError(_) | FtpError::BadResponse => (ErrorKind::Unexpected, true),
        _ => (ErrorKind::Unexpected, false),
    };
    Error::new(kind, "ftp error")
        .with_temporary(temporary)
        .set_source(err)
}
