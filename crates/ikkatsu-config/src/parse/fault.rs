//! The fault tolerance of a chunk: `skip` (alias `item-skip`), `retry` (alias
//! `item-retry`), `no-rollback` and `dead-letter`. An alias and its key are read by the same
//! code into the same definition; giving both is an error.

use ikkatsu_core::ErrorKind;
use ikkatsu_core::retry::DEFAULT_JITTER;

use super::{Fields, Parser};
use crate::model::{ComponentDefinition, RetryDefinition, SkipDefinition};
use crate::node::{Node, NodeKind};

const SKIP_KEYS: &[&str] = &["limit", "on", "kinds"];
const RETRY_KEYS: &[&str] = &["limit", "on", "kinds", "backoff", "max-backoff"];
const BACKOFF_KEYS: &[&str] = &["initial", "max", "multiplier", "jitter"];
const DEAD_LETTER_KEYS: &[&str] = &["writer"];

/// The keys of a chunk's fault tolerance, with the older names they stand for.
pub(crate) const FAULT_KEYS: &[&str] = &[
    "skip",
    "item-skip",
    "retry",
    "item-retry",
    "no-rollback",
    "dead-letter",
];

/// What [`Parser::faults`] reads from a chunk.
pub(crate) struct FaultDefinitions {
    pub skip: Option<SkipDefinition>,
    pub retry: Option<RetryDefinition>,
    pub no_rollback: Vec<ErrorKind>,
    pub dead_letter: Option<ComponentDefinition>,
}

impl Parser<'_> {
    /// Reads the fault-tolerance keys of the chunk `f` of `step` (`what`: the chunk).
    pub(crate) fn faults(&mut self, f: &Fields<'_>, step: &str, what: &str) -> FaultDefinitions {
        let skip = self
            .aliased(f, "skip", "item-skip", what)
            .and_then(|(key, n)| self.skip(n, key, step));
        let retry = self
            .aliased(f, "retry", "item-retry", what)
            .and_then(|(key, n)| self.retry(n, key, step));
        let no_rollback = self.kinds(f.get("no-rollback"), "no-rollback", what);
        let dead_letter = f.get("dead-letter").and_then(|n| self.dead_letter(n, step));
        FaultDefinitions {
            skip,
            retry,
            no_rollback,
            dead_letter,
        }
    }

    /// The node of `key` or of its alias `old` (an error when both are given).
    fn aliased<'n, 'k>(
        &mut self,
        f: &Fields<'n>,
        key: &'k str,
        old: &'k str,
        what: &str,
    ) -> Option<(&'k str, &'n Node)> {
        match (f.get(key), f.get(old)) {
            (Some(_), Some(_)) => {
                self.error(
                    f.key_position(old),
                    format!("`{old}` is an alias of `{key}` in {what}: give only one"),
                );
                None
            }
            (Some(n), None) => Some((key, n)),
            (None, Some(n)) => Some((old, n)),
            (None, None) => None,
        }
    }

    /// A list of error kinds under `key` of `what`; unknown names are errors that list the
    /// known ones.
    pub(crate) fn kinds(&mut self, node: Option<&Node>, key: &str, what: &str) -> Vec<ErrorKind> {
        let Some(node) = node else {
            return Vec::new();
        };
        let Some(items) = self.list(node, key, what) else {
            return Vec::new();
        };
        let mut kinds = Vec::new();
        for item in items {
            let Some(name) = self.text(item, key, what) else {
                continue;
            };
            match ErrorKind::parse(name.value.trim()) {
                Some(kind) => kinds.push(kind),
                None => self.error(
                    item.position(),
                    format!(
                        "unknown error kind `{}` in `{key}` of {what} (expected one of: {})",
                        name.value,
                        ErrorKind::ALL.map(ErrorKind::as_str).join(", ")
                    ),
                ),
            }
        }
        kinds
    }

    /// `on` or its alias `kinds` in `f`.
    fn on_kinds(&mut self, f: &Fields<'_>, what: &str) -> Vec<ErrorKind> {
        match self.aliased(f, "on", "kinds", what) {
            Some((key, node)) => self.kinds(Some(node), key, what),
            None => Vec::new(),
        }
    }

    fn skip(&mut self, node: &Node, key: &str, step: &str) -> Option<SkipDefinition> {
        let what = format!("`{key}` of {step}");
        let f = self.map(node, &what, SKIP_KEYS)?;
        let limit = self
            .required(&f, "limit", &what)
            .and_then(|n| self.count(n, "limit", &what, 0));
        let kinds = self.on_kinds(&f, &what);
        Some(SkipDefinition {
            limit: limit?,
            kinds,
        })
    }

    fn retry(&mut self, node: &Node, key: &str, step: &str) -> Option<RetryDefinition> {
        let what = format!("`{key}` of {step}");
        let f = self.map(node, &what, RETRY_KEYS)?;
        let limit = self
            .required(&f, "limit", &what)
            .and_then(|n| self.count(n, "limit", &what, 0));
        let limit = match limit.map(u32::try_from) {
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                self.error(
                    f.key_position("limit"),
                    format!("`limit` in {what} is too large"),
                );
                None
            }
            None => None,
        };
        let kinds = self.on_kinds(&f, &what);
        let mut retry = RetryDefinition {
            limit: 0,
            kinds,
            backoff: None,
            max_backoff: f
                .get("max-backoff")
                .and_then(|n| self.duration(n, "max-backoff", &what)),
            multiplier: None,
            jitter: None,
        };
        match f.get("backoff") {
            Some(n) if n.is_map() => self.backoff(n, &f, &what, &mut retry),
            Some(n) => retry.backoff = self.duration(n, "backoff", &what),
            None => {}
        }
        retry.limit = limit?;
        Some(retry)
    }

    /// `backoff: {initial, max, multiplier, jitter}` of `retry` (whose fields are `f`).
    fn backoff(&mut self, node: &Node, f: &Fields<'_>, what: &str, retry: &mut RetryDefinition) {
        let what = format!("`backoff` of {what}");
        let Some(b) = self.map(node, &what, BACKOFF_KEYS) else {
            return;
        };
        retry.backoff = b
            .get("initial")
            .and_then(|n| self.duration(n, "initial", &what));
        if let Some(max) = b.get("max") {
            if f.has("max-backoff") {
                self.error(
                    f.key_position("max-backoff"),
                    format!("`max-backoff` is an alias of `max` in {what}: give only one"),
                );
            }
            retry.max_backoff = self.duration(max, "max", &what);
        }
        retry.multiplier = b.get("multiplier").and_then(|n| {
            let value = self.number(n, "multiplier", &what)?;
            if value >= 1.0 {
                return Some(value);
            }
            self.error(
                n.position(),
                format!("`multiplier` in {what} must be at least 1 (each delay at least as long as the one before), found {value}"),
            );
            None
        });
        retry.jitter = b.get("jitter").and_then(|n| {
            if let Some(on) = n.as_bool() {
                return Some(if on { DEFAULT_JITTER } else { 0.0 });
            }
            let value = self.number(n, "jitter", &what)?;
            if (0.0..=1.0).contains(&value) {
                return Some(value);
            }
            self.error(
                n.position(),
                format!("`jitter` in {what} must be between 0 and 1 (the largest share of a delay added at random), found {value}"),
            );
            None
        });
    }

    fn number(&mut self, node: &Node, key: &str, what: &str) -> Option<f64> {
        match node.kind {
            NodeKind::Int(n) => Some(n as f64),
            NodeKind::UInt(n) => Some(n as f64),
            NodeKind::Float(n) if n.is_finite() => Some(n),
            _ => {
                self.error(
                    node.position(),
                    format!(
                        "`{key}` in {what} must be a number, found {}",
                        node.type_name()
                    ),
                );
                None
            }
        }
    }

    fn dead_letter(&mut self, node: &Node, step: &str) -> Option<ComponentDefinition> {
        let what = format!("`dead-letter` of {step}");
        let f = self.map(node, &what, DEAD_LETTER_KEYS)?;
        let writer = self.required(&f, "writer", &what)?;
        self.component(writer, &format!("the dead-letter writer of {step}"))
    }
}
