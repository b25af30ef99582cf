//! Backends: one module per storage kind, and [`BACKENDS`], the registry of the remote ones.
//! Each module turns its URL form and options into an OpenDAL operator and says what it can
//! do ([`Opened`]); adding a backend means one new module and one line in [`BACKENDS`]. A
//! scheme of the program's own ([`crate::register_scheme`]) is looked up before them.

#[cfg(feature = "azblob")]
mod azblob;
pub(crate) mod custom;
mod fs;
#[cfg(feature = "ftp")]
mod ftp;
#[cfg(feature = "gcs")]
mod gcs;
#[cfg(feature = "__http")]
mod http;
mod memory;
mod opened;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "sftp")]
mod sftp;
#[cfg(feature = "__tls")]
mod tls;
#[cfg(feature = "webdav")]
mod webdav;

use ikkatsu_core::{Error, Result};

use self::custom::StorageBackend;

pub(crate) use self::opened::{EmptyFileWriter, Opened, StreamUploader};
use crate::connection::StorageConnection;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::{RemoteUrl, StorageUrl};

/// How a remote backend opens a storage: the URL, its options (the layer options already
/// taken out) and the layer options.
pub(crate) type OpenFn = fn(&RemoteUrl, Settings, &StorageOptions) -> Result<Opened>;

/// One remote backend, whether this build has it or not (like sqlx's `AnyDriver`).
#[derive(Debug)]
pub(crate) struct Backend {
    /// The cargo feature that compiles it in, also its name in messages.
    pub(crate) feature: &'static str,
    /// The URL schemes it serves, lower case.
    pub(crate) schemes: &'static [&'static str],
    /// What the host part of its URLs names: `host`, `bucket` or `container`.
    pub(crate) host: &'static str,
    /// How it opens a storage; `None` when the feature is not compiled in.
    pub(crate) open: Option<OpenFn>,
}

/// The [`Backend`] of the cargo feature `$feature` (and module `$module`, whose `open` it
/// calls when the feature is compiled in).
macro_rules! backend {
    ($feature:literal, $schemes:expr, $host:literal, $module:ident) => {
        Backend {
            feature: $feature,
            schemes: &$schemes,
            host: $host,
            open: {
                #[cfg(feature = $feature)]
                let open: Option<OpenFn> = Some($module::open);
                #[cfg(not(feature = $feature))]
                let open: Option<OpenFn> = None;
                open
            },
        }
    };
}

/// The remote backends, one line each: feature, schemes, what the host part names, module;
/// in the order of docs/storage.md's URL table (a test holds that table to this one).
pub(crate) const BACKENDS: &[Backend] = &[
    backend!("ftp", ["ftp", "ftps"], "host", ftp),
    backend!("sftp", ["sftp"], "host", sftp),
    backend!("s3", ["s3"], "bucket", s3),
    backend!("webdav", ["webdav+https", "webdav+http"], "host", webdav),
    backend!("gcs", ["gcs", "gs"], "bucket", gcs),
    backend!("azblob", ["azblob"], "container", azblob),
];

/// Makes the URLs of `scheme` open storages served by a backend of the program's own:
/// [`crate::Storage::open`] of such a URL, or of a [`StorageConnection`] with it, calls `open`
/// with the connection (the URL and the options beside it) and serves the backend it returns
/// with the layer stack of every storage. Job files, item readers and writers and the
/// application config then take the scheme like a built-in one. Registering a scheme again
/// replaces its backend.
///
/// The scheme is letters, digits, `+`, `-` and `.`, starting with a letter, at least two
/// characters, and none of ikkatsu's own (`file`, `memory`, `s3`, ...): otherwise this is a
/// [`ikkatsu_core::ErrorKind::Config`] error. Compared in lower case.
pub fn register_scheme<B: StorageBackend>(
    scheme: &str,
    open: fn(&StorageConnection) -> Result<B>,
) -> Result<()> {
    let lower = scheme.to_ascii_lowercase();
    let valid = lower.len() > 1
        && lower.starts_with(|c: char| c.is_ascii_alphabetic())
        && lower
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return Err(Error::config(format!(
            "storage scheme `{scheme}`: a scheme is letters, digits, `+`, `-` and `.`, starting \
             with a letter, at least two characters"
        )));
    }
    let builtin = ["file", "memory"].contains(&lower.as_str())
        || BACKENDS.iter().any(|b| b.schemes.contains(&lower.as_str()));
    if builtin {
        return Err(Error::config(format!(
            "storage scheme `{scheme}` is one of ikkatsu's own; choose another name"
        )));
    }
    custom::register(lower, open);
    Ok(())
}

/// Opens the storage `connection` names: the URL parsed, its query parameters and the
/// connection's options merged, the layer options taken out of them, and the backend found
/// and opened. Returns what the backend opened and the layer options.
pub(crate) fn open(
    connection: &StorageConnection,
    options: &StorageOptions,
    shown: &str,
) -> Result<(Opened, StorageOptions)> {
    let url = StorageUrl::parse(&connection.url)?;
    let query = match &url {
        StorageUrl::Remote(remote) => remote.query.clone(),
        _ => Default::default(),
    };
    let mut settings = Settings::new(query, &connection.options, shown)?;
    let layers = settings.take_layer_options(options)?;
    let opened = match &url {
        StorageUrl::Fs { root } => {
            settings.finish("local file system", &[])?;
            fs::open(root, shown)?
        }
        StorageUrl::Memory { name } => {
            settings.finish("memory", &[])?;
            memory::open(name.as_deref(), shown)?
        }
        StorageUrl::Remote(remote) => match custom::opener(&remote.scheme) {
            Some(open) => open(connection)?,
            None => {
                let backend = find(remote, shown)?;
                let open = backend
                    .open
                    .ok_or_else(|| not_in_build(backend, remote, shown))?;
                open(remote, settings, &layers)?
            }
        },
    };
    Ok((opened, layers))
}

/// The backend of the remote URL `url`: an unknown scheme and a URL without its host (or
/// bucket, or container) are errors.
fn find(url: &RemoteUrl, shown: &str) -> Result<&'static Backend> {
    let Some(backend) = BACKENDS
        .iter()
        .find(|b| b.schemes.contains(&url.scheme.as_str()))
    else {
        let remote: Vec<String> = BACKENDS
            .iter()
            .flat_map(|b| b.schemes.iter().map(|s| s.to_string()))
            .chain(custom::schemes())
            .map(|s| format!("`{s}://`"))
            .collect();
        return Err(Error::config(format!(
            "storage URL {shown}: unknown scheme `{}`; supported: file (`file:///path` or a \
             plain path), `memory:`, {}",
            url.scheme,
            remote.join(", ")
        )));
    };
    if url.host.is_empty() {
        let (scheme, what) = (&url.scheme, backend.host);
        return Err(Error::config(format!(
            "storage URL {shown} names no {what}: write `{scheme}://{what}/path`"
        )));
    }
    Ok(backend)
}

/// The error of a URL whose backend this build does not have.
fn not_in_build(backend: &Backend, url: &RemoteUrl, shown: &str) -> Error {
    Error::config(format!(
        "storage {shown}: the `{}` backend is not part of this build; rebuild ikkatsu with \
         the cargo feature `{}` (the `ikkatsu` command has it by default)",
        url.scheme, backend.feature
    ))
}

#[cfg(test)]
mod tests;
