//! Backends: one module per storage kind. Each turns its URL form and options into an OpenDAL
//! operator and says what it can do; adding a backend means one new module and one line in
//! [`open`].

#[cfg(feature = "azblob")]
pub(crate) mod azblob;
pub(crate) mod fs;
#[cfg(feature = "ftp")]
pub(crate) mod ftp;
#[cfg(feature = "gcs")]
pub(crate) mod gcs;
#[cfg(feature = "__http")]
pub(crate) mod http;
pub(crate) mod memory;
#[cfg(feature = "s3")]
pub(crate) mod s3;
#[cfg(feature = "sftp")]
pub(crate) mod sftp;
#[cfg(feature = "__tls")]
pub(crate) mod tls;
#[cfg(feature = "webdav")]
pub(crate) mod webdav;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use ikkatsu_core::{Error, Result};
use opendal::Operator;

use crate::connection::Settings;
use crate::layers::StorageOptions;
use crate::url::{RemoteUrl, StorageUrl};

/// What a backend hands to [`crate::Storage`].
pub(crate) struct Opened {
    /// The operator without layers.
    pub(crate) operator: Operator,
    /// The local root directory, for backends that are the local file system: the walker
    /// and conditional writes use it directly.
    pub(crate) local_root: Option<PathBuf>,
    /// Whether stat and listings report modification times.
    pub(crate) reports_modified: bool,
    /// Streams writes of many chunks, for backends whose OpenDAL writer takes one chunk only.
    pub(crate) uploader: Option<Arc<dyn StreamUploader>>,
    /// Writes empty files, for backends whose OpenDAL writer writes nothing then.
    pub(crate) empty_files: Option<Arc<dyn EmptyFileWriter>>,
    /// Reads of a missing file must be answered by a stat first (FTPS: the read of a
    /// missing file waits for a data connection the server never opens).
    pub(crate) stat_before_read: bool,
    /// A listing reports what a stat would (size, modification time to the same
    /// precision), so a listed file may be read without a stat first (SFTP: both come from
    /// the same attributes).
    pub(crate) listing_is_stat: bool,
}

/// Creates (or truncates) an empty file where OpenDAL's writer, given no bytes, leaves the
/// path untouched (FTP): without it, writing an empty result over a file would keep the old
/// content.
pub(crate) trait EmptyFileWriter: Send + Sync {
    /// Makes `path` an empty file, creating its parent directories.
    fn create_empty<'a>(&'a self, path: &'a str) -> BoxFuture<'a, opendal::Result<()>>;
}

/// Writes a stream of chunks to a path without holding them all, where OpenDAL's writer
/// would (WebDAV: one `PUT` with the stream as its body).
pub(crate) trait StreamUploader: Send + Sync {
    /// Writes `body` to `path`; `size` is its length when known. `op` is the storage's
    /// operator, for what OpenDAL does (creating parent directories).
    fn upload<'a>(
        &'a self,
        op: &'a Operator,
        path: &'a str,
        body: BoxStream<'static, Result<Bytes>>,
        size: Option<u64>,
    ) -> BoxFuture<'a, opendal::Result<()>>;

    /// Whether every write goes through the uploader, single chunks too; otherwise only
    /// writes of a stream or a local file do.
    fn all_writes(&self) -> bool {
        false
    }
}

impl Opened {
    /// A remote backend's operator.
    #[allow(dead_code)]
    pub(crate) fn remote(operator: Operator) -> Opened {
        Opened {
            operator,
            local_root: None,
            reports_modified: true,
            uploader: None,
            empty_files: None,
            stat_before_read: false,
            listing_is_stat: false,
        }
    }
}

/// The registry of backends. `settings` holds the URL's query parameters and the
/// connection's options, the layer options already taken out.
pub(crate) fn open(
    url: &StorageUrl,
    settings: Settings,
    layers: &StorageOptions,
    shown: &str,
) -> Result<Opened> {
    match url {
        StorageUrl::Fs { root } => {
            settings.finish("local file system", &[])?;
            fs::open(root, shown)
        }
        StorageUrl::Memory { name } => {
            settings.finish("memory", &[])?;
            memory::open(name.as_deref(), shown)
        }
        StorageUrl::Remote(remote) => open_remote(remote, settings, layers, shown),
    }
}

#[allow(unused_variables)]
fn open_remote(
    url: &RemoteUrl,
    settings: Settings,
    layers: &StorageOptions,
    shown: &str,
) -> Result<Opened> {
    match url.scheme.as_str() {
        #[cfg(feature = "ftp")]
        "ftp" | "ftps" => ftp::open(url, settings, layers),
        #[cfg(feature = "sftp")]
        "sftp" => sftp::open(url, settings, layers),
        #[cfg(feature = "s3")]
        "s3" => s3::open(url, settings, layers),
        #[cfg(feature = "webdav")]
        "webdav+http" | "webdav+https" => webdav::open(url, settings, layers),
        #[cfg(feature = "gcs")]
        "gcs" => gcs::open(url, settings, layers),
        #[cfg(feature = "azblob")]
        "azblob" => azblob::open(url, settings, layers),
        scheme => {
            let feature = match scheme {
                "ftps" => "ftp",
                "webdav+http" | "webdav+https" => "webdav",
                other => other,
            };
            Err(Error::config(format!(
                "storage {shown}: the `{scheme}` backend is not part of this build; rebuild \
                 ikkatsu with the cargo feature `{feature}` (the `ikkatsu` command has it by \
                 default)"
            )))
        }
    }
}

/// The error of a builder OpenDAL refused.
#[allow(dead_code)]
pub(crate) fn build_error(err: opendal::Error, shown: &str) -> Error {
    crate::error::parse_error(err, "open", "", shown)
}

/// The user and the password, each given in the URL or as an option (not both); a password
/// needs a user.
#[cfg(any(feature = "ftp", feature = "webdav"))]
pub(crate) fn user_and_password(
    url: &RemoteUrl,
    settings: &mut Settings,
) -> Result<(Option<String>, Option<String>)> {
    let shown = settings.shown().to_string();
    let mut pick = |what: &str, in_url: &Option<String>| match (settings.take(what), in_url) {
        (Some(_), Some(_)) => Err(Error::config(format!(
            "storage {shown}: the {what} is given both in the URL and as the `{what}` option; \
             keep one"
        ))),
        (option, in_url) => Ok(option.or_else(|| in_url.clone())),
    };
    let user = pick("user", &url.user)?;
    let password = pick("password", &url.password)?;
    if password.is_some() && user.is_none() {
        return Err(Error::config(format!(
            "storage {shown}: a password without a user; write `{}://USER@{}/…`",
            url.scheme, url.host
        )));
    }
    Ok((user, password))
}
