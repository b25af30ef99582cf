//! The one way an HTTP client is built: reqwest with rustls (ring), ikkatsu's user agent,
//! the trust options (`ca-file`, `insecure`), connection reuse and timeouts.

use std::path::PathBuf;
use std::time::Duration;

use ikkatsu_core::{Error, Result};

use crate::tls::{install_crypto_provider, read_ca_file};

/// The `User-Agent` of every request ikkatsu sends.
pub const USER_AGENT: &str = concat!("ikkatsu/", env!("CARGO_PKG_VERSION"));

/// What an HTTP client is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpClientSettings {
    /// PEM file with CA certificates trusted in addition to the system store.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. The caller warns about it: it knows what the client is for.
    pub insecure: bool,
    /// The longest wait for a connection (default 30s).
    pub connect_timeout: Duration,
    /// The longest wait for each read of a response (none by default).
    pub read_timeout: Option<Duration>,
    /// The longest a whole request may take, response body included (none by default).
    pub timeout: Option<Duration>,
    /// Idle connections kept per host (default 8).
    pub max_idle_per_host: usize,
}

impl Default for HttpClientSettings {
    fn default() -> Self {
        HttpClientSettings {
            ca_file: None,
            insecure: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: None,
            timeout: None,
            max_idle_per_host: 8,
        }
    }
}

/// Builds the HTTP client of `settings`; `what` names the client in errors
/// (`storage s3://bucket`, `webhook https://hooks.example/…`).
pub fn build_client(settings: &HttpClientSettings, what: &str) -> Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(settings.max_idle_per_host.max(1))
        .tcp_keepalive(Duration::from_secs(30));
    if let Some(read) = settings.read_timeout {
        builder = builder.read_timeout(read);
    }
    if let Some(total) = settings.timeout {
        builder = builder.timeout(total);
    }
    if let Some(path) = &settings.ca_file {
        let certs = read_ca_file(path, what)?
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<reqwest::Result<Vec<_>>>()
            .map_err(|e| {
                Error::config(format!(
                    "{what}: `ca-file` {} holds no usable PEM certificate: {e}",
                    path.display()
                ))
            })?;
        builder = builder.tls_certs_merge(certs);
    }
    if settings.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| {
        Error::config(format!("{what}: cannot build the HTTP client: {e}")).with_source(e)
    })
}
