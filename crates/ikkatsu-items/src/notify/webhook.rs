//! The `webhook` listener type: posts each event, as JSON, to a URL.
//!
//! The URL and the header values are secrets: the URL is shown with its password and secret
//! query parameters masked ([`ikkatsu_core::secret::mask_url`]), header values are never
//! shown and are recorded for redaction ([`ikkatsu_core::secret::register`]). A failed post
//! (a connection error, a timeout, HTTP 429 or 5xx) is retried with the one retry policy
//! ([`ikkatsu_core::retry`]); another 4xx is not.

use std::time::Duration;

use async_trait::async_trait;
use ikkatsu_net::reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use indexmap::IndexMap;
use serde::Deserialize;

use ikkatsu_config::registry::Listeners;
use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::retry::RetryPolicy;
use ikkatsu_core::secret;
use ikkatsu_core::{CancellationToken, Error, ErrorKind, Result};
use ikkatsu_net::HttpClientSettings;

use super::{Event, EventKind, EventListener, EventSink};

/// How long one post may take unless `timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries after a failed post unless `retries` says otherwise.
const DEFAULT_RETRIES: u32 = 3;

/// Properties of the `webhook` listener type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WebhookListenerConfig {
    /// The `http://` or `https://` URL events are posted to.
    pub url: String,
    /// Headers sent with each post (`Authorization: Bearer …`); their values are secrets.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// The events to post (default: all job or step events of the level the listener is
    /// given at; `storage-calls` and `sql-calls` only when named).
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
    /// How long one post may take, connecting included (default 10s).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Retries after a failed post (default 3), with exponential backoff.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Whether a post that failed after its retries fails the job or step (default
    /// `false`: it is logged as a warning).
    #[serde(default)]
    pub fail_job: bool,
}

/// Posts each event to a URL.
pub struct WebhookListener {
    client: ikkatsu_net::reqwest::Client,
    url: ikkatsu_net::reqwest::Url,
    /// The URL with its secrets masked, for messages.
    shown: String,
    headers: HeaderMap,
    retry: RetryPolicy,
    timeout: Duration,
    fail_job: bool,
}

impl WebhookListener {
    /// The listeners of `config`, for the job `job_name`. Checks the URL and the headers;
    /// opens no connection.
    pub fn listeners(config: WebhookListenerConfig, job_name: &str) -> Result<Listeners> {
        let events = config.events.clone();
        Ok(EventListener::listeners(
            WebhookListener::new(config)?,
            events,
            job_name,
        ))
    }

    /// The listener of `config`.
    pub fn new(config: WebhookListenerConfig) -> Result<Self> {
        secret::register_url(&config.url);
        let shown = secret::mask_url(&config.url);
        let url = ikkatsu_net::reqwest::Url::parse(&config.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::config(format!(
                    "webhook listener: `url` {shown} is not an http:// or https:// URL"
                ))
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &config.headers {
            secret::register(value);
            let header = HeaderName::try_from(name.as_str()).map_err(|_| {
                Error::config(format!(
                    "webhook listener {shown}: `headers` has an invalid header name `{name}`"
                ))
            })?;
            let mut value = HeaderValue::try_from(value.as_str()).map_err(|_| {
                Error::config(format!(
                    "webhook listener {shown}: the value of header `{name}` is not a valid \
                     header value (control characters?)"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let timeout = config
            .timeout
            .map_or(DEFAULT_TIMEOUT, HumanDuration::as_duration);
        let settings = HttpClientSettings {
            connect_timeout: timeout,
            timeout: Some(timeout),
            max_idle_per_host: 1,
            ..HttpClientSettings::default()
        };
        let client = ikkatsu_net::build_client(&settings, &format!("webhook listener {shown}"))?;
        Ok(WebhookListener {
            client,
            url,
            shown,
            headers,
            retry: RetryPolicy::new(config.retries.unwrap_or(DEFAULT_RETRIES)),
            timeout,
            fail_job: config.fail_job,
        })
    }

    /// One post of `body`.
    async fn post(&self, body: &[u8]) -> Result<()> {
        let sent = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                let temporary = err.is_timeout() || err.is_connect() || err.is_request();
                let what = if err.is_timeout() {
                    format!(
                        "no answer within {} (`timeout`)",
                        HumanDuration::from(self.timeout)
                    )
                } else if err.is_connect() {
                    format!("cannot connect: {}", chain(&err.without_url()))
                } else {
                    chain(&err.without_url())
                };
                return Err(Error::new(ErrorKind::Io, what).set_temporary(temporary));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let temporary = status.is_server_error() || status.as_u16() == 429;
        Err(Error::new(ErrorKind::Io, format!("HTTP {status}")).set_temporary(temporary))
    }
}

/// An error and its sources, on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

#[async_trait]
impl EventSink for WebhookListener {
    async fn notify(&self, event: &Event) -> Result<()> {
        let body = serde_json::to_vec(event)
            .map_err(|err| Error::new(ErrorKind::Component, err.to_string()))?;
        let posted = self
            .retry
            .run(&CancellationToken::new(), || self.post(&body))
            .await;
        let Err(err) = posted else {
            return Ok(());
        };
        let message = format!(
            "webhook listener: posting {} to {} failed: {err}",
            event.event.name(),
            self.shown
        );
        let message = secret::redact(&message).into_owned();
        if self.fail_job {
            return Err(Error::new(ErrorKind::Component, message));
        }
        tracing::warn!("{message} (ignored: set `fail-job: true` to fail on it)");
        Ok(())
    }
}
