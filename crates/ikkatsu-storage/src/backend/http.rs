//! The HTTP client of the HTTP backends (S3, WebDAV, GCS, Azure Blob): one reqwest client per
//! storage with its TLS trust (`ca-file`, `insecure`), connection reuse and timeouts, behind a
//! transport that refuses bad certificates and rejected credentials without retrying them and
//! masks secrets in the URLs errors carry.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ikkatsu_core::{Error, Result};
use opendal::OperationContext;
use opendal::layers::CapabilityOverrideLayer;
use opendal::{Buffer, HttpBody, HttpTransport, HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::opened::Opened;
use super::tls::{TlsSettings, warn_insecure};
use crate::error::{AUTH_MARK, TLS_MARK, build_error};
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::{RemoteUrl, mask_secrets};
use ikkatsu_net::HttpClientSettings;

/// Options every HTTP backend understands.
pub(crate) const HTTP_OPTIONS: &[&str] = &["ca-file", "insecure", "conditional-write"];

/// The TLS settings of an HTTP backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HttpSettings {
    /// PEM file with CA certificates trusted in addition to the system store.
    pub(crate) ca_file: Option<PathBuf>,
    /// Accept any certificate (logs a warning).
    pub(crate) insecure: bool,
    /// Use the backend's atomic conditional writes (`If-Match`, generation match); `false`
    /// for S3-compatible servers that do not implement them.
    pub(crate) conditional_write: bool,
}

impl HttpSettings {
    /// Takes `ca-file`, `insecure` and `conditional-write` from the settings.
    pub(crate) fn take(settings: &mut Settings) -> Result<HttpSettings> {
        let tls = TlsSettings::take(settings)?;
        Ok(HttpSettings {
            ca_file: tls.ca_file,
            insecure: tls.insecure,
            conditional_write: settings.take_bool("conditional-write")?.unwrap_or(true),
        })
    }
}

/// An object store's URL names the bucket (or container) and a prefix only: a user, a
/// password or a port is refused, with `hint` saying where they go instead.
#[allow(dead_code)] // Not with the `webdav` feature alone.
pub(crate) fn bucket_only(url: &RemoteUrl, shown: &str, hint: &str) -> Result<()> {
    if url.user.is_some() || url.password.is_some() || url.port.is_some() {
        return Err(Error::config(format!("storage {shown}: {hint}")));
    }
    Ok(())
}

/// The builder `builder` makes of `url` and its query, the options it leaves refused as
/// `finish` refuses them (tests of the object stores).
#[cfg(test)]
#[allow(dead_code)] // Not with the `webdav` or `s3` feature alone.
pub(crate) fn build_from<B>(
    url: &str,
    backend: (&str, &[&str]),
    builder: fn(&RemoteUrl, &mut Settings) -> Result<B>,
) -> Result<B> {
    let url = crate::url::remote(url);
    let mut settings = Settings::new(url.query.clone(), &Default::default(), backend.0)?;
    let built = builder(&url, &mut settings)?;
    settings.finish(backend.0, backend.1)?;
    Ok(built)
}

/// An endpoint must be an `http://` or `https://` URL.
#[allow(dead_code)] // Not with the `webdav` feature alone.
pub(crate) fn check_endpoint(endpoint: &str, shown: &str) -> Result<()> {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        Ok(())
    } else {
        Err(Error::config(format!(
            "storage {shown}: `endpoint` must be an http:// or https:// URL, not `{endpoint}`"
        )))
    }
}

/// Opens an object store of OpenDAL's (S3, GCS, Azure Blob): `builder` makes the service's
/// builder from the URL and the backend's options (`backend`: its name and its options
/// besides [`HTTP_OPTIONS`]), then the storage gets its own HTTP client.
#[allow(dead_code)] // Not with the `webdav` feature alone.
pub(crate) fn open_object_store<B: opendal::Builder>(
    url: &RemoteUrl,
    mut settings: Settings,
    layers: &StorageOptions,
    backend: (&str, &[&str]),
    builder: fn(&RemoteUrl, &mut Settings) -> Result<B>,
) -> Result<Opened> {
    let builder = builder(url, &mut settings)?;
    let http = HttpSettings::take(&mut settings)?;
    let shown = settings.shown().to_string();
    let (name, options) = backend;
    settings.finish(name, &[options, HTTP_OPTIONS].concat())?;
    let operator = Operator::new(builder).map_err(|e| build_error(e, &shown))?;
    let operator = with_client(operator, &http, layers, &shown)?;
    Ok(Opened::remote(operator))
}

/// Gives `op` its own HTTP client built from `http` and the layer options.
#[allow(dead_code)] // Not with the `webdav` feature alone.
pub(crate) fn with_client(
    op: Operator,
    http: &HttpSettings,
    layers: &StorageOptions,
    shown: &str,
) -> Result<Operator> {
    let client = build_client(http, layers, shown)?;
    Ok(with_transport(op, client, http))
}

/// The HTTP client of one storage: its TLS trust, connection reuse and timeouts.
pub(crate) fn build_client(
    http: &HttpSettings,
    layers: &StorageOptions,
    shown: &str,
) -> Result<reqwest::Client> {
    if http.insecure {
        warn_insecure(shown);
    }
    let settings = HttpClientSettings {
        ca_file: http.ca_file.clone(),
        insecure: http.insecure,
        connect_timeout: layers.timeout.min(Duration::from_secs(30)),
        read_timeout: Some(layers.io_timeout),
        timeout: None,
        max_idle_per_host: layers.concurrency,
    };
    ikkatsu_net::build_client(&settings, &format!("storage {shown}"))
}

/// `op` sending its requests with `client`, through the transport that makes errors clear.
pub(crate) fn with_transport(
    op: Operator,
    client: reqwest::Client,
    http: &HttpSettings,
) -> Operator {
    let transport = HttpTransporter::new(IkkatsuTransport {
        inner: ReqwestTransport::new(client),
    });
    let op = op.with_context(OperationContext::new().with_http_transport(transport));
    if http.conditional_write {
        op
    } else {
        op.layer(CapabilityOverrideLayer::new(|mut capability| {
            capability.write_with_if_match = false;
            capability.write_with_if_version_match = false;
            capability
        }))
    }
}

/// An error of reqwest sending a request ikkatsu built itself (not through OpenDAL), made
/// like the transport's errors.
#[allow(dead_code)] // Used by the `webdav` feature only.
pub(crate) fn reqwest_error(err: reqwest::Error, shown: &str) -> opendal::Error {
    let temporary = err.is_connect() || err.is_request() || err.is_body() || err.is_timeout();
    transport_error(
        opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request")
            .with_temporary(temporary)
            .set_source(err.without_url()),
        shown,
    )
}

/// The error of a response with a failure `status` to a request ikkatsu built itself.
#[allow(dead_code)] // Used by the `webdav` feature only.
pub(crate) fn status_error(status: http::StatusCode, shown: &str, body: &str) -> opendal::Error {
    let detail = summarize_body(body);
    match status.as_u16() {
        401 => opendal::Error::new(
            opendal::ErrorKind::PermissionDenied,
            format!("{AUTH_MARK}: HTTP 401 Unauthorized from {shown}{detail}"),
        ),
        403 => opendal::Error::new(
            opendal::ErrorKind::PermissionDenied,
            format!("access refused: HTTP 403 Forbidden from {shown}{detail}"),
        ),
        404 | 409 => opendal::Error::new(
            opendal::ErrorKind::NotFound,
            format!("HTTP {status} from {shown}{detail}"),
        ),
        412 => opendal::Error::new(
            opendal::ErrorKind::ConditionNotMatch,
            format!("HTTP {status} from {shown}{detail}"),
        ),
        429 => opendal::Error::new(
            opendal::ErrorKind::RateLimited,
            format!("HTTP {status} from {shown}{detail}"),
        )
        .set_temporary(),
        _ => opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            format!("HTTP {status} from {shown}{detail}"),
        )
        .with_temporary(status.is_server_error()),
    }
}

/// The reqwest transport, with errors made clear.
struct IkkatsuTransport {
    inner: ReqwestTransport,
}

impl fmt::Debug for IkkatsuTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IkkatsuTransport").finish()
    }
}

impl HttpTransport for IkkatsuTransport {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        let uri = req.uri().clone();
        let shown = mask_secrets(&uri.to_string());
        let mut resp = match self.inner.fetch(req).await {
            Ok(resp) => resp,
            Err(err) => return Err(transport_error(err, &shown)),
        };
        // Errors built by the services name the URI they find here: mask it.
        if let Ok(masked) = shown.parse::<http::Uri>() {
            resp.extensions_mut().insert(masked);
        }
        let status = resp.status();
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
            let (_, mut body) = resp.into_parts();
            let text = body
                .to_buffer()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            let detail = summarize_body(&text);
            let message = if status == http::StatusCode::UNAUTHORIZED {
                format!("{AUTH_MARK}: HTTP 401 Unauthorized from {shown}{detail}")
            } else {
                format!("access refused: HTTP 403 Forbidden from {shown}{detail}")
            };
            return Err(opendal::Error::new(
                opendal::ErrorKind::PermissionDenied,
                message,
            ));
        }
        Ok(resp)
    }
}

/// An error of the transport itself: a refused certificate is permanent and says so; others
/// keep their kind and temporariness, with the URL masked.
fn transport_error(err: opendal::Error, shown: &str) -> opendal::Error {
    let chain = error_chain(&err);
    let tls = find_tls_error(&err);
    if let Some(detail) = tls {
        return opendal::Error::new(
            opendal::ErrorKind::PermissionDenied,
            format!("{TLS_MARK} by {shown}: {detail}"),
        )
        .with_operation("http::fetch");
    }
    opendal::Error::new(err.kind(), format!("{}: {chain}", err.message()))
        .with_operation("http::fetch")
        .with_context("url", shown)
        .with_temporary(err.is_temporary())
        .set_source(std::io::Error::new(
            io_kind(&err).unwrap_or(std::io::ErrorKind::Other),
            chain,
        ))
}

fn error_chain(err: &opendal::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    if parts.is_empty() {
        err.message().to_string()
    } else {
        parts.join(": ")
    }
}

fn io_kind(err: &opendal::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

fn find_tls_error(err: &opendal::Error) -> Option<String> {
    let mut stack: Vec<&(dyn std::error::Error + 'static)> =
        std::error::Error::source(err).into_iter().collect();
    while let Some(e) = stack.pop() {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            stack.push(inner);
        }
        let text = e.to_string();
        if text.contains("invalid peer certificate") {
            return Some(text);
        }
        if let Some(next) = e.source() {
            stack.push(next);
        }
    }
    None
}

/// A short excerpt of an error response body (an S3 `<Code>`, a JSON message), or nothing.
fn summarize_body(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    if let (Some(start), Some(end)) = (text.find("<Code>"), text.find("</Code>"))
        && start + 6 <= end
    {
        return format!(" ({})", &text[start + 6..end]);
    }
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = one_line.chars().take(200).collect();
    if one_line.chars().count() > 200 {
        short.push('…');
    }
    format!(" ({short})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_summaries() {
        assert_eq!(summarize_body(""), "");
        assert_eq!(
            summarize_body("<Error><Code>InvalidAccessKeyId</Code><Message>x</Message></Error>"),
            " (InvalidAccessKeyId)"
        );
        assert_eq!(summarize_body("  no\n  access "), " (no access)");
    }

    #[test]
    fn tls_errors_are_permanent_permission_errors() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let err = opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request")
            .with_context("url", "https://h/?sig=secret")
            .set_temporary()
            .set_source(io);
        let mapped = transport_error(err, "https://h/?sig=***");
        assert_eq!(mapped.kind(), opendal::ErrorKind::PermissionDenied);
        assert!(!mapped.is_temporary());
        assert!(mapped.to_string().contains(TLS_MARK), "{mapped}");
        assert!(!mapped.to_string().contains("secret"), "{mapped}");
    }

    #[test]
    fn other_errors_keep_kind_and_temporariness_without_the_url() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request")
            .with_context("url", "https://h/?sig=secret")
            .set_temporary()
            .set_source(io);
        let mapped = transport_error(err, "https://h/?sig=***");
        assert!(mapped.is_temporary());
        assert!(!mapped.to_string().contains("secret"), "{mapped}");
        assert!(mapped.to_string().contains("refused"), "{mapped}");
    }
}
