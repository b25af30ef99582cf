//! [`SequenceItemReader`]: the integers of a range as records (`{n: 1}`, `{n: 2}`, ...) —
//! the input of range partitions (`from: ${partition.min}`), generated data and demos.

use std::sync::Arc;

use async_trait::async_trait;
use ikkatsu_core::record::Fields;
use ikkatsu_core::{Error, ExecutionContext, ItemReader, ItemStream, Record, Result};
use serde::Deserialize;
use serde_json::Value;

/// The context key of the next value to read (absent once every value was read).
const NEXT_KEY: &str = "sequence.next";
/// The context key set once every value was read.
const DONE_KEY: &str = "sequence.done";

/// `reader: {type: sequence, properties: {from, to, field}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceReaderConfig {
    /// The first integer.
    pub from: i64,
    /// The last integer (inclusive).
    pub to: i64,
    /// The field holding the integer (default `n`).
    #[serde(default = "default_field")]
    pub field: String,
}

fn default_field() -> String {
    "n".to_string()
}

/// Reads `from..=to` as one-field records; restartable (the next value is saved at each
/// commit).
#[derive(Debug)]
pub struct SequenceItemReader {
    next: i64,
    from: i64,
    to: i64,
    done: bool,
    fields: Arc<Fields>,
}

impl SequenceItemReader {
    /// A reader of `config.from..=config.to`; an empty range is an error naming both ends.
    pub fn new(config: SequenceReaderConfig) -> Result<Self> {
        if config.to < config.from {
            return Err(Error::config(format!(
                "sequence reader: `to` ({}) is below `from` ({}); both ends are included",
                config.to, config.from
            )));
        }
        Ok(SequenceItemReader {
            next: config.from,
            from: config.from,
            to: config.to,
            done: false,
            fields: Fields::new([config.field]),
        })
    }
}

#[async_trait]
impl ItemStream for SequenceItemReader {
    async fn open(&mut self, context: &ExecutionContext) -> Result<()> {
        if context.get::<bool>(DONE_KEY)? == Some(true) {
            self.done = true;
        } else if let Some(next) = context.get::<i64>(NEXT_KEY)? {
            if next < self.from || next > self.to {
                return Err(Error::config(format!(
                    "sequence reader: the saved position {next} is outside {}..={}; the range changed since the last run (start a new job instance)",
                    self.from, self.to
                )));
            }
            self.next = next;
        }
        Ok(())
    }

    async fn update(&mut self, context: &mut ExecutionContext) -> Result<()> {
        context.put(NEXT_KEY, self.next);
        context.put(DONE_KEY, self.done);
        Ok(())
    }
}

#[async_trait]
impl ItemReader<Record> for SequenceItemReader {
    async fn read(&mut self) -> Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let value = self.next;
        if value == self.to {
            self.done = true;
        } else {
            self.next += 1;
        }
        Ok(Record::from_values(
            self.fields.clone(),
            vec![Some(Value::from(value))],
        ))
    }

    fn supports_read_ahead(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(from: i64, to: i64) -> SequenceReaderConfig {
        SequenceReaderConfig {
            from,
            to,
            field: "n".into(),
        }
    }

    async fn values(reader: &mut SequenceItemReader, max: usize) -> Vec<i64> {
        let mut items = Vec::new();
        reader.read_chunk(max, &mut items).await.unwrap();
        items
            .iter()
            .map(|r| r.get("n").unwrap().as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn reads_the_range_and_resumes_after_the_last_commit() {
        let mut reader = SequenceItemReader::new(config(5, 9)).unwrap();
        reader.open(&ExecutionContext::new()).await.unwrap();
        assert_eq!(values(&mut reader, 2).await, [5, 6]);
        let mut saved = ExecutionContext::new();
        reader.update(&mut saved).await.unwrap();
        assert_eq!(
            values(&mut reader, 2).await,
            [7, 8],
            "read but not committed"
        );

        let mut again = SequenceItemReader::new(config(5, 9)).unwrap();
        again.open(&saved).await.unwrap();
        assert_eq!(values(&mut again, 10).await, [7, 8, 9]);
        again.update(&mut saved).await.unwrap();
        let mut done = SequenceItemReader::new(config(5, 9)).unwrap();
        done.open(&saved).await.unwrap();
        assert!(values(&mut done, 10).await.is_empty());

        let mut edge = SequenceItemReader::new(config(i64::MAX - 1, i64::MAX)).unwrap();
        assert_eq!(values(&mut edge, 10).await, [i64::MAX - 1, i64::MAX]);
        let err = SequenceItemReader::new(config(3, 2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`to` (2) is below `from` (3)"), "{err}");
        let mut shrunk = SequenceItemReader::new(config(1, 3)).unwrap();
        let mut far = ExecutionContext::new();
        far.put("sequence.next", 7i64);
        let err = shrunk.open(&far).await.unwrap_err().to_string();
        assert!(err.contains("outside 1..=3"), "{err}");
    }
}
