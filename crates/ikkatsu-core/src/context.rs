//! [`ExecutionContext`]: the state a job or step saves so that a restart continues where the
//! last committed chunk left off.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// Key/value state saved with a job or step execution at every commit, as a JSON object.
///
/// Item streams write their position here in `update` and read it back in `open`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionContext {
    entries: Map<String, Value>,
}

impl ExecutionContext {
    /// An empty context.
    pub fn new() -> Self {
        ExecutionContext::default()
    }

    /// Parses a context stored as a JSON object.
    pub fn from_json(json: &str) -> Result<Self> {
        if json.trim().is_empty() {
            return Ok(ExecutionContext::new());
        }
        serde_json::from_str(json).map_err(|err| {
            Error::new(
                ErrorKind::Repository,
                format!("stored execution context is not a JSON object: {err}"),
            )
        })
    }

    /// The context as a JSON object string.
    pub fn to_json(&self) -> String {
        Value::Object(self.entries.clone()).to_string()
    }

    /// Whether the context has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The raw JSON value of `key`.
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Reads `key` as `T`; `None` when absent, an error naming the key when of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|err| {
                    Error::new(
                        ErrorKind::Repository,
                        format!("execution context entry `{key}` has an unexpected type: {err}"),
                    )
                }),
        }
    }

    /// Reads `key` as an unsigned integer.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.entries.get(key).and_then(Value::as_u64)
    }

    /// Reads `key` as a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.entries.get(key).and_then(Value::as_str)
    }

    /// Stores `value` under `key`.
    pub fn put(&mut self, key: impl Into<String>, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.entries.insert(key.into(), value);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.entries.shift_remove(key)
    }

    /// Iterates over the entries.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.entries.iter()
    }

    /// Copies the given keys (when present) from `other`.
    pub fn promote_from(&mut self, other: &ExecutionContext, keys: &[String]) {
        for key in keys {
            if let Some(value) = other.entries.get(key) {
                self.entries.insert(key.clone(), value.clone());
            }
        }
    }

    /// Copies every entry of `other` into this context, replacing entries with the same key.
    pub fn merge(&mut self, other: &ExecutionContext) {
        for (key, value) in &other.entries {
            self.entries.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let mut ctx = ExecutionContext::new();
        ctx.put("reader.offset", 42u64);
        ctx.put("name", "x");
        let back = ExecutionContext::from_json(&ctx.to_json()).unwrap();
        assert_eq!(back.get_u64("reader.offset"), Some(42));
        assert_eq!(back.get_str("name"), Some("x"));
        assert!(ExecutionContext::from_json("[1]").is_err());
        assert!(ExecutionContext::from_json("").unwrap().is_empty());
    }
}
