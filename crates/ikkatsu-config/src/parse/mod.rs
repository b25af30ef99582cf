//! The parser of job files: a document is read into a tree of positioned nodes, then walked
//! key by key: every unknown key, wrong type, missing key, duplicate name and dangling
//! transition target is recorded with its line and column, and all of them are returned
//! together.
//!
//! This module holds the walker and its checks of single values; [`job`] reads the job and
//! its flow, [`step`] an element and its components, [`fault`] the skip, retry and
//! dead-letter keys of a chunk, [`transitions`] the transitions, [`flows`] named flows and
//! flow elements, [`jsl`] the keys of Surfin Batch's JSL read beside ikkatsu's own, and
//! [`crate::model::element`] the table of element kinds.

pub(crate) mod fault;
pub(crate) mod flows;
pub(crate) mod job;
pub(crate) mod jsl;
pub(crate) mod partition;
pub(crate) mod step;
pub(crate) mod transitions;

use crate::error::{ConfigError, ConfigErrors, Position};
use crate::model::Located;
use crate::node::{Key, Node, NodeKind};

/// Fields of a mapping whose keys were checked.
pub(crate) struct Fields<'n> {
    pub(crate) node: &'n Node,
    pub(crate) entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn key_position(&self, key: &str) -> Position {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k.position)
            .unwrap_or(self.node.position())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Walks a document, collecting every error found.
pub(crate) struct Parser<'o> {
    pub(crate) origin: &'o str,
    pub(crate) errors: ConfigErrors,
}

impl Parser<'_> {
    pub(crate) fn error(&mut self, position: Position, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.origin, position, message));
    }

    /// Checks that `node` is a mapping with only `allowed` keys, each once.
    pub(crate) fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.error(
                node.position(),
                format!("{what} must be a mapping, found {}", node.type_name()),
            );
            return None;
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            if !allowed.contains(&key.name.as_str()) {
                self.error(
                    key.position,
                    format!(
                        "unknown key `{}` in {what} (expected one of: {})",
                        key.name,
                        allowed.join(", ")
                    ),
                );
            } else if entries[..i].iter().any(|(k, _)| k.name == key.name) {
                self.error(
                    key.position,
                    format!("duplicate key `{}` in {what}", key.name),
                );
            }
        }
        Some(Fields { node, entries })
    }

    pub(crate) fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        what: &str,
    ) -> Option<&'n Node> {
        let value = fields.get(key);
        if value.is_none() {
            self.error(
                fields.node.position(),
                format!("missing key `{key}` in {what}"),
            );
        }
        value
    }

    /// A scalar as text (numbers and booleans are taken as written).
    pub(crate) fn text(&mut self, node: &Node, key: &str, what: &str) -> Option<Located<String>> {
        match node.scalar_text() {
            Some(text) => Some(Located::new(text, node.position())),
            None => {
                self.error(
                    node.position(),
                    format!("`{key}` in {what} must be text, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// A non-empty name.
    pub(crate) fn name(&mut self, node: &Node, key: &str, what: &str) -> Option<Located<String>> {
        let text = self.text(node, key, what)?;
        if text.value.trim().is_empty() {
            self.error(
                node.position(),
                format!("`{key}` in {what} must not be empty"),
            );
            return None;
        }
        Some(text)
    }

    pub(crate) fn boolean(&mut self, node: &Node, key: &str, what: &str) -> Option<bool> {
        let value = node.as_bool();
        if value.is_none() {
            self.error(
                node.position(),
                format!(
                    "`{key}` in {what} must be true or false, found {}",
                    node.type_name()
                ),
            );
        }
        value
    }

    pub(crate) fn count(&mut self, node: &Node, key: &str, what: &str, min: u64) -> Option<u64> {
        match node.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                let found = node
                    .scalar_text()
                    .map(|t| format!("`{t}`"))
                    .unwrap_or_else(|| node.type_name().to_string());
                self.error(
                    node.position(),
                    format!(
                        "`{key}` in {what} must be an integer of at least {min}, found {found}"
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn list<'n>(&mut self, node: &'n Node, key: &str, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            NodeKind::Null => Some(&[]),
            _ => {
                self.error(
                    node.position(),
                    format!(
                        "`{key}` in {what} must be a list, found {}",
                        node.type_name()
                    ),
                );
                None
            }
        }
    }

    /// A mapping with free keys (still checked for duplicates).
    pub(crate) fn map_any<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            if node.is_null() {
                return None;
            }
            self.error(
                node.position(),
                format!("{what} must be a mapping, found {}", node.type_name()),
            );
            return None;
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k, _)| k.name == key.name) {
                self.error(
                    key.position,
                    format!("duplicate key `{}` in {what}", key.name),
                );
            }
        }
        Some(Fields { node, entries })
    }
}
