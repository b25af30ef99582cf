//! A YAML document as a tree of [`Node`]s, each with the line and column it came from.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::{ConfigError, Position};

/// A YAML value with its position. Strings resolved from secrets print as `***` in `Debug`.
#[derive(Clone, PartialEq)]
pub struct Node {
    pub(crate) position: Position,
    pub(crate) kind: NodeKind,
    /// The value came from a secret (a `file:` reference, or the environment for a key
    /// ending in `password`, `passphrase`, `secret`, `token`, `access-key`, `account-key` or
    /// `credential`).
    pub(crate) secret: bool,
    /// The value was produced by interpolation (so `"5"` may stand for a number).
    pub(crate) interpolated: bool,
}

/// The value of a [`Node`].
#[derive(Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key (always text) with its position.
#[derive(Clone, PartialEq, Debug)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) position: Position,
}

impl Node {
    pub(crate) fn new(position: Position, kind: NodeKind) -> Self {
        Node {
            position,
            kind,
            secret: false,
            interpolated: false,
        }
    }

    /// Where the value is in the document.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The value as text when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            NodeKind::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as an unsigned integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self.kind {
            NodeKind::UInt(n) => Some(n),
            NodeKind::Int(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    /// Whether the value is null (`~`, `null` or nothing).
    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    /// Whether the value is a mapping.
    pub fn is_map(&self) -> bool {
        matches!(self.kind, NodeKind::Map(_))
    }

    /// The value of `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The keys of the mapping, in document order (empty for other values).
    pub fn keys(&self) -> Vec<&str> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().map(|(k, _)| k.name.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// A scalar's text (strings as they are, numbers and booleans as written in YAML).
    pub fn scalar_text(&self) -> Option<String> {
        Some(match &self.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Int(n) => n.to_string(),
            NodeKind::UInt(n) => n.to_string(),
            NodeKind::Float(f) => f.to_string(),
            NodeKind::Null | NodeKind::Seq(_) | NodeKind::Map(_) => return None,
        })
    }

    /// A short name of the value's YAML type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) | NodeKind::UInt(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The value as JSON (secrets included in clear: handle with care).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(n) => Value::from(*n),
            NodeKind::UInt(n) => Value::from(*n),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            return f.write_str("***");
        }
        match &self.kind {
            NodeKind::Null => f.write_str("null"),
            NodeKind::Bool(b) => write!(f, "{b}"),
            NodeKind::Int(n) => write!(f, "{n}"),
            NodeKind::UInt(n) => write!(f, "{n}"),
            NodeKind::Float(x) => write!(f, "{x}"),
            NodeKind::Str(s) => write!(f, "{s:?}"),
            NodeKind::Seq(items) => f.debug_list().entries(items).finish(),
            NodeKind::Map(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(k, v)| (&k.name, v)))
                .finish(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKind>::deserialize(deserializer)?;
        Ok(Node::new(spanned.referenced.into(), spanned.value))
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(match i64::try_from(v) {
            Ok(n) => NodeKind::Int(n),
            Err(_) => NodeKind::UInt(v),
        })
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeKind, E> {
        i64::try_from(v)
            .map(NodeKind::Int)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
        u64::try_from(v)
            .map(|n| self.visit_u64::<E>(n))
            .map_err(|_| E::custom(format!("integer {v} is out of range")))?
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<NodeKind, E> {
        String::from_utf8(v.to_vec())
            .map(NodeKind::Str)
            .map_err(|_| E::custom("binary values must be UTF-8 text"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeKind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((
                Key {
                    name: key.value.0,
                    position: key.referenced.into(),
                },
                value,
            ));
        }
        Ok(NodeKind::Map(entries))
    }
}

/// A mapping key: scalars are taken as text; collections are rejected.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key (plain text, not a list or mapping)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<KeyText, E> {
        Ok(KeyText(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
        Ok(KeyText(String::new()))
    }
}

/// Parses `text` into a tree. Duplicate keys are kept (and reported by the job parser);
/// syntax errors carry the position reported by the YAML parser.
pub(crate) fn parse_yaml(text: &str, origin: &str) -> Result<Node, ConfigError> {
    let mut options = serde_saphyr::options::Options::default();
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    options.strict_booleans = true;
    options.null_as_string = true;
    match serde_saphyr::from_str_with_options::<Option<Node>>(text, options) {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Ok(Node::new(Position::new(1, 1), NodeKind::Null)),
        Err(err) => {
            let position = err.location().map(Position::from).unwrap_or_default();
            Err(ConfigError::new(
                origin,
                position,
                format!("invalid YAML: {}", yaml_message(&err)),
            ))
        }
    }
}

/// The YAML parser's message without its own location suffix.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let text = text.lines().next().unwrap_or_default().trim().to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].trim_end_matches(',').to_string(),
        None => text,
    }
}
