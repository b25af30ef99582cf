//! [`FieldMappingItemProcessor`]: renames, selects, defaults and normalises the fields of
//! [`Record`]s without a script.
//!
//! ```yaml
//! fields:
//!   id: customer_id                 # output `id` from source field `customer_id`
//!   name: { from: full_name, transform: trim }
//!   country: { default: "JP", transform: upper }   # `from` defaults to the output name
//! keep-unmapped: false
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use ikkatsu_core::record::Fields;
use ikkatsu_core::{Error, ErrorKind, ItemProcessor, Record, Result};

/// A string transformation applied to a mapped field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Upper case.
    Upper,
    /// Lower case.
    Lower,
    /// Leading and trailing whitespace removed.
    Trim,
}

impl Transform {
    /// Applies the transformation to a string value; other values are left unchanged.
    pub fn apply(self, value: Value) -> Value {
        match value {
            Value::String(text) => Value::String(match self {
                Transform::Upper => text.to_uppercase(),
                Transform::Lower => text.to_lowercase(),
                Transform::Trim => text.trim().to_owned(),
            }),
            other => other,
        }
    }
}

/// Where an output field comes from: a source field name, or a detailed [`FieldSpec`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FieldSource {
    /// The name of the source field, copied unchanged.
    Name(String),
    /// A source field with a default and a transformation.
    Spec(FieldSpec),
}

/// A detailed field mapping.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FieldSpec {
    /// The source field (default: the output field's name).
    #[serde(default)]
    pub from: Option<String>,
    /// The value used when the source field is missing. Without it a missing field is an
    /// error.
    #[serde(default)]
    pub default: Option<Value>,
    /// A transformation of string values: `upper`, `lower` or `trim`.
    #[serde(default)]
    pub transform: Option<Transform>,
}

/// Properties of a field-mapping processor (`field-mapping` in job YAML).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FieldMappingConfig {
    /// The output fields, in output order: output name → source field name, or → an object
    /// with `from`, `default` and `transform`.
    pub fields: IndexMap<String, FieldSource>,
    /// Also copy the source fields that no mapping reads, after the mapped ones (default
    /// `false`: they are dropped).
    #[serde(default)]
    pub keep_unmapped: bool,
}

struct Mapping {
    output: String,
    from: String,
    default: Option<Value>,
    transform: Option<Transform>,
}

/// Builds each output [`Record`] from the fields listed in a [`FieldMappingConfig`].
///
/// A missing source field without a default is a [`ErrorKind::Parse`] error naming the
/// field and the record's number (counted from 1 over the records this processor has seen
/// in this run), so skip policies can skip such records.
pub struct FieldMappingItemProcessor {
    mappings: Vec<Mapping>,
    /// The output fields, shared by every output record.
    fields: Arc<Fields>,
    keep_unmapped: bool,
    seen: AtomicU64,
}

impl FieldMappingItemProcessor {
    /// A processor for `config`; an empty `fields` map is a configuration error.
    pub fn new(config: FieldMappingConfig) -> Result<Self> {
        if config.fields.is_empty() && !config.keep_unmapped {
            return Err(Error::config(
                "field mapping: `fields` is empty and `keep-unmapped` is false, so every \
                 record would be empty; list the output fields",
            ));
        }
        let mappings = config
            .fields
            .into_iter()
            .map(|(output, source)| match source {
                FieldSource::Name(from) => Mapping {
                    output,
                    from,
                    default: None,
                    transform: None,
                },
                FieldSource::Spec(spec) => Mapping {
                    from: spec.from.unwrap_or_else(|| output.clone()),
                    output,
                    default: spec.default,
                    transform: spec.transform,
                },
            })
            .collect::<Vec<Mapping>>();
        let fields = Fields::new(mappings.iter().map(|mapping| mapping.output.as_str()));
        Ok(FieldMappingItemProcessor {
            mappings,
            fields,
            keep_unmapped: config.keep_unmapped,
            seen: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl ItemProcessor<Record, Record> for FieldMappingItemProcessor {
    async fn process(&self, mut item: Record) -> Result<Option<Record>> {
        let number = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        let mut output = Record::with_fields(Arc::clone(&self.fields));
        for mapping in &self.mappings {
            let value = match item.get(&mapping.from) {
                Some(value) => value.clone(),
                None => match &mapping.default {
                    Some(default) => default.clone(),
                    None => {
                        let present: Vec<&str> = item.keys().map(String::as_str).collect();
                        return Err(Error::new(
                            ErrorKind::Parse,
                            format!(
                                "record #{number}: source field `{}` (for output field `{}`) is \
                                 missing and has no default; the record has: {}",
                                mapping.from,
                                mapping.output,
                                present.join(", ")
                            ),
                        ));
                    }
                },
            };
            let value = match mapping.transform {
                Some(transform) => transform.apply(value),
                None => value,
            };
            output.set(&mapping.output, value);
        }
        if self.keep_unmapped {
            for mapping in &self.mappings {
                item.shift_remove(&mapping.from);
            }
            for (key, value) in item {
                if !output.contains_key(&key) {
                    output.insert(key, value);
                }
            }
        }
        Ok(Some(output))
    }
}
