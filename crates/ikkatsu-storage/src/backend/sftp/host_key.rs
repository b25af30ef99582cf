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

//! The server's host key, checked against the known_hosts files (strict, add or accept).
//
//! Adapted from Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0); see
//! [`super`] for what changed. Licensed to the Apache Software Foundation (ASF) under one or
//! more contributor license agreements; the ASF licenses the original to you under the
//! Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use russh::client as ssh;
use russh::keys::known_hosts::{known_host_keys_path, learn_known_hosts_path};
use russh::keys::{Algorithm, HashAlg, PublicKey, PublicKeyOrCertificate};

use super::config::{Credentials, HostKeyCheck, SftpSettings, home_dir, is_rsa};
use super::error::Failure;
use crate::error::HOST_KEY_MARK;

/// The system-wide known_hosts file, read but never written.
pub(super) const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// What known_hosts says about a host key.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Known {
    /// The key is recorded for the host.
    Matches,
    /// Another key of the same type is recorded for the host, at `line` of `file`.
    Changed { file: PathBuf, line: usize },
    /// No key of that type is recorded for the host.
    Unknown,
}

/// The SSH client's callbacks: checks the server's host key.
pub(crate) struct Client {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) check: HostKeyCheck,
    /// The known_hosts file keys are added to (and read from).
    pub(super) user_file: Option<PathBuf>,
    /// Every known_hosts file read.
    pub(super) files: Vec<PathBuf>,
    pub(super) credentials: Arc<Credentials>,
}

impl Client {
    pub(super) fn new(s: &SftpSettings, credentials: Arc<Credentials>) -> Self {
        let user_file = s
            .known_hosts
            .clone()
            .or_else(|| home_dir().map(|h| h.join(".ssh").join("known_hosts")));
        let mut files: Vec<PathBuf> = user_file.iter().cloned().collect();
        files.push(PathBuf::from(SYSTEM_KNOWN_HOSTS));
        Client {
            host: s.host.clone(),
            port: s.port.unwrap_or(22),
            check: s.check,
            user_file,
            files,
            credentials,
        }
    }

    /// The keys recorded for the host, with their file and line.
    pub(super) fn recorded(&self) -> std::result::Result<Vec<(PathBuf, usize, PublicKey)>, String> {
        let mut out = Vec::new();
        for file in &self.files {
            let keys = known_host_keys_path(&self.host, self.port, file)
                .map_err(|e| format!("cannot read the known_hosts file {}: {e}", file.display()))?;
            out.extend(
                keys.into_iter()
                    .map(|(line, key)| (file.clone(), line, key)),
            );
        }
        Ok(out)
    }

    /// Host key algorithms, those of the keys recorded for the host first (as OpenSSH
    /// orders them), so that the server shows the key known_hosts has.
    pub(super) fn host_key_preference(&self) -> Vec<Algorithm> {
        let all = russh::Preferred::default().key.into_owned();
        let known: Vec<Algorithm> = match self.check {
            HostKeyCheck::Accept => Vec::new(),
            _ => self
                .recorded()
                .unwrap_or_default()
                .into_iter()
                .map(|(_, _, k)| k.algorithm())
                .collect(),
        };
        let is_known = |a: &Algorithm| known.iter().any(|k| k == a || (is_rsa(k) && is_rsa(a)));
        let (mut first, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(is_known);
        first.extend(rest);
        first
    }

    /// Looks `key` up in the known_hosts files.
    pub(super) fn lookup(&self, key: &PublicKey) -> std::result::Result<Known, String> {
        let recorded = self.recorded()?;
        if recorded
            .iter()
            .any(|(_, _, k)| k.key_data() == key.key_data())
        {
            return Ok(Known::Matches);
        }
        Ok(recorded
            .into_iter()
            .find(|(_, _, k)| k.algorithm() == key.algorithm())
            .map_or(Known::Unknown, |(file, line, _)| Known::Changed {
                file,
                line,
            }))
    }

    pub(super) fn files_shown(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// Whether `key` is accepted; a refusal says why.
    pub(super) fn check_key(&self, key: &PublicKey) -> std::result::Result<(), String> {
        let host = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        let fingerprint = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
        let refused = |why: String| format!("{HOST_KEY_MARK}: {why}");
        let _learning = self
            .credentials
            .learning
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match self.lookup(key).map_err(refused)? {
            Known::Matches => Ok(()),
            Known::Changed { file, line } => Err(refused(format!(
                "the host key of {host} CHANGED: the server shows {fingerprint}, which is not \
                 the key recorded at line {line} of {} (someone may be impersonating the \
                 server); if the server's key was replaced on purpose, remove the old entry \
                 (`ssh-keygen -R '{host}' -f {}`) and add the new one after checking its \
                 fingerprint",
                file.display(),
                file.display()
            ))),
            Known::Unknown => {
                let Some(file) = self.user_file.as_ref() else {
                    return Err(refused(format!(
                        "the host key of {host} ({fingerprint}) is not known and there is no \
                         known_hosts file (no home directory); give one with `known-hosts`"
                    )));
                };
                if self.check == HostKeyCheck::Add {
                    learn_known_hosts_path(&self.host, self.port, key, file).map_err(|e| {
                        refused(format!(
                            "the host key of {host} cannot be added to {}: {e}",
                            file.display()
                        ))
                    })?;
                    tracing::info!(
                        host = %host,
                        key = %fingerprint,
                        file = %file.display(),
                        "SSH host key added to known_hosts"
                    );
                    return Ok(());
                }
                Err(refused(format!(
                    "the host key of {host} ({fingerprint}) is not in {}; if this is the right \
                     server, add its key after checking the fingerprint (`ssh-keyscan -p {} {} \
                     >> {}`) or set `known-hosts-strategy=add`",
                    self.files_shown(),
                    self.port,
                    self.host,
                    file.display()
                )))
            }
        }
    }
}

impl ssh::Handler for Client {
    type Error = Failure;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        if self.check == HostKeyCheck::Accept {
            return Ok(true);
        }
        match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.check_key(key).map(|()| true).map_err(Failure::HostKey)
            }
            PublicKeyOrCertificate::Certificate(_) => Err(Failure::HostKey(format!(
                "{HOST_KEY_MARK}: the server showed a host certificate, which is not checked"
            ))),
        }
    }
}
