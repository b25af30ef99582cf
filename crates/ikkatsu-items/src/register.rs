//! [`register`]: this crate's component types under their job-file names.
//!
//! | kind      | type      | component                                   | properties |
//! |-----------|-----------|---------------------------------------------|------------|
//! | reader    | `csv`     | [`CsvItemReader`]; with `storage`: [`ObjectItemReader::csv`] | [`CsvReaderConfig`]; [`CsvObjectReaderConfig`] |
//! | reader    | `jsonl`   | [`JsonLinesItemReader`]; with `storage`: [`ObjectItemReader::json_lines`] | [`JsonLinesReaderConfig`]; [`ObjectReaderConfig`] |
//! | reader    | `json`    | [`ObjectItemReader::json`]                  | [`ObjectReaderConfig`] |
//! | reader    | `parquet` | `ObjectItemReader::parquet` (feature `parquet`) | `ParquetReaderConfig` |
//! | reader    | `sequence` | [`SequenceItemReader`]: the integers `from..=to` | [`SequenceReaderConfig`] |
//! | processor | `script`  | [`ScriptItemProcessor`] (sees `params`)     | [`ScriptProcessorConfig`] |
//! | processor | `mapping` | [`FieldMappingItemProcessor`]               | [`FieldMappingConfig`] |
//! | writer    | `csv`     | [`CsvItemWriter`]; with `storage`: [`ObjectItemWriter::csv`] | [`CsvWriterConfig`]; [`CsvObjectWriterConfig`] |
//! | writer    | `jsonl`   | [`JsonLinesItemWriter`]; with `storage`: [`ObjectItemWriter::json_lines`] | [`JsonLinesWriterConfig`]; [`ObjectWriterConfig`] |
//! | writer    | `json`    | [`ObjectItemWriter::json`]                  | [`ObjectWriterConfig`] |
//! | writer    | `parquet` | `ObjectItemWriter::parquet` (feature `parquet`) | `ParquetWriterConfig` |
//! | tasklet   | `shell`   | [`ShellTasklet`]                            | [`ShellTaskletConfig`] |
//! | tasklet   | `log`     | [`LogTasklet`]                              | [`LogTaskletConfig`] |
//! | tasklet   | `noop`    | [`LogTasklet`] without a message            | none |
//! | listener  | `log`     | [`LogListener`]: job and step events to the log | [`LogListenerConfig`] |
//! | listener  | `command` | [`CommandListener`]: a program run on each event | [`CommandListenerConfig`] |
//! | listener  | `webhook` | [`WebhookListener`]: each event posted to a URL | [`WebhookListenerConfig`] |
//! | decider   | `script`  | [`ScriptDecider`] (sees `params`, `context`, `exit_code`, `status`) | [`ScriptDeciderConfig`] |
//! | partitioner | `range` | [`RangePartitioner`]: `min..=max` cut in `grid-size` parts | [`RangePartitionerConfig`] |
//! | partitioner | `list`  | [`ListPartitioner`]: one partition per entry | [`ListPartitionerConfig`] |
//! | partitioner | `files` | [`FilesPartitioner`]: one partition per object matching a glob | [`FilesPartitionerConfig`] |
//!
//! Under the names of Surfin Batch's JSL, given with `ref`:
//!
//! | kind | ref | component |
//! |------|-----|-----------|
//! | job listener | `loggingJobListener` | [`LoggingListener`] |
//! | step listener | `loggingStepListener` | [`LoggingListener`] |
//! | chunk listener | `loggingChunkListener` | [`LoggingListener`] |
//! | item read listener | `loggingItemReadListener` | [`LoggingListener`] |
//! | item process listener | `loggingItemProcessListener` | [`LoggingListener`] |
//! | item write listener | `loggingItemWriteListener` | [`LoggingListener`] |
//! | skip listener | `loggingSkipListener` | [`LoggingListener`] |
//! | retry listener | `loggingRetryItemListener` | [`LoggingListener`] |
//! | incrementer | `timestampIncrementer` | [`TimestampIncrementer`] (parameter `timestamp`) |
//! | decider | `conditionalDecision` | [`ConditionalDecider`] | [`ConditionalDecisionConfig`] |
//!
//! The `storage` of the file readers and writers may name a storage of the application
//! config (`storage: "@inbox"`).

use std::sync::Arc;

use ikkatsu_config::{AppConfig, ComponentRegistry};
use ikkatsu_core::partition::{ListPartitioner, RangePartitioner};
use ikkatsu_storage::StorageConnection;
use serde::Deserialize;

use crate::condition::{ConditionalDecider, ConditionalDecisionConfig};
use crate::csv::{CsvItemReader, CsvItemWriter, CsvReaderConfig, CsvWriterConfig};
use crate::decider::{ScriptDecider, ScriptDeciderConfig};
use crate::incrementer::TimestampIncrementer;
use crate::jsonl::{
    JsonLinesItemReader, JsonLinesItemWriter, JsonLinesReaderConfig, JsonLinesWriterConfig,
};
use crate::log::{LogTasklet, LogTaskletConfig};
use crate::mapping::{FieldMappingConfig, FieldMappingItemProcessor};
use crate::notify::{
    CommandListener, CommandListenerConfig, LogListener, LogListenerConfig, LoggingListener,
    WebhookListener, WebhookListenerConfig,
};
use crate::object::{
    CsvObjectReaderConfig, CsvObjectWriterConfig, FilesPartitioner, FilesPartitionerConfig,
    ObjectItemReader, ObjectItemWriter, ObjectReaderConfig, ObjectWriterConfig,
};
use crate::script::{ScriptItemProcessor, ScriptProcessorConfig};
use crate::sequence::{SequenceItemReader, SequenceReaderConfig};
use crate::shell::{ShellTasklet, ShellTaskletConfig};

/// `partitioner: {type: range, properties: {min, max}}` (both inclusive).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangePartitionerConfig {
    /// The first value.
    pub min: i64,
    /// The last value.
    pub max: i64,
}

/// `partitioner: {type: list, properties: {partitions: [{KEY: VALUE, ...}, ...]}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPartitionerConfig {
    /// One mapping per partition; its keys become `partition.KEY`.
    pub partitions: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `noop` takes no properties.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoProperties {}

/// Registers the types of the table above in `registry`; `@name` storages are resolved
/// through the application config `app`.
pub fn register(registry: &mut ComponentRegistry, app: &Arc<AppConfig>) {
    registry
        .register_processor("script", |props, ctx| {
            let config: ScriptProcessorConfig = props.deserialize()?;
            let processor = ScriptItemProcessor::new(config)?.with_job_parameters(ctx.parameters);
            Ok(Arc::new(processor))
        })
        .register_reader("sequence", |props, _| {
            let config: SequenceReaderConfig = props.deserialize()?;
            Ok(Box::new(SequenceItemReader::new(config)?))
        })
        .register_processor("mapping", |props, _| {
            let config: FieldMappingConfig = props.deserialize()?;
            Ok(Arc::new(FieldMappingItemProcessor::new(config)?))
        })
        .register_tasklet("shell", |props, _| {
            let config: ShellTaskletConfig = props.deserialize()?;
            Ok(Arc::new(ShellTasklet::new(config)?))
        })
        .register_tasklet("log", |props, _| {
            let config: LogTaskletConfig = props.deserialize()?;
            Ok(Arc::new(LogTasklet::new(config)?))
        })
        .register_tasklet("noop", |props, _| {
            let NoProperties {} = props.deserialize()?;
            Ok(Arc::new(LogTasklet::new(LogTaskletConfig::default())?))
        })
        .register_decider("script", |props, _| {
            let config: ScriptDeciderConfig = props.deserialize()?;
            Ok(Arc::new(ScriptDecider::new(config)?))
        })
        .register_listener("log", |props, ctx| {
            let config: LogListenerConfig = props.deserialize()?;
            Ok(LogListener::listeners(config, ctx.job_name))
        })
        .register_listener("command", |props, ctx| {
            let config: CommandListenerConfig = props.deserialize()?;
            CommandListener::listeners(config, ctx.job_name)
        })
        .register_listener("webhook", |props, ctx| {
            let config: WebhookListenerConfig = props.deserialize()?;
            WebhookListener::listeners(config, ctx.job_name)
        })
        .register_partitioner("range", |props, _| {
            let config: RangePartitionerConfig = props.deserialize()?;
            Ok(Arc::new(RangePartitioner::new(config.min, config.max)?))
        })
        .register_partitioner("list", |props, _| {
            let config: ListPartitionerConfig = props.deserialize()?;
            if config.partitions.is_empty() {
                return Err(ikkatsu_core::Error::config(
                    "`partitions` of the list partitioner is empty: give at least one mapping",
                ));
            }
            Ok(Arc::new(ListPartitioner::new(config.partitions)))
        });
    let a = app.clone();
    registry.register_partitioner("files", move |props, _| {
        let mut config: FilesPartitionerConfig = props.deserialize()?;
        resolve(&a, &mut config.storage)?;
        Ok(Arc::new(FilesPartitioner::new(config)?))
    });
    register_file_items(registry, app);
    register_surfin_names(registry);
}

/// Registers the components of the second table above.
fn register_surfin_names(registry: &mut ComponentRegistry) {
    let logging = Arc::new(LoggingListener);
    registry
        .register_job_listener("loggingJobListener", logging.clone())
        .register_step_listener("loggingStepListener", logging.clone())
        .register_chunk_listener("loggingChunkListener", logging.clone())
        .register_item_read_listener("loggingItemReadListener", logging.clone())
        .register_item_process_listener("loggingItemProcessListener", logging.clone())
        .register_item_write_listener("loggingItemWriteListener", logging.clone())
        .register_skip_listener("loggingSkipListener", logging.clone())
        .register_retry_listener("loggingRetryItemListener", logging)
        .register_incrementer(
            "timestampIncrementer",
            Arc::new(TimestampIncrementer::default()),
        )
        .register_decider_ref("conditionalDecision", |props, _| {
            let config: ConditionalDecisionConfig = props.deserialize()?;
            Ok(Arc::new(ConditionalDecider::new(config)))
        });
}

/// `storage` with a leading `@name` replaced by the named storage of `app` as one URL (its
/// options as query parameters).
fn resolve(app: &AppConfig, storage: &mut Option<String>) -> ikkatsu_core::Result<()> {
    if let Some(reference) = storage.as_mut() {
        let named = app.storage(reference)?;
        *reference = StorageConnection {
            url: named.url,
            options: named.options,
        }
        .to_url()?;
    }
    Ok(())
}

/// Registers the file readers and writers (`csv`, `jsonl`, `json`, `parquet`). `csv` and
/// `jsonl` with a `storage` property, and `json` and `parquet` always, read objects on a
/// storage (one or a glob) and write part files. Without `storage`, `csv` and `jsonl` read
/// and write one local file.
fn register_file_items(registry: &mut ComponentRegistry, app: &Arc<AppConfig>) {
    let a = app.clone();
    registry.register_reader("csv", move |props, _| {
        if props.get("storage").is_none() {
            let config: CsvReaderConfig = props.deserialize()?;
            return Ok(Box::new(CsvItemReader::new(config)?));
        }
        let mut config: CsvObjectReaderConfig = props.deserialize()?;
        resolve(&a, &mut config.storage)?;
        Ok(Box::new(ObjectItemReader::csv(config)?))
    });
    let a = app.clone();
    registry.register_reader("jsonl", move |props, _| {
        if props.get("storage").is_none() {
            let config: JsonLinesReaderConfig = props.deserialize()?;
            return Ok(Box::new(JsonLinesItemReader::new(config)?));
        }
        let mut config: ObjectReaderConfig = props.deserialize()?;
        resolve(&a, &mut config.storage)?;
        Ok(Box::new(ObjectItemReader::json_lines(config)?))
    });
    let a = app.clone();
    registry.register_reader("json", move |props, _| {
        let mut config: ObjectReaderConfig = props.deserialize()?;
        resolve(&a, &mut config.storage)?;
        Ok(Box::new(ObjectItemReader::json(config)?))
    });
    let a = app.clone();
    registry.register_writer("csv", move |props, _| {
        if props.get("storage").is_none() {
            let config: CsvWriterConfig = props.deserialize()?;
            return Ok(Box::new(CsvItemWriter::new(config)?));
        }
        let mut config: CsvObjectWriterConfig = props.deserialize()?;
        resolve(&a, &mut config.storage)?;
        Ok(Box::new(ObjectItemWriter::csv(config)?))
    });
    let a = app.clone();
    registry.register_writer("jsonl", move |props, _| {
        if props.get("storage").is_none() {
            let config: JsonLinesWriterConfig = props.deserialize()?;
            return Ok(Box::new(JsonLinesItemWriter::new(config)?));
        }
        let mut config: ObjectWriterConfig = props.deserialize()?;
        resolve(&a, &mut config.storage)?;
        Ok(Box::new(ObjectItemWriter::json_lines(config)?))
    });
    let a = app.clone();
    registry.register_writer("json", move |props, _| {
        let mut config: ObjectWriterConfig = props.deserialize()?;
        resolve(&a, &mut config.storage)?;
        Ok(Box::new(ObjectItemWriter::json(config)?))
    });
    #[cfg(feature = "parquet")]
    {
        use crate::object::{ParquetReaderConfig, ParquetWriterConfig};
        let a = app.clone();
        registry.register_reader("parquet", move |props, _| {
            let mut config: ParquetReaderConfig = props.deserialize()?;
            resolve(&a, &mut config.storage)?;
            Ok(Box::new(ObjectItemReader::parquet(config)?))
        });
        let a = app.clone();
        registry.register_writer("parquet", move |props, _| {
            let mut config: ParquetWriterConfig = props.deserialize()?;
            resolve(&a, &mut config.storage)?;
            Ok(Box::new(ObjectItemWriter::parquet(config)?))
        });
    }
}
