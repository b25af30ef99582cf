//! [`Settings`]: the options of one storage being opened, which every backend reads its
//! options from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{Error, Result};

use crate::layers::StorageOptions;
use crate::url::{RemoteUrl, is_secret_key, normalize_key};

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

    /// The user and the password, each given in the URL or as an option (not both); a
    /// password needs a user.
    #[allow(dead_code)] // Used by the FTP, SFTP and WebDAV backends, which are features.
    pub(crate) fn take_user_and_password(
        &mut self,
        url: &RemoteUrl,
    ) -> Result<(Option<String>, Option<String>)> {
        let shown = self.shown.clone();
        let mut pick = |what: &str, in_url: &Option<String>| match (self.take(what), in_url) {
            (Some(_), Some(_)) => Err(Error::config(format!(
                "storage {shown}: the {what} is given both in the URL and as the `{what}` \
                 option; keep one"
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
}
