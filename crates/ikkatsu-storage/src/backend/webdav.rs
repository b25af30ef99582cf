//! WebDAV over HTTP(S): `webdav+https://[user[:password]@]host[:port]/path` (and
//! `webdav+http://`), basic authentication (or a bearer `token`), through OpenDAL's WebDAV
//! service.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, TryStreamExt};
use ikkatsu_core::{Error, Result};
use opendal::Operator;
use opendal::raw::{build_rooted_abs_path, percent_encode_path};
use opendal::services::Webdav;

use super::http::{
    HTTP_OPTIONS, HttpSettings, build_client, reqwest_error, status_error, with_transport,
};
use super::opened::{Opened, StreamUploader};
use crate::error::build_error;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::RemoteUrl;

/// The options of this backend (besides [`HTTP_OPTIONS`]).
const OPTIONS: &[&str] = &["user", "password", "token"];

/// Where and as whom to send requests.
#[derive(Clone)]
struct Target {
    endpoint: String,
    root: String,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// The OpenDAL builder for `url` and its options.
#[cfg(test)]
fn builder(url: &RemoteUrl, settings: &mut Settings) -> Result<Webdav> {
    builder_and_target(url, settings).map(|(b, _)| b)
}

/// The OpenDAL builder for `url` and its options, and where the uploader sends files.
fn builder_and_target(url: &RemoteUrl, settings: &mut Settings) -> Result<(Webdav, Target)> {
    let shown = settings.shown().to_string();
    let https = url.scheme == "webdav+https";
    let (user, password) = settings.take_user_and_password(url)?;
    let token = settings.take("token");
    if token.is_some() && user.is_some() {
        return Err(Error::config(format!(
            "storage {shown}: give a user and password (basic authentication) or a `token`, \
             not both"
        )));
    }
    if !https && (password.is_some() || token.is_some()) {
        tracing::warn!(
            storage = %shown,
            "WebDAV credentials are sent over plain HTTP; use webdav+https:// outside a trusted network"
        );
    }
    let endpoint = format!(
        "{}://{}",
        if https { "https" } else { "http" },
        url.authority()
    );
    let root = format!("/{}", url.path);
    let mut b = Webdav::default().endpoint(&endpoint).root(&root);
    if let Some(user) = &user {
        b = b.username(user);
    }
    if let Some(password) = &password {
        b = b.password(password);
    }
    if let Some(token) = &token {
        b = b.token(token);
    }
    let root = if url.path.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/", url.path)
    };
    Ok((
        b,
        Target {
            endpoint,
            root,
            user,
            password,
            token,
        },
    ))
}

/// OpenDAL's WebDAV writer sends a file in one `PUT` of one buffer: a file written in many
/// chunks would be held whole in memory. This uploader streams the chunks as the body of one
/// `PUT` instead (chunked transfer encoding when the size is unknown).
struct WebdavUploader {
    client: reqwest::Client,
    target: Target,
}

impl StreamUploader for WebdavUploader {
    fn upload<'a>(
        &'a self,
        op: &'a Operator,
        path: &'a str,
        body: BoxStream<'static, Result<Bytes>>,
        size: Option<u64>,
    ) -> BoxFuture<'a, opendal::Result<()>> {
        async move {
            if let Some((parent, _)) = path.rsplit_once('/') {
                op.create_dir(&format!("{parent}/")).await?;
            }
            let abs = build_rooted_abs_path(&self.target.root, path);
            let url = format!("{}{}", self.target.endpoint, percent_encode_path(&abs));
            let mut request = self
                .client
                .put(&url)
                .body(reqwest::Body::wrap_stream(body.map_err(BodyError)));
            if let Some(size) = size {
                request = request.header(http::header::CONTENT_LENGTH, size);
            }
            if let Some(user) = &self.target.user {
                request = request.basic_auth(user, self.target.password.as_deref());
            }
            if let Some(token) = &self.target.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|e| reqwest_error(e, &url))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = response.text().await.unwrap_or_default();
            Err(status_error(status, &url, &text))
        }
        .boxed()
    }
}

/// An error of the body stream, as reqwest wants it.
#[derive(Debug)]
struct BodyError(Error);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Opens a WebDAV storage.
pub(crate) fn open(
    url: &RemoteUrl,
    mut settings: Settings,
    layers: &StorageOptions,
) -> Result<Opened> {
    let (builder, target) = builder_and_target(url, &mut settings)?;
    let http = HttpSettings::take(&mut settings)?;
    let shown = settings.shown().to_string();
    if url.scheme == "webdav+http" && (http.insecure || http.ca_file.is_some()) {
        return Err(Error::config(format!(
            "storage {shown}: `ca-file` and `insecure` apply to TLS; use webdav+https://"
        )));
    }
    settings.finish("webdav", &[OPTIONS, HTTP_OPTIONS].concat())?;
    let operator = Operator::new(builder).map_err(|e| build_error(e, &shown))?;
    let client = build_client(&http, layers, &shown)?;
    let operator = with_transport(operator, client.clone(), &http);
    let mut opened = Opened::remote(operator);
    opened.uploader = Some(Arc::new(WebdavUploader { client, target }));
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::remote as parse;

    #[test]
    fn maps_url_and_options() {
        let url = parse("webdav+https://alice:pw@dav.example.org:8443/remote.php/dav/files");
        let mut s = Settings::new(url.query.clone(), &Default::default(), "x").unwrap();
        let b = builder(&url, &mut s).unwrap();
        let debug = format!("{b:?}");
        assert!(debug.contains("https://dav.example.org:8443"), "{debug}");
        assert!(debug.contains("/remote.php/dav/files"), "{debug}");
        assert!(!debug.contains("pw"), "{debug}");

        let url = parse("webdav+http://h/d?token=t&user=u");
        let mut s = Settings::new(url.query.clone(), &Default::default(), "x").unwrap();
        let err = builder(&url, &mut s).unwrap_err();
        assert!(err.message().contains("not both"), "{}", err.message());
    }
}
