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

//! SFTP and SSH errors as OpenDAL errors: refused host keys and credentials are permanent permission errors, broken connections temporary.
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::fmt::{self, Debug};

use opendal::*;
use openssh_sftp_client::Error as SftpClientError;
use openssh_sftp_client::error::SftpErrorKind;

use super::config::{SftpSettings, target};
use crate::error::HOST_KEY_MARK;

/// Why the SSH handshake failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The host key was refused: the message says why and what to do.
    HostKey(String),
    /// Anything else.
    Ssh(russh::Error),
}

impl From<russh::Error> for Failure {
    fn from(e: russh::Error) -> Self {
        Failure::Ssh(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::HostKey(message) => f.write_str(message),
            Failure::Ssh(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::HostKey(_) => None,
            Failure::Ssh(e) => e.source(),
        }
    }
}

pub(super) fn parse_sftp_error(e: SftpClientError) -> Error {
    let kind = match &e {
        SftpClientError::UnsupportedSftpProtocol { version: _ } => ErrorKind::Unsupported,
        SftpClientError::SftpError(kind, _msg) => match kind {
            SftpErrorKind::NoSuchFile => ErrorKind::NotFound,
            SftpErrorKind::PermDenied => ErrorKind::PermissionDenied,
            SftpErrorKind::OpUnsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Unexpected,
        },
        _ => ErrorKind::Unexpected,
    };
    // A broken connection may pass; an error the server reports (`SSH_FX_FAILURE` is its
    // "cannot do that", e.g. a directory that is not empty) will not.
    let temporary = kind == ErrorKind::Unexpected && !is_sftp_protocol_error(&e);
    Error::new(kind, "sftp error")
        .set_source(e)
        .with_temporary(temporary)
}

/// A connection that could not be made or broke: temporary, with the I/O error as the
/// source (the storage's error mapping reads it as "cannot reach the server").
pub(super) fn transport_error(s: &SftpSettings, io: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unexpected,
        format!("ssh: connection to {}: {io}", target(s)),
    )
    .set_source(io)
    .set_temporary()
}

/// SSH failures: a refused host key is a permanent permission error with the message saying
/// why; algorithms the server does not share are permanent; anything else (connection
/// refused, reset, closed, timed out) is temporary.
pub(super) fn parse_ssh_error(e: Failure, s: &SftpSettings) -> Error {
    let e = match e {
        Failure::HostKey(message) => {
            return Error::new(ErrorKind::PermissionDenied, message);
        }
        Failure::Ssh(e) => e,
    };
    use std::io::ErrorKind as Io;
    match e {
        russh::Error::IO(io) => transport_error(s, io),
        russh::Error::Keys(russh::keys::Error::IO(io)) => transport_error(s, io),
        russh::Error::UnknownKey | russh::Error::KeyChanged { .. } => Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{HOST_KEY_MARK}: the host key of {} was refused ({e})",
                target(s)
            ),
        ),
        russh::Error::NoCommonAlgo { .. } => Error::new(
            ErrorKind::Unsupported,
            format!(
                "ssh: {} shares no algorithm with this client ({e})",
                target(s)
            ),
        ),
        e => {
            let kind = match e {
                russh::Error::ConnectionTimeout
                | russh::Error::KeepaliveTimeout
                | russh::Error::InactivityTimeout
                | russh::Error::Elapsed(_) => Io::TimedOut,
                _ => Io::ConnectionAborted,
            };
            transport_error(s, std::io::Error::new(kind, e))
        }
    }
}

pub(super) fn is_not_found(e: &SftpClientError) -> bool {
    matches!(e, SftpClientError::SftpError(SftpErrorKind::NoSuchFile, _))
}

pub(super) fn is_sftp_protocol_error(e: &SftpClientError) -> bool {
    matches!(e, SftpClientError::SftpError(_, _))
}

pub(super) fn is_sftp_failure(e: &SftpClientError) -> bool {
    matches!(e, SftpClientError::SftpError(SftpErrorKind::Failure, _))
}
