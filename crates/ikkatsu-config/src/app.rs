//! The application config: named storage connections, status stores and the job
//! repository, so that job files and commands refer to `@name` instead of repeating URLs
//! and secrets.
//!
//! ```yaml
//! repository: postgres://batch@db.internal/jobs
//! storages:
//!   archive: file:///srv/archive
//!   inbox: ${INBOX_URL}
//!   partner:
//!     url: sftp://batch@files.partner.example:22/outgoing
//!     key-file: /etc/ikkatsu/id_ed25519
//!     key-passphrase: file:///run/secrets/partner-passphrase
//!     known-hosts: /etc/ikkatsu/known_hosts
//!   lake:
//!     url: s3://lake/raw
//!     region: eu-west-1
//!     access-key-id: ${LAKE_KEY_ID}
//!     secret-access-key: ${LAKE_SECRET}
//! status-stores:
//!   shared: redis://cache.internal:6379/2
//! ```
//!
//! A storage is a URL, or a map of its `url` and its options (the URL's query parameters
//! written as fields; `docs/storage.md` lists them per backend).
//!
//! Strings are interpolated like job files (`${ENV}`, `${ENV:-default}`, `${file:/path}`,
//! and `file:///path` under keys ending in `password`, `passphrase`, `secret`, `token`,
//! `access-key`, `account-key` or `credential`); unknown keys are errors naming the file,
//! line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ikkatsu_core::secret::{MASK, is_secret_name, mask_url, normalize_key};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::build::interpolate_tree;
use crate::de::from_node;
use crate::error::{ConfigError, ConfigErrors};
use crate::interpolate::Scope;
use crate::node::parse_yaml;

/// The application config document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppConfig {
    /// The job repository URL (overridden by `--repository` / `IKKATSU_REPOSITORY`).
    #[serde(default)]
    pub repository: Option<String>,
    /// Named storages (a URL, or a URL and options), referred to as `@name`.
    #[serde(default)]
    pub storages: BTreeMap<String, NamedStorage>,
    /// Named status-store URLs, referred to as `@name`.
    #[serde(default)]
    pub status_stores: BTreeMap<String, String>,
}

impl AppConfig {
    /// Reads and interpolates the config file at `path`.
    pub fn from_path(path: impl AsRef<Path>) -> Result<AppConfig, ConfigErrors> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigErrors::from(ConfigError::new(
                origin.clone(),
                crate::error::Position::new(0, 0),
                format!("cannot read the application config: {err}"),
            ))
        })?;
        AppConfig::from_str(&text, &origin)
    }

    /// Parses and interpolates a config document; `origin` names it in errors.
    pub fn from_str(text: &str, origin: &str) -> Result<AppConfig, ConfigErrors> {
        let node = parse_yaml(text, origin).map_err(ConfigErrors::from)?;
        if node.is_null() {
            return Ok(AppConfig::default());
        }
        let mut errors = ConfigErrors::new();
        let scope = Scope {
            params: None,
            late: None,
        };
        let node = interpolate_tree(&node, None, &scope, &mut |position, key, message| {
            errors.push(ConfigError::new(
                origin,
                position,
                format!("`{key}`: {message}"),
            ));
        });
        let node = match node {
            Some(node) if errors.is_empty() => node,
            _ => return Err(errors),
        };
        from_node(&node).map_err(|err| {
            ConfigErrors::from(ConfigError::new(
                origin,
                err.position.unwrap_or(node.position()),
                format!("invalid application config: {}", err.message),
            ))
        })
    }

    /// The storage `reference` names: the named storage for `@name`, else a storage with
    /// `reference` as its URL. The storage crate opens it (`ikkatsu_storage::StorageConnection`
    /// holds the same URL and options).
    pub fn storage(&self, reference: &str) -> ikkatsu_core::Result<NamedStorage> {
        let Some(name) = reference.strip_prefix('@') else {
            return Ok(NamedStorage::new(reference));
        };
        self.storages
            .get(name)
            .cloned()
            .ok_or_else(|| unknown_name(name, self.storages.keys(), "storages"))
    }

    /// `reference` with a leading `@name` replaced by the named status store's URL; other
    /// references are returned as they are.
    pub fn status_store_url(&self, reference: &str) -> ikkatsu_core::Result<String> {
        resolve(reference, &self.status_stores, "status-stores")
    }
}

/// A storage of the application config: its URL and the options given beside it (the URL's
/// query parameters written as fields; `docs/storage.md` lists them per backend). It is plain
/// data: the storage crate gives it its meaning. `Debug` masks secrets.
///
/// It deserializes from a URL string or from a map with `url` and the options (strings,
/// booleans or numbers); option names are normalized (`key_file` is `key-file`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NamedStorage {
    /// The storage URL.
    pub url: String,
    /// Options by normalized name (`key-file`, `region`, `password`, `timeout`, ...).
    pub options: BTreeMap<String, String>,
}

impl NamedStorage {
    /// A storage at `url` without options.
    pub fn new(url: impl Into<String>) -> Self {
        NamedStorage {
            url: url.into(),
            options: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for NamedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret_name(k) { MASK } else { v }))
            .collect();
        f.debug_struct("NamedStorage")
            .field("url", &mask_url(&self.url))
            .field("options", &options)
            .finish()
    }
}

impl<'de> Deserialize<'de> for NamedStorage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NamedStorageVisitor)
    }
}

/// A scalar value as text: what a URL or an option may be written as.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a string, a boolean or a number")]
enum Scalar {
    Text(String),
    Bool(bool),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(text) => text,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Integer(n) => n.to_string(),
            Scalar::Unsigned(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
        }
    }
}

struct NamedStorageVisitor;

impl<'de> Visitor<'de> for NamedStorageVisitor {
    type Value = NamedStorage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a storage URL, or a map with `url` and the storage's options")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NamedStorage, E> {
        Ok(NamedStorage::new(v))
    }

    // A scalar that is not a string stands for its text, as it does for other string
    // fields of the configuration (`1` is the relative path `1`).
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NamedStorage, E> {
        Ok(NamedStorage::new(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NamedStorage, E> {
        Ok(NamedStorage::new(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NamedStorage, E> {
        Ok(NamedStorage::new(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NamedStorage, E> {
        Ok(NamedStorage::new(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NamedStorage, A::Error> {
        let mut url = None;
        let mut options = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Scalar>()?.into_text();
            match normalize_key(&key) {
                name if name == "url" => url = Some(value),
                name => {
                    if options.insert(name.clone(), value).is_some() {
                        return Err(de::Error::custom(format!(
                            "the storage option `{name}` is given twice"
                        )));
                    }
                }
            }
        }
        let url = url.ok_or_else(|| {
            de::Error::custom("a storage given as a map needs `url` (e.g. `url: sftp://host/dir`)")
        })?;
        Ok(NamedStorage { url, options })
    }
}

fn resolve(
    reference: &str,
    names: &BTreeMap<String, String>,
    section: &str,
) -> ikkatsu_core::Result<String> {
    let Some(name) = reference.strip_prefix('@') else {
        return Ok(reference.to_string());
    };
    names
        .get(name)
        .cloned()
        .ok_or_else(|| unknown_name(name, names.keys(), section))
}

fn unknown_name<'a>(
    name: &str,
    known: impl Iterator<Item = &'a String>,
    section: &str,
) -> ikkatsu_core::Error {
    let known: Vec<&str> = known.map(String::as_str).collect();
    ikkatsu_core::Error::config(format!(
        "`@{name}` is not in the application config's `{section}` (known: {}); add it there or give a URL",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resolves_and_reports_positions() {
        // SAFETY: tests in this module are the only readers of this variable.
        unsafe { std::env::set_var("IKK_APP_TEST_URL", "file:///srv/in") };
        let config = AppConfig::from_str(
            "repository: sqlite://jobs.db\nstorages:\n  inbox: ${IKK_APP_TEST_URL}\nstatus-stores:\n  shared: \"memory:\"\n",
            "ikkatsu.yaml",
        )
        .unwrap();
        assert_eq!(config.repository.as_deref(), Some("sqlite://jobs.db"));
        assert_eq!(config.storage("@inbox").unwrap().url, "file:///srv/in");
        assert_eq!(config.storage("/plain/path").unwrap().url, "/plain/path");
        assert_eq!(config.status_store_url("@shared").unwrap(), "memory:");
        let err = config.storage("@nope").unwrap_err();
        assert!(err.to_string().contains("inbox"), "{err}");

        let err = AppConfig::from_str("storages:\n  a: x\nstorage: {}\n", "ikkatsu.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ikkatsu.yaml:3"), "{err}");
        assert!(err.contains("storage"), "{err}");
        let err = AppConfig::from_str("storages:\n  a: ${IKK_APP_MISSING_VAR}\n", "ikkatsu.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ikkatsu.yaml:2"), "{err}");
        assert!(err.contains("IKK_APP_MISSING_VAR"), "{err}");
        assert!(
            AppConfig::from_str("", "e.yaml")
                .unwrap()
                .storages
                .is_empty()
        );
    }

    #[test]
    fn named_storages_with_options_and_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("passphrase");
        std::fs::write(&secret, "pass phrase\n").unwrap();
        // SAFETY: tests in this module are the only readers of this variable.
        unsafe { std::env::set_var("IKK_APP_TEST_S3_SECRET", "s3cr&t") };
        let yaml = format!(
            "storages:\n  partner:\n    url: sftp://batch@files.example:2222/out\n    key-file: /etc/ikkatsu/id\n    key-passphrase: file://{}\n    connections: 4\n  lake:\n    url: s3://lake/raw\n    region: eu-west-1\n    secret-access-key: ${{IKK_APP_TEST_S3_SECRET}}\n    access-key-id: AKIA\n    virtual-host-style: true\n",
            secret.display()
        );
        let config = AppConfig::from_str(&yaml, "ikkatsu.yaml").unwrap();
        let partner = config.storage("@partner").unwrap();
        assert_eq!(partner.url, "sftp://batch@files.example:2222/out");
        assert_eq!(partner.options["key-passphrase"], "pass phrase");
        assert_eq!(partner.options["connections"], "4");
        let lake = config.storage("@lake").unwrap();
        assert_eq!(lake.options["secret-access-key"], "s3cr&t");
        assert_eq!(lake.options["virtual-host-style"], "true");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cr&t"), "{debug}");
        assert!(!debug.contains("pass phrase"), "{debug}");
        assert_eq!(config.storage("/plain").unwrap().url, "/plain");

        let err = AppConfig::from_str("storages:\n  x:\n    region: r\n", "e.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("url"), "{err}");
        let err = AppConfig::from_str(
            "storages:\n  x:\n    url: s3://b\n    key_file: a\n    key-file: b\n",
            "e.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`key-file` is given twice"), "{err}");
        let err = AppConfig::from_str(
            "storages:\n  x:\n    url: s3://b\n    region: [a]\n",
            "e.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a string, a boolean or a number"), "{err}");
    }
}
