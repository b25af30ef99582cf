//! # ikkatsu-net
//!
//! How ikkatsu makes network clients, written once for every crate that opens one:
//!
//! * [`install_crypto_provider`]: ring as the process-wide rustls crypto provider, installed
//!   once before the first TLS client is built (FTPS, the HTTP storages, Redis, webhooks);
//! * [`read_ca_file`]: the certificates of a PEM file given as `ca-file`, with a clear error;
//! * [`HttpClientSettings`] and [`build_client`] (feature `http`): a reqwest client with
//!   rustls, ikkatsu's user agent, the trust options and the timeouts, as the S3, WebDAV,
//!   GCS and Azure Blob storages and the `webhook` listener use it.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "http")] {
//! use std::time::Duration;
//! use ikkatsu_net::{HttpClientSettings, build_client};
//!
//! let settings = HttpClientSettings {
//!     timeout: Some(Duration::from_secs(10)),
//!     ..HttpClientSettings::default()
//! };
//! let client = build_client(&settings, "webhook https://hooks.example/x")?;
//! # let _ = client;
//! # }
//! # Ok::<(), ikkatsu_core::Error>(())
//! ```
#![deny(missing_docs)]

#[cfg(feature = "http")]
mod http;
mod tls;

#[cfg(feature = "http")]
pub use http::{HttpClientSettings, USER_AGENT, build_client};
/// The HTTP client crate, for the types of requests and responses.
#[cfg(feature = "http")]
pub use reqwest;
pub use tls::{install_crypto_provider, read_ca_file};
