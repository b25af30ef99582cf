//! [`StorageConnection`]: a storage URL with settings given beside it (a named storage of the
//! application config), and the [`Settings`] every backend reads its options from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{Error, Result};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::layers::StorageOptions;
use crate::storage::Storage;
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

    /// Opens the storage with the default [`StorageOptions`].
    pub fn open(&self) -> Result<Storage> {
        Storage::open_connection(self, &StorageOptions::default())
    }

    /// The URL with the options appended as query parameters, for code that takes a URL:
    /// [`Storage::open`] of it opens the same storage. It holds the secrets in clear: do not
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

/// The options of one storage being opened: the URL's query parameters and the connection's
/// options together. Backends take what they understand; [`Settings::finish`] refuses the
/// rest, so a typo is an error rather than a silently ignored option.
pub(crate) struct Settings {
    values: BTreeMap<String, String>,
    shown: String,
}

impl Settings {
    /// Merges the URL's query parameters with the connection's options; an option given both
    /// ways is an error.
    pub(crate) fn new(
        query: BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
        shown: &str,
    ) -> Result<Settings> {
        let mut values = query;
        for (key, value) in options {
            let key = normalize_key(key);
            if values.contains_key(&key) {
                return Err(Error::config(format!(
                    "storage {shown}: the option `{key}` is given both in the URL and beside it; keep one"
                )));
            }
            values.insert(key, value.clone());
        }
        for (key, value) in &values {
            if is_secret_key(key) {
                // Redacted from every log line and message from now on.
                ikkatsu_core::secret::register(value);
            }
        }
        Ok(Settings {
            values,
            shown: shown.to_string(),
        })
    }

    /// The URL with secrets masked, for messages.
    #[allow(dead_code)] // Used by the remote backends, which are features.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Removes and returns the option `key`, an empty value counting as absent.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key).filter(|v| !v.is_empty())
    }

    /// Whether the option `key` is present (it is not removed).
    #[allow(dead_code)] // Used by the remote backends, which are features.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// A boolean option: `true`/`false`, `yes`/`no`, `1`/`0`, `on`/`off`.
    #[allow(dead_code)] // Used by the remote backends, which are features.
    pub(crate) fn take_bool(&mut self, key: &str) -> Result<Option<bool>> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(Some(true)),
            "false" | "no" | "0" | "off" => Ok(Some(false)),
            _ => Err(Error::config(format!(
                "storage {}: `{key}` must be true or false, not `{value}`",
                self.shown
            ))),
        }
    }

    /// A duration option (`30s`, `5m`, `1h30m`; a unit is required).
    pub(crate) fn take_duration(&mut self, key: &str) -> Result<Option<Duration>> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        value
            .parse::<HumanDuration>()
            .map(|d| Some(d.as_duration()))
            .map_err(|e| e.context(format!("storage {}: `{key}`", self.shown)))
    }

    /// A non-negative integer option.
    pub(crate) fn take_usize(&mut self, key: &str) -> Result<Option<usize>> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        value.trim().parse::<usize>().map(Some).map_err(|_| {
            Error::config(format!(
                "storage {}: `{key}` must be a whole number, not `{value}`",
                self.shown
            ))
        })
    }

    /// A path option naming a file that must exist (a key, a CA bundle, known_hosts).
    #[allow(dead_code)] // Used by the remote backends, which are features.
    pub(crate) fn take_file(&mut self, key: &str) -> Result<Option<PathBuf>> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let path = PathBuf::from(value.strip_prefix("file://").unwrap_or(&value));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(path)),
            Ok(_) => Err(Error::config(format!(
                "storage {}: `{key}` {} is not a file",
                self.shown,
                path.display()
            ))),
            Err(e) => Err(Error::io(
                format!(
                    "storage {}: `{key}` {}: cannot read it; fix the path",
                    self.shown,
                    path.display()
                ),
                e,
            )
            .set_temporary(false)),
        }
    }

    /// The layer options: `options` with `timeout`, `io-timeout`, `retries` and
    /// `concurrency` taken from the settings when given.
    pub(crate) fn take_layer_options(
        &mut self,
        options: &StorageOptions,
    ) -> Result<StorageOptions> {
        let mut out = options.clone();
        if let Some(t) = self.take_duration("timeout")? {
            out.timeout = t;
        }
        if let Some(t) = self.take_duration("io-timeout")? {
            out.io_timeout = t;
        }
        if let Some(n) = self.take_usize("retries")? {
            out.retries = n;
        }
        if let Some(n) = self.take_usize("concurrency")? {
            if n == 0 {
                return Err(Error::config(format!(
                    "storage {}: `concurrency` must be at least 1",
                    self.shown
                )));
            }
            out.concurrency = n;
        }
        Ok(out)
    }

    /// Refuses the options nobody took, naming the backend's known options.
    pub(crate) fn finish(self, backend: &str, known: &[&str]) -> Result<()> {
        if self.values.is_empty() {
            return Ok(());
        }
        let unknown: Vec<&str> = self.values.keys().map(String::as_str).collect();
        let mut known: Vec<&str> = known
            .iter()
            .copied()
            .chain(["timeout", "io-timeout", "retries", "concurrency"])
            .collect();
        known.sort_unstable();
        Err(Error::config(format!(
            "storage {}: unknown option{} {} for the {backend} backend; known options: {}",
            self.shown,
            if unknown.len() == 1 { "" } else { "s" },
            unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_merge_take_and_refuse_unknown() {
        let query = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        let options = BTreeMap::from([
            ("timeout".to_string(), "5s".to_string()),
            ("Insecure".to_string(), "yes".to_string()),
            ("retries".to_string(), "0".to_string()),
        ]);
        let mut s = Settings::new(query.clone(), &options, "s3://b").unwrap();
        let layers = s.take_layer_options(&StorageOptions::default()).unwrap();
        assert_eq!(layers.timeout, Duration::from_secs(5));
        assert_eq!(layers.retries, 0);
        assert_eq!(layers.concurrency, 64);
        assert_eq!(s.take_bool("insecure").unwrap(), Some(true));
        assert_eq!(s.take("region").as_deref(), Some("eu"));
        s.finish("s3", &["region"]).unwrap();

        let dup = BTreeMap::from([("region".to_string(), "us".to_string())]);
        let err = Settings::new(query.clone(), &dup, "s3://b")
            .err()
            .expect("dup");
        assert!(err.message().contains("both"), "{}", err.message());

        let s = Settings::new(query, &BTreeMap::new(), "s3://b").unwrap();
        let err = s.finish("s3", &["endpoint"]).unwrap_err();
        assert!(err.message().contains("`region`"), "{}", err.message());
        assert!(err.message().contains("endpoint"), "{}", err.message());

        let mut s = Settings::new(
            BTreeMap::from([("insecure".to_string(), "maybe".to_string())]),
            &BTreeMap::new(),
            "x",
        )
        .unwrap();
        assert!(s.take_bool("insecure").is_err());
    }

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
