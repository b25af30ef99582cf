//! The application config: named storage connections, status stores and the job
//! repository, so that job files and commands refer to `@name` instead of repeating URLs
//! and secrets.
//!
//! ```yaml
//! repository: postgres://batch@db.internal/jobs
//! storages:
//!   archive: file:///srv/archive
//!   inbox: ${INBOX_URL}
//! status-stores:
//!   shared: redis://cache.internal:6379/2
//! ```
//!
//! Strings are interpolated like job files (`${ENV}`, `${ENV:-default}`, `${file:/path}`,
//! and `file:///path` under keys ending in `password`, `secret` or `token`); unknown keys
//! are errors naming the file, line and column.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

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
    /// Named storage URLs, referred to as `@name`.
    #[serde(default)]
    pub storages: BTreeMap<String, String>,
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
                crate::Position::new(0, 0),
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
        let scope = Scope { params: None };
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

    /// `reference` with a leading `@name` replaced by the named storage's URL; other
    /// references are returned as they are.
    pub fn storage_url(&self, reference: &str) -> ikkatsu_core::Result<String> {
        resolve(reference, &self.storages, "storages")
    }

    /// Like [`AppConfig::storage_url`] for status stores.
    pub fn status_store_url(&self, reference: &str) -> ikkatsu_core::Result<String> {
        resolve(reference, &self.status_stores, "status-stores")
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
    names.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = names.keys().map(String::as_str).collect();
        ikkatsu_core::Error::config(format!(
            "`@{name}` is not in the application config's `{section}` (known: {}); add it there or give a URL",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    })
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
        assert_eq!(config.storage_url("@inbox").unwrap(), "file:///srv/in");
        assert_eq!(config.storage_url("/plain/path").unwrap(), "/plain/path");
        assert_eq!(config.status_store_url("@shared").unwrap(), "memory:");
        let err = config.storage_url("@nope").unwrap_err();
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
}
