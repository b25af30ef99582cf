//! [`Properties`]: the `properties` of a component after interpolation, deserialized by the
//! component's factory into its configuration type.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::de::from_node;
use crate::error::{ConfigError, Position};
use crate::node::{Node, NodeKind};
use crate::secret::Secret;

/// The `properties` of a reader, processor, writer or tasklet, with every `${...}` resolved.
/// `Debug` prints secrets as `***`.
#[derive(Clone)]
pub struct Properties {
    node: Node,
    origin: Arc<str>,
    what: String,
}

impl Properties {
    /// Wraps an interpolated `properties` node of the component described by `what`.
    pub(crate) fn new(node: Node, origin: Arc<str>, what: String) -> Self {
        Properties { node, origin, what }
    }

    /// Properties parsed from a YAML mapping (for tests and programmatic use); `${...}` is
    /// not resolved.
    pub fn from_yaml(text: &str) -> Result<Properties, ConfigError> {
        let node = crate::node::parse_yaml(text, "properties")?;
        let node = if node.is_null() {
            Node::new(node.position(), NodeKind::Map(Vec::new()))
        } else {
            node
        };
        Ok(Properties::new(
            node,
            Arc::from("properties"),
            "properties".to_string(),
        ))
    }

    /// Deserializes the properties into a component's configuration (usually a struct with
    /// `#[serde(deny_unknown_fields, rename_all = "kebab-case")]`). The error is of kind
    /// [`Config`](ikkatsu_core::ErrorKind::Config), names the file, line, column and key,
    /// and has the [`ConfigError`] as its source.
    pub fn deserialize<T: DeserializeOwned>(&self) -> ikkatsu_core::Result<T> {
        from_node(&self.node).map_err(|err| {
            let position = err.position.unwrap_or(self.node.position());
            let message = match &err.key {
                Some(key) => format!("invalid {}: `{key}`: {}", self.what, err.message),
                None => format!("invalid {}: {}", self.what, err.message),
            };
            ConfigError::new(self.origin.as_ref(), position, message).into()
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.node.get(key)
    }

    /// The value of `key` when it is text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.node.get(key).and_then(Node::as_str)
    }

    /// The value of `key` as a [`Secret`] (text values only).
    pub fn secret(&self, key: &str) -> Option<Secret> {
        self.get_str(key).map(Secret::new)
    }

    /// The keys, in document order.
    pub fn keys(&self) -> Vec<&str> {
        self.node.keys()
    }

    /// Whether there are no properties.
    pub fn is_empty(&self) -> bool {
        self.node.keys().is_empty()
    }

    /// Where the properties are in the job file.
    pub fn position(&self) -> Position {
        self.node.position()
    }

    /// What the properties belong to (e.g. ``reader `csv` of step `load` ``).
    pub fn component(&self) -> &str {
        &self.what
    }

    /// The properties as JSON. Secrets are included in clear: do not log the result.
    pub fn to_json(&self) -> serde_json::Value {
        self.node.to_json()
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.node, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Cfg {
        path: String,
        #[serde(default)]
        has_header: bool,
        columns: Option<Vec<String>>,
        limit: Option<u32>,
    }

    #[test]
    fn errors_carry_positions() {
        let ok = Properties::from_yaml("path: a.csv\nhas-header: true\ncolumns: [a, b]\n").unwrap();
        let cfg: Cfg = ok.deserialize().unwrap();
        assert_eq!(cfg.columns.unwrap(), vec!["a", "b"]);

        let bad = Properties::from_yaml("path: a.csv\nhas-headr: true\n").unwrap();
        let err = bad.deserialize::<Cfg>().unwrap_err().to_string();
        assert!(err.starts_with("properties:2:1: "), "{err}");
        assert!(err.contains("has-headr"), "{err}");

        let bad = Properties::from_yaml("path: a.csv\ncolumns: [a, [b]]\n").unwrap();
        let err = bad.deserialize::<Cfg>().unwrap_err().to_string();
        assert!(err.starts_with("properties:2:14: "), "{err}");

        let bad = Properties::from_yaml("limit: 3\n").unwrap();
        let err = bad.deserialize::<Cfg>().unwrap_err().to_string();
        assert!(err.contains("missing field `path`"), "{err}");
    }
}
