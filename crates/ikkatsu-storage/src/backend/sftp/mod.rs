//! SFTP: `sftp://[user@]host[:port]/absolute/dir`, key authentication and host-key checks
//! against known_hosts, through the system `ssh` client (the `openssh` crate, as OpenDAL's
//! SFTP service does).
//!
//! OpenDAL's own SFTP service takes only a user, a key file and a strictness: it cannot point
//! ssh at a known_hosts file, use a key with a passphrase (ssh runs in batch mode) or bound
//! its connection time. [`service`] is that service adapted to take them; a passphrase is
//! handed to a private `ssh-agent` started for the storage (see [`agent`]).

mod agent;
mod service;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ikkatsu_core::{Error, Result};
use opendal::Operator;

use super::{Opened, build_error};
use crate::connection::Settings;
use crate::layers::StorageOptions;
use crate::url::RemoteUrl;

pub(crate) use service::SftpBuilder;

/// The options of this backend.
const OPTIONS: &[&str] = &[
    "user",
    "key-file",
    "key-passphrase",
    "known-hosts",
    "known-hosts-strategy",
    "insecure",
    "connections",
];

/// How the server's host key is checked (ssh's `StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostKeyCheck {
    /// The key must be in known_hosts (`strict`, the default).
    Strict,
    /// An unknown host's key is added to known_hosts; a changed key is refused (`add`).
    Add,
    /// Any key is accepted (`accept`, or `insecure=true`): logs a warning.
    Accept,
}

/// Everything the SFTP service needs, from the URL and its options.
#[derive(Debug, Clone)]
pub(crate) struct SftpSettings {
    /// Host name or address.
    pub(crate) host: String,
    /// The port, when not 22.
    pub(crate) port: Option<u16>,
    /// The login name (default: ssh's, from `~/.ssh/config` or the local user).
    pub(crate) user: Option<String>,
    /// The root directory, absolute, with a trailing `/`.
    pub(crate) root: String,
    /// The private key.
    pub(crate) key_file: Option<PathBuf>,
    /// The known_hosts file (default: ssh's `~/.ssh/known_hosts` and the system one).
    pub(crate) known_hosts: Option<PathBuf>,
    /// How host keys are checked.
    pub(crate) check: HostKeyCheck,
    /// Connection timeout (the storage's `timeout`).
    pub(crate) connect_timeout: Duration,
    /// At most this many SSH connections.
    pub(crate) connections: usize,
}

/// Reads the URL and the options.
fn sftp_settings(
    url: &RemoteUrl,
    settings: &mut Settings,
    layers: &StorageOptions,
) -> Result<(SftpSettings, Option<String>)> {
    let shown = settings.shown().to_string();
    if url.password.is_some() {
        return Err(Error::config(format!(
            "storage {shown}: SFTP uses key authentication only; remove the password from the \
             URL and give `key-file` (and `key-passphrase` if the key has one)"
        )));
    }
    let user = match (settings.take("user"), url.user.clone()) {
        (Some(_), Some(_)) => {
            return Err(Error::config(format!(
                "storage {shown}: the user is given both in the URL and as the `user` option; \
                 keep one"
            )));
        }
        (a, b) => a.or(b),
    };
    let key_file = settings.take_file("key-file")?;
    let passphrase = settings.take("key-passphrase");
    if passphrase.is_some() && key_file.is_none() {
        return Err(Error::config(format!(
            "storage {shown}: `key-passphrase` needs `key-file`, the key it unlocks"
        )));
    }
    let known_hosts = settings.take_file("known-hosts")?;
    let mut check = match settings
        .take("known-hosts-strategy")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("strict") => HostKeyCheck::Strict,
        Some("add") | Some("accept-new") => HostKeyCheck::Add,
        Some("accept") => HostKeyCheck::Accept,
        Some(other) => {
            return Err(Error::config(format!(
                "storage {shown}: `known-hosts-strategy` is `strict` (the default), `add` or \
                 `accept`, not `{other}`"
            )));
        }
    };
    if settings.take_bool("insecure")?.unwrap_or(false) {
        check = HostKeyCheck::Accept;
    }
    let connections = settings.take_usize("connections")?.unwrap_or(8);
    if connections == 0 {
        return Err(Error::config(format!(
            "storage {shown}: `connections` must be at least 1"
        )));
    }
    let root = if url.path.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/", url.path)
    };
    Ok((
        SftpSettings {
            host: url.host.clone(),
            port: url.port,
            user,
            root,
            key_file,
            known_hosts,
            check,
            connect_timeout: layers.timeout.min(Duration::from_secs(60)),
            connections,
        },
        passphrase,
    ))
}

/// Opens an SFTP storage.
pub(crate) fn open(
    url: &RemoteUrl,
    mut settings: Settings,
    layers: &StorageOptions,
) -> Result<Opened> {
    let (sftp, passphrase) = sftp_settings(url, &mut settings, layers)?;
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
    let runtime = tempfile::Builder::new()
        .prefix("ikkatsu-ssh-")
        .tempdir()
        .map_err(|e| Error::io(format!("storage {shown}: private SSH directory"), e))?;
    let agent = match (&passphrase, &sftp.key_file) {
        (Some(passphrase), Some(key)) => Some(agent::PrivateAgent::start(
            runtime.path(),
            key,
            passphrase,
            &shown,
        )?),
        _ => None,
    };
    let builder = SftpBuilder::new(sftp, Arc::new(service::Resources { runtime, agent }));
    let operator = Operator::new(builder).map_err(|e| build_error(e, &shown))?;
    Ok(Opened {
        listing_is_stat: true,
        ..Opened::remote(operator)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::StorageUrl;

    fn parse(url: &str) -> RemoteUrl {
        match StorageUrl::parse(url).unwrap() {
            StorageUrl::Remote(r) => r,
            _ => unreachable!(),
        }
    }

    fn read(url: &str) -> Result<(SftpSettings, Option<String>)> {
        let url = parse(url);
        let mut s = Settings::new(url.query.clone(), &Default::default(), "sftp://x").unwrap();
        let out = sftp_settings(&url, &mut s, &StorageOptions::default())?;
        s.finish("sftp", OPTIONS)?;
        Ok(out)
    }

    #[test]
    fn maps_url_and_options() {
        let key = tempfile::NamedTempFile::new().unwrap();
        let (s, pass) = read(&format!(
            "sftp://bob@h:2222/srv/in?key-file={}&key-passphrase=pw&known-hosts-strategy=add",
            key.path().display()
        ))
        .unwrap();
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.port, Some(2222));
        assert_eq!(s.root, "/srv/in/");
        assert_eq!(s.check, HostKeyCheck::Add);
        assert_eq!(s.connections, 8);
        assert_eq!(pass.as_deref(), Some("pw"));
        let (s, _) = read("sftp://h").unwrap();
        assert_eq!(s.root, "/");
        assert_eq!(s.check, HostKeyCheck::Strict);
        let (s, _) = read("sftp://h/d?insecure=true").unwrap();
        assert_eq!(s.check, HostKeyCheck::Accept);
    }

    #[test]
    fn clear_errors() {
        for (url, expect) in [
            ("sftp://u:pw@h/d", "key authentication only"),
            ("sftp://h/d?key-passphrase=x", "needs `key-file`"),
            ("sftp://h/d?known-hosts-strategy=maybe", "strict"),
            (
                "sftp://h/d?key-file=/nonexistent/ikkatsu-key",
                "cannot read",
            ),
            ("sftp://h/d?password=x", "unknown option"),
            ("sftp://h/d?connections=0", "at least 1"),
        ] {
            let err = read(url).unwrap_err();
            assert!(err.message().contains(expect), "{url}: {}", err.message());
        }
    }
}
