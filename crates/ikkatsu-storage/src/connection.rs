//! [`StorageConnection`]: a storage URL with settings given beside it (a named storage of the
//! application config).

use std::collections::BTreeMap;
use std::fmt;

use ikkatsu_core::{Error, Result};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::url::{is_secret_key, mask_secrets, normalize_key};

/// A storage URL and options given apart from it, for instance a named storage of the
/// application config:
///
/// ```yaml
/// inbox:
///   url: sftp://batch@files.example.org/srv/inbox
///   key-file: /etc/ikkatsu/id_ed25519
///   key-passphrase: file:///run/secrets/inbox-passphrase
///   known-hosts: /etc/ikkatsu/known_hosts
/// ```
///
/// Options are the query parameters of the URL written as fields (`docs/storage.md` lists them
/// per backend); an option may not be given both ways. `Debug` masks secrets.
///
/// It deserializes from a plain URL string or from a map with `url` and the options (strings,
/// booleans or numbers).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageConnection {
    /// The storage URL.
    pub url: String,
    /// Options by name (`key-file`, `region`, `password`, `timeout`, ...).
    pub options: BTreeMap<String, String>,
}

impl StorageConnection {
    /// A connection to `url` without further options.
    pub fn new(url: impl Into<String>) -> Self {
        StorageConnection {
            url: url.into(),
            options: BTreeMap::new(),
        }
    }

    /// Adds the option `key` (normalized: `secret_access_key` is `secret-access-key`).
    pub fn with_option(mut self, key: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.options
            .insert(normalize_key(key.as_ref()), value.into());
        self
    }

    /// The URL with its secrets masked.
    pub fn shown_url(&self) -> String {
        mask_secrets(&self.url)
    }

    /// The URL with the options appended as query parameters, for code that takes a URL:
    /// [`Storage::open`](crate::Storage::open) of it opens the same storage. It holds the secrets in clear: do not
    /// show it ([`mask_secrets`](crate::mask_secrets) masks it). Local (`file:`, plain path)
    /// and `memory:` URLs take no query parameters: with options they are an error.
    pub fn to_url(&self) -> Result<String> {
        if self.options.is_empty() {
            return Ok(self.url.clone());
        }
        let remote = matches!(
            crate::url::StorageUrl::parse(&self.url)?,
            crate::url::StorageUrl::Remote(_)
        );
        if !remote {
            return Err(Error::config(format!(
                "storage {}: a local or memory storage takes no options ({}); remove them",
                self.shown_url(),
                self.options
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut url = self.url.clone();
        let mut separator = if url.contains('?') { '&' } else { '?' };
        for (key, value) in &self.options {
            url.push(separator);
            url.push_str(&query_escape(key));
            url.push('=');
            url.push_str(&query_escape(value));
            separator = '&';
        }
        Ok(url)
    }
}

/// Percent-encodes everything but unreserved characters, for a query parameter.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl fmt::Debug for StorageConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret_key(k) { "***" } else { v.as_str() },
                )
            })
            .collect();
        f.debug_struct("StorageConnection")
            .field("url", &self.shown_url())
            .field("options", &options)
            .finish()
    }
}

impl From<&str> for StorageConnection {
    fn from(url: &str) -> Self {
        StorageConnection::new(url)
    }
}

impl From<String> for StorageConnection {
    fn from(url: String) -> Self {
        StorageConnection::new(url)
    }
}

impl<'de> Deserialize<'de> for StorageConnection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(ConnectionVisitor)
    }
}

struct ConnectionVisitor;

impl<'de> Visitor<'de> for ConnectionVisitor {
    type Value = StorageConnection;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a storage URL, or a map with `url` and the storage's options")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(StorageConnection::new(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(StorageConnection::new(v))
    }

    // A scalar that is not a string stands for its text, as it does for other string
    // fields of the configuration (`1` is the relative path `1`).
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        Ok(StorageConnection::new(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        Ok(StorageConnection::new(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
        Ok(StorageConnection::new(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Ok(StorageConnection::new(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut url = None;
        let mut options = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Scalar>()?.0;
            let normalized = normalize_key(&key);
            if normalized == "url" {
                url = Some(value);
            } else if options.insert(normalized.clone(), value).is_some() {
                return Err(de::Error::custom(format!(
                    "the storage option `{normalized}` is given twice"
                )));
            }
        }
        let url = url.ok_or_else(|| {
            de::Error::custom("a storage given as a map needs `url` (e.g. `url: sftp://host/dir`)")
        })?;
        Ok(StorageConnection { url, options })
    }
}

/// A string, boolean or number, as text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a boolean or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_url_round_trips_through_the_parser() {
        let conn = StorageConnection::new("sftp://u@h:22/d?timeout=5s")
            .with_option("key-passphrase", "p&q=r #%")
            .with_option("known-hosts", "/etc/ssh/known hosts");
        let url = conn.to_url().unwrap();
        let parsed = match crate::url::StorageUrl::parse(&url).unwrap() {
            crate::url::StorageUrl::Remote(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(parsed.query["key-passphrase"], "p&q=r #%");
        assert_eq!(parsed.query["known-hosts"], "/etc/ssh/known hosts");
        assert_eq!(parsed.query["timeout"], "5s");
        assert!(
            !mask_secrets(&url).contains("p%26q"),
            "{}",
            mask_secrets(&url)
        );
        assert_eq!(
            StorageConnection::new("memory:").to_url().unwrap(),
            "memory:"
        );
        assert!(
            StorageConnection::new("/data")
                .with_option("timeout", "1s")
                .to_url()
                .is_err()
        );
    }

    #[test]
    fn debug_masks_secrets() {
        let conn = StorageConnection::new("ftp://u:hunter2@h/d")
            .with_option("password", "hunter3")
            .with_option("secret_access_key", "hunter4")
            .with_option("key-file", "/k");
        let debug = format!("{conn:?}");
        assert!(!debug.contains("hunter"), "{debug}");
        assert!(debug.contains("/k"), "{debug}");
        assert!(debug.contains("secret-access-key"), "{debug}");
    }
}
