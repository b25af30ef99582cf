//! The SFTP backend's settings: what the URL and its options say ([`SftpSettings`]), and the
//! keys and the user they name.

use std::fmt::{self, Debug};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ikkatsu_core::secret::MASK;
use ikkatsu_core::{Error, ErrorKind, Result};
use russh::keys::{Algorithm, PrivateKey};

use crate::error::AUTH_MARK;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::RemoteUrl;

/// The options of this backend.
pub(super) const OPTIONS: &[&str] = &[
    "user",
    "password",
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
    /// The login name (default: the local user, see [`local_user`]).
    pub(crate) user: Option<String>,
    /// The root directory, absolute, with a trailing `/`.
    pub(crate) root: String,
    /// The private key.
    pub(crate) key_file: Option<PathBuf>,
    /// The known_hosts file (default: `~/.ssh/known_hosts`, and `/etc/ssh/ssh_known_hosts`
    /// read only).
    pub(crate) known_hosts: Option<PathBuf>,
    /// How host keys are checked.
    pub(crate) check: HostKeyCheck,
    /// Connection timeout (the storage's `timeout`).
    pub(crate) connect_timeout: Duration,
    /// At most this many SSH connections.
    pub(crate) connections: usize,
}

/// The secrets of the URL and the options, kept out of [`SftpSettings`] (which is logged).
#[derive(Default)]
pub(super) struct Secrets {
    /// What unlocks the key of `key-file`.
    pub(super) key_passphrase: Option<String>,
    /// The login password.
    pub(super) password: Option<String>,
}

impl Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |secret: &Option<String>| secret.as_ref().map(|_| MASK);
        f.debug_struct("Secrets")
            .field("key_passphrase", &masked(&self.key_passphrase))
            .field("password", &masked(&self.password))
            .finish()
    }
}

/// Reads the URL and the options.
pub(super) fn sftp_settings(
    url: &RemoteUrl,
    settings: &mut Settings,
    layers: &StorageOptions,
) -> Result<(SftpSettings, Secrets)> {
    let shown = settings.shown().to_string();
    let (user, password) = settings.take_user_and_password(url)?;
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
        Secrets {
            key_passphrase: passphrase,
            password,
        },
    ))
}

/// `host` or `[host]:port`, as known_hosts names it.
pub(super) fn target(s: &SftpSettings) -> String {
    match s.port {
        Some(port) if port != 22 => format!("[{}]:{port}", s.host),
        _ => s.host.clone(),
    }
}

/// Reads the private key at `path`, decrypted with `passphrase`. A key that cannot be
/// decrypted is a permanent permission error that shows neither the passphrase nor the key.
pub(super) fn load_key(path: &Path, passphrase: Option<&str>, shown: &str) -> Result<PrivateKey> {
    use russh::keys::Error as KeyError;
    match russh::keys::load_secret_key(path, passphrase) {
        Ok(key) if !supported(&key) => Err(Error::config(format!(
            "storage {shown}: the key {} is of type {}, which this build cannot sign with; \
             use an ed25519, ECDSA or RSA key",
            path.display(),
            key.algorithm()
        ))),
        Ok(key) => Ok(key),
        Err(KeyError::IO(e)) => Err(Error::io(
            format!("storage {shown}: cannot read the key {}", path.display()),
            e,
        )
        .set_temporary(false)),
        Err(KeyError::KeyIsEncrypted) => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "storage {shown}: {AUTH_MARK}: the key {} is encrypted; give its passphrase as \
                 `key-passphrase`",
                path.display()
            ),
        )),
        Err(e) if passphrase.is_some() => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "storage {shown}: {AUTH_MARK}: the key {} could not be unlocked with \
                 `key-passphrase` ({e}); check the passphrase and the key file",
                path.display()
            ),
        )),
        Err(e) => Err(Error::config(format!(
            "storage {shown}: the key {} cannot be used ({e}); give an OpenSSH, PEM or PKCS#8 \
             private key (ed25519, ECDSA or RSA)",
            path.display()
        ))),
    }
}

/// Whether this build can sign with `key`.
pub(super) fn supported(key: &PrivateKey) -> bool {
    russh::keys::key::ALL_KEY_TYPES.contains(&key.algorithm())
}

/// The user's home directory.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The unencrypted keys among `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa` and `~/.ssh/id_rsa`, in
/// that order, that this build can sign with; the others are skipped.
pub(super) fn default_keys() -> Vec<(PathBuf, Arc<PrivateKey>)> {
    let Some(home) = home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .filter(|path| path.exists())
        .filter_map(|path| match russh::keys::load_secret_key(&path, None) {
            Ok(key) if supported(&key) => Some((path, Arc::new(key))),
            Ok(key) => {
                tracing::debug!(
                    key = %path.display(),
                    kind = %key.algorithm(),
                    "default SSH key skipped: this build cannot sign with its type"
                );
                None
            }
            Err(e) => {
                tracing::debug!(key = %path.display(), error = %e, "default SSH key skipped");
                None
            }
        })
        .collect()
}

/// The local user name: `USER`, `LOGNAME`, else the name of the effective user id.
pub(super) fn local_user() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(user) = std::env::var(var)
            && !user.is_empty()
        {
            return Some(user);
        }
    }
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `getpwuid_r` writes the entry into `pwd` and the strings it points to into
    // `buf`, both live until the name is copied out below.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_str()
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }
}

/// What the connections of one storage authenticate with.
pub(crate) struct Credentials {
    /// The login name.
    pub(super) user: String,
    /// The key of `key-file`, decrypted.
    pub(super) key: Option<Arc<PrivateKey>>,
    /// The password, offered after the key (see [`super::auth`]).
    pub(super) password: Option<String>,
    /// Without `key-file`: the unencrypted default keys, offered after the agent's.
    pub(super) default_keys: Vec<(PathBuf, Arc<PrivateKey>)>,
    /// Held while a host key is looked up and added to known_hosts (`add`), so that
    /// connections made together add it once.
    pub(super) learning: Mutex<()>,
}

impl Credentials {
    /// The credentials for `user`.
    pub(crate) fn new(
        user: String,
        key: Option<Arc<PrivateKey>>,
        password: Option<String>,
        default_keys: Vec<(PathBuf, Arc<PrivateKey>)>,
    ) -> Self {
        Credentials {
            user,
            key,
            password,
            default_keys,
            learning: Mutex::new(()),
        }
    }
}

impl Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("key", &self.key.as_ref().map(|k| k.algorithm().to_string()))
            .field("password", &self.password.as_ref().map(|_| MASK))
            .field(
                "default_keys",
                &self.default_keys.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

pub(super) fn is_rsa(a: &Algorithm) -> bool {
    matches!(a, Algorithm::Rsa { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::remote as parse;

    fn read(url: &str) -> Result<(SftpSettings, Secrets)> {
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
        assert_eq!(pass.key_passphrase.as_deref(), Some("pw"));
        assert_eq!(pass.password, None);
        let (s, secrets) = read("sftp://bob:s3cret@h/d").unwrap();
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(secrets.password.as_deref(), Some("s3cret"));
        let (_, secrets) = read("sftp://h/d?user=bob&password=s3cret").unwrap();
        assert_eq!(secrets.password.as_deref(), Some("s3cret"));
        let credentials = Credentials::new("bob".into(), None, secrets.password, Vec::new());
        assert!(!format!("{credentials:?}").contains("s3cret"));
        let (s, _) = read("sftp://h").unwrap();
        assert_eq!(s.root, "/");
        assert_eq!(s.check, HostKeyCheck::Strict);
        let (s, _) = read("sftp://h/d?insecure=true").unwrap();
        assert_eq!(s.check, HostKeyCheck::Accept);
    }

    #[test]
    fn clear_errors() {
        for (url, expect) in [
            ("sftp://u:pw@h/d?password=x", "both in the URL"),
            ("sftp://h/d?password=x", "without a user"),
            ("sftp://h/d?key-passphrase=x", "needs `key-file`"),
            ("sftp://h/d?known-hosts-strategy=maybe", "strict"),
            (
                "sftp://h/d?key-file=/nonexistent/ikkatsu-key",
                "cannot read",
            ),
            ("sftp://h/d?pass=x", "unknown option"),
            ("sftp://h/d?connections=0", "at least 1"),
        ] {
            let err = read(url).unwrap_err();
            assert!(err.message().contains(expect), "{url}: {}", err.message());
        }
    }
}
