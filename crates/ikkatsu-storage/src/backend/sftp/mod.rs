//! SFTP: `sftp://[user[:password]@]host[:port]/absolute/dir`, key or password authentication
//! and host-key checks against known_hosts, over SSH run inside the process (the pure-Rust `russh` crate): no
//! `ssh` program is started and `~/.ssh/config` is not read; the user, port and key come from
//! the URL and the options.
//!
//! The key of `key-file` is read (and decrypted with `key-passphrase`) when the storage opens.
//! Without `key-file`, the keys of the SSH agent at `SSH_AUTH_SOCK` are offered, then the
//! unencrypted default keys `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa` and `~/.ssh/id_rsa`, as
//! OpenSSH does. A password (in the URL or the `password` option, which may be `${ENV}` or
//! `file://` in the application config) is offered after the key of `key-file`, or alone
//! without one: by the `password` method, then by `keyboard-interactive` (each hidden prompt
//! answered with it). It is never logged or shown.
//!
//! The service is Apache OpenDAL's `opendal-service-sftp` 0.59.5 (Apache-2.0), adapted for
//! ikkatsu, in OpenDAL's layout: [`backend`] (the builder and the operations), [`core`] (the
//! connection pool; [`host_key`] checks the server's key), [`reader`], [`writer`],
//! [`lister`], [`delete`] and [`error`]. The changes: the SSH connection is made in-process
//! with `russh` (TCP connection and handshake bounded by the connection timeout, keep-alive
//! every 15 s, host key checked against known_hosts, key and password authentication) and the SFTP client
//! runs over its `sftp` subsystem channel; the connection pool has a configurable size and
//! waits as long as the storage's timeout; SSH failures are classified (refused host key and
//! credentials are permanent permission errors, connection failures temporary); names that
//! are not UTF-8 are errors instead of panics. Licensed to the Apache Software Foundation
//! (ASF) under one or more contributor license agreements; the ASF licenses the original to
//! you under the Apache License, Version 2.0 <http://www.apache.org/licenses/LICENSE-2.0>.

mod auth;
mod backend;
mod config;
mod core;
mod delete;
mod error;
mod host_key;
mod lister;
mod reader;
mod writer;

use std::sync::Arc;

use ikkatsu_core::{Error, Result};
use opendal::Operator;

use self::backend::SftpBuilder;
use self::config::{
    Credentials, HostKeyCheck, OPTIONS, default_keys, load_key, local_user, sftp_settings,
};
use super::opened::Opened;
use crate::error::build_error;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::RemoteUrl;

/// Opens an SFTP storage.
pub(crate) fn open(
    url: &RemoteUrl,
    mut settings: Settings,
    layers: &StorageOptions,
) -> Result<Opened> {
    let (sftp, secrets) = sftp_settings(url, &mut settings, layers)?;
    let shown = settings.shown().to_string();
    settings.finish("sftp", OPTIONS)?;
    if sftp.check == HostKeyCheck::Accept {
        tracing::warn!(
            storage = %shown,
            "SSH host keys are NOT checked for this storage (`insecure` / \
             `known-hosts-strategy=accept`): anyone on the network path can impersonate the \
             server"
        );
    }
    let key = match &sftp.key_file {
        Some(path) => Some(Arc::new(load_key(
            path,
            secrets.key_passphrase.as_deref(),
            &shown,
        )?)),
        None => None,
    };
    let user = match &sftp.user {
        Some(user) => user.clone(),
        None => local_user().ok_or_else(|| {
            Error::config(format!(
                "storage {shown}: the local user name is unknown (no `USER`); give the user in \
                 the URL (`sftp://user@host/...`) or as the `user` option"
            ))
        })?,
    };
    let default_keys = if key.is_none() && secrets.password.is_none() {
        default_keys()
    } else {
        Vec::new()
    };
    let credentials = Credentials::new(user, key, secrets.password, default_keys);
    let builder = SftpBuilder::new(sftp, Arc::new(credentials));
    let operator = Operator::new(builder).map_err(|e| build_error(e, &shown))?;
    Ok(Opened {
        listing_is_stat: true,
        ..Opened::remote(operator)
    })
}

#[cfg(test)]
mod tests;
