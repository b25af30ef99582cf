//! What every broker client knows of where it talks to: the URL (kept secret), the URL as
//! shown (password masked), the queue; and the one way a broker error is worded.

use std::fmt::Display;

use ikkatsu_config::registry::BrokerSettings;
use ikkatsu_core::secret;
use ikkatsu_core::{Error, ErrorKind, Result};

/// A broker URL and queue.
pub(crate) struct Endpoint {
    /// The broker's name in messages (`RabbitMQ`, `NATS JetStream`).
    pub(crate) broker: &'static str,
    /// The URL as written (it may hold a password: never shown).
    pub(crate) url: String,
    /// The URL with its password and secret query parameters masked.
    pub(crate) shown: String,
    /// The password of the URL (raw and percent-decoded), to scrub from library errors.
    secrets: Vec<String>,
    /// The queue (RabbitMQ) or subject (NATS) requests travel on.
    pub(crate) queue: String,
}

impl Endpoint {
    /// The endpoint of `settings`; the queue must not be empty. Records the URL's secrets
    /// for redaction.
    pub(crate) fn new(broker: &'static str, settings: &BrokerSettings) -> Result<Self> {
        let shown = secret::mask_url(&settings.url);
        if settings.queue.trim().is_empty() {
            return Err(Error::config(format!(
                "{broker} broker {shown}: the queue name is empty; name one (e.g. ikkatsu.partitions)"
            )));
        }
        secret::register_url(&settings.url);
        let mut secrets = Vec::new();
        if let Some(password) = password(&settings.url) {
            let decoded = secret::percent_decode(password);
            secrets.push(password.to_string());
            if decoded != password {
                secrets.push(decoded);
            }
        }
        Ok(Endpoint {
            broker,
            url: settings.url.clone(),
            shown,
            secrets,
            queue: settings.queue.clone(),
        })
    }

    /// `<masked url> queue <queue>`, for logs.
    pub(crate) fn describe(&self) -> String {
        format!("{} queue {}", self.shown, self.queue)
    }

    /// `text` without the URL's password.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.url, &self.shown);
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), secret::MASK);
        }
        secret::redact(&text).into_owned()
    }

    /// An error of the broker: `<broker> broker <url> queue <queue>: <what>: <cause>`, the
    /// cause scrubbed of the password. Temporary when `temporary` (a connection that may
    /// come back).
    pub(crate) fn error(&self, what: &str, cause: impl Display, temporary: bool) -> Error {
        self.build(what, cause, "", temporary)
    }

    /// The error of a connection that failed or was lost (temporary), ending with what to
    /// check.
    pub(crate) fn connection_error(&self, what: &str, cause: impl Display) -> Error {
        self.build(
            what,
            cause,
            "; is the broker running, and are the URL and its credentials right?",
            true,
        )
    }

    fn build(&self, what: &str, cause: impl Display, hint: &str, temporary: bool) -> Error {
        let kind = if temporary {
            ErrorKind::Io
        } else {
            ErrorKind::Component
        };
        Error::new(
            kind,
            format!(
                "{} broker {}: {what}: {}{hint}",
                self.broker,
                self.describe(),
                self.scrub(&cause.to_string())
            ),
        )
        .set_temporary(temporary)
    }
}

/// The password in `scheme://user:password@host…`, as written.
fn password(url: &str) -> Option<&str> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = start + url[start..end].rfind('@')?;
    let colon = start + url[start..at].find(':')?;
    let password = &url[colon + 1..at];
    (!password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_scrubbed_and_masked() {
        let endpoint = Endpoint::new(
            "RabbitMQ",
            &BrokerSettings::new("amqp://bob:p%40ss@host:5672/%2f", "q"),
        )
        .unwrap();
        assert_eq!(endpoint.describe(), "amqp://bob:***@host:5672/%2f queue q");
        let err = endpoint.error("connecting", "auth p@ss and p%40ss failed", true);
        assert!(!err.message().contains("p@ss"), "{err}");
        assert!(!err.message().contains("p%40ss"), "{err}");
        assert!(err.is_temporary());
        assert!(
            err.message()
                .starts_with("RabbitMQ broker amqp://bob:***@host")
        );
    }

    #[test]
    fn an_empty_queue_is_refused() {
        let err = Endpoint::new("NATS JetStream", &BrokerSettings::new("nats://h:4222", " "))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("queue name is empty"), "{err}");
    }

    #[test]
    fn password_is_found_only_in_the_authority() {
        assert_eq!(password("amqp://u:pw@h/%2f"), Some("pw"));
        assert_eq!(password("amqp://u@h/%2f"), None);
        assert_eq!(password("amqp://h/a:b@c"), None);
        assert_eq!(password("nats://:tok@h"), Some("tok"));
    }
}
