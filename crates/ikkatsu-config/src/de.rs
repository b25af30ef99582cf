//! A serde [`Deserializer`](serde::Deserializer) over a [`Node`]: component configurations are
//! deserialized from their `properties`, and every error keeps the position of the key or
//! value it is about.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use crate::error::Position;
use crate::node::{Key, Node, NodeKind};

/// An error while deserializing a node, with the position it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeError {
    pub(crate) message: String,
    pub(crate) position: Option<Position>,
    /// The key whose value failed (the innermost one), when a mapping value failed.
    pub(crate) key: Option<String>,
}

impl NodeError {
    /// Sets the position unless a deeper one is known already.
    fn at(mut self, position: Position) -> Self {
        if self.position.is_none() && position.is_known() {
            self.position = Some(position);
        }
        self
    }

    /// Sets the key unless a deeper one is known already.
    fn under(mut self, key: &str) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_string());
        }
        self
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl de::Error for NodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NodeError {
            message: msg.to_string(),
            position: None,
            key: None,
        }
    }
}

/// Deserializes `node` into `T`.
pub(crate) fn from_node<T: de::DeserializeOwned>(node: &Node) -> Result<T, NodeError> {
    T::deserialize(NodeDeserializer { node }).map_err(|e| e.at(node.position))
}

pub(crate) struct NodeDeserializer<'a> {
    node: &'a Node,
}

impl<'a> NodeDeserializer<'a> {
    fn text(&self) -> Option<&'a str> {
        match &self.node.kind {
            NodeKind::Str(s) if self.node.interpolated => Some(s.trim()),
            _ => None,
        }
    }
}

macro_rules! parse_interpolated {
    ($($method:ident => $ty:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
                if let Some(text) = self.text() {
                    return match text.parse::<$ty>() {
                        Ok(v) => visitor.$visit(v),
                        Err(_) => Err(de::Error::invalid_value(de::Unexpected::Str(text), &visitor)),
                    };
                }
                self.deserialize_any(visitor)
            }
        )*
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDeserializer<'a> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let position = self.node.position;
        let result = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(n) => visitor.visit_i64(*n),
            NodeKind::UInt(n) => visitor.visit_u64(*n),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) => visitor.visit_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            NodeKind::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.at(position))
    }

    parse_interpolated! {
        deserialize_bool => bool, visit_bool;
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
        deserialize_f32 => f32, visit_f32;
        deserialize_f64 => f64, visit_f64;
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        // Numbers and booleans are accepted where text is expected (`port: 21` into a string).
        match &self.node.kind {
            NodeKind::Bool(_) | NodeKind::Int(_) | NodeKind::UInt(_) | NodeKind::Float(_) => {
                match self.node.scalar_text() {
                    Some(text) => visitor.visit_string(text),
                    None => self.deserialize_any(visitor),
                }
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        let position = self.node.position;
        let result = match &self.node.kind {
            NodeKind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(Enum { key, value })
            }
            _ => Err(de::Error::custom(format!(
                "expected a variant name or a mapping with one key, found {}",
                self.node.type_name()
            ))),
        };
        result.map_err(|e| e.at(position))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de, 'a> SeqAccess<'de> for Seq<'a> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDeserializer { node })
                .map(Some)
                .map_err(|e| e.at(node.position)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Key, Node)>,
    value: Option<(&'a str, &'a Node)>,
}

impl<'de, 'a> MapAccess<'de> for Map<'a> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some((key.name.as_str(), value));
                let name: de::value::StrDeserializer<'_, NodeError> =
                    key.name.as_str().into_deserializer();
                seed.deserialize(name)
                    .map(Some)
                    .map_err(|e| e.at(key.position))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        match self.value.take() {
            Some((key, node)) => seed
                .deserialize(NodeDeserializer { node })
                .map_err(|e| e.at(node.position).under(key)),
            None => Err(de::Error::custom(
                "a mapping value was asked for before its key",
            )),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'a> {
    key: &'a Key,
    value: &'a Node,
}

impl<'de, 'a> EnumAccess<'de> for Enum<'a> {
    type Error = NodeError;
    type Variant = NodeDeserializer<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), NodeError> {
        let name: de::value::StrDeserializer<'_, NodeError> =
            self.key.name.as_str().into_deserializer();
        let variant = seed
            .deserialize(name)
            .map_err(|e| e.at(self.key.position))?;
        Ok((variant, NodeDeserializer { node: self.value }))
    }
}

impl<'de, 'a> VariantAccess<'de> for NodeDeserializer<'a> {
    type Error = NodeError;

    fn unit_variant(self) -> Result<(), NodeError> {
        match self.node.kind {
            NodeKind::Null => Ok(()),
            _ => Err(<NodeError as de::Error>::custom(format!(
                "expected no value for this variant, found {}",
                self.node.type_name()
            ))
            .at(self.node.position)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, NodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}
