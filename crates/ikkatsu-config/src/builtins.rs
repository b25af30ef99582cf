//! The built-in component types, from crate `ikkatsu-items`:
//!
//! | kind      | type      | component                                   | properties |
//! |-----------|-----------|---------------------------------------------|------------|
//! | reader    | `csv`     | [`CsvItemReader`]; with `storage`: [`ObjectItemReader::csv`] | [`CsvReaderConfig`]; [`CsvObjectReaderConfig`] |
//! | reader    | `jsonl`   | [`JsonLinesItemReader`]; with `storage`: [`ObjectItemReader::json_lines`] | [`JsonLinesReaderConfig`]; [`ObjectReaderConfig`] |
//! | reader    | `json`    | [`ObjectItemReader::json`]                  | [`ObjectReaderConfig`] |
//! | reader    | `parquet` | `ObjectItemReader::parquet` (feature `parquet`) | `ParquetReaderConfig` |
//! | processor | `script`  | [`ScriptItemProcessor`] (sees `params`)     | [`ScriptProcessorConfig`] |
//! | processor | `mapping` | [`FieldMappingItemProcessor`]               | [`FieldMappingConfig`] |
//! | writer    | `csv`     | [`CsvItemWriter`]; with `storage`: [`ObjectItemWriter::csv`] | [`CsvWriterConfig`]; [`CsvObjectWriterConfig`] |
//! | writer    | `jsonl`   | [`JsonLinesItemWriter`]; with `storage`: [`ObjectItemWriter::json_lines`] | [`JsonLinesWriterConfig`]; [`ObjectWriterConfig`] |
//! | writer    | `json`    | [`ObjectItemWriter::json`]                  | [`ObjectWriterConfig`] |
//! | writer    | `parquet` | `ObjectItemWriter::parquet` (feature `parquet`) | `ParquetWriterConfig` |
//! | tasklet   | `shell`   | [`ShellTasklet`]                            | [`ShellTaskletConfig`] |
//! | tasklet   | `log`     | [`LogTasklet`]                              | [`LogTaskletConfig`] |
//! | tasklet   | `noop`    | [`LogTasklet`] without a message            | none |
//! | tasklet   | `overwrite` | [`OverwriteTasklet`] (crate `ikkatsu-overwrite`) | [`OverwriteConfig`] |

use std::sync::Arc;

use ikkatsu_items::csv::{CsvItemReader, CsvItemWriter, CsvReaderConfig, CsvWriterConfig};
use ikkatsu_items::jsonl::{
    JsonLinesItemReader, JsonLinesItemWriter, JsonLinesReaderConfig, JsonLinesWriterConfig,
};
use ikkatsu_items::log::{LogTasklet, LogTaskletConfig};
use ikkatsu_items::mapping::{FieldMappingConfig, FieldMappingItemProcessor};
use ikkatsu_items::object::{
    CsvObjectReaderConfig, CsvObjectWriterConfig, ObjectItemReader, ObjectItemWriter,
    ObjectReaderConfig, ObjectWriterConfig,
};
use ikkatsu_items::script::{ScriptItemProcessor, ScriptProcessorConfig};
use ikkatsu_items::shell::{ShellTasklet, ShellTaskletConfig};
use ikkatsu_overwrite::{OverwriteConfig, OverwriteTasklet};
use serde::Deserialize;

use crate::app::AppConfig;
use crate::registry::ComponentRegistry;

/// `noop` takes no properties.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoProperties {}

impl ComponentRegistry {
    /// A registry with the built-in component types of `ikkatsu-items` (see the table in
    /// the module [`builtins`](crate::builtins)).
    pub fn with_builtins() -> Self {
        ComponentRegistry::with_app_config(AppConfig::default())
    }

    /// The built-ins, with `@name` storage and status-store references (the `storage` of
    /// file readers and writers, the `overwrite` step's) resolved through the application
    /// config `app`.
    pub fn with_app_config(app: AppConfig) -> Self {
        let mut registry = ComponentRegistry::new();
        registry.register_builtins();
        let app = Arc::new(app);
        // Replace the types registered without an application config.
        register_storage_items(&mut registry, app.clone());
        register_overwrite(&mut registry, app);
        registry
    }

    /// Adds the built-in component types to this registry.
    pub fn register_builtins(&mut self) -> &mut Self {
        self.register_processor("script", |props, ctx| {
            let config: ScriptProcessorConfig = props.deserialize()?;
            let processor = ScriptItemProcessor::new(config)?.with_job_parameters(ctx.parameters);
            Ok(Arc::new(processor))
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
        });
        let app = Arc::new(AppConfig::default());
        register_storage_items(self, app.clone());
        register_overwrite(self, app);
        self
    }
}

/// Registers the file readers and writers (`csv`, `jsonl`, `json`, `parquet`). `csv` and
/// `jsonl` with a `storage` property, and `json` and `parquet` always, read objects on a
/// storage (one or a glob) and write part files; their `@name` storages are resolved
/// through `app`. Without `storage`, `csv` and `jsonl` read and write one local file.
fn register_storage_items(registry: &mut ComponentRegistry, app: Arc<AppConfig>) {
    let resolve = move |storage: &mut Option<String>| -> ikkatsu_core::Result<()> {
        if let Some(reference) = storage.as_mut() {
            *reference = app.storage_url(reference)?;
        }
        Ok(())
    };
    let r = resolve.clone();
    registry.register_reader("csv", move |props, _| {
        if props.get("storage").is_none() {
            let config: CsvReaderConfig = props.deserialize()?;
            return Ok(Box::new(CsvItemReader::new(config)?));
        }
        let mut config: CsvObjectReaderConfig = props.deserialize()?;
        r(&mut config.storage)?;
        Ok(Box::new(ObjectItemReader::csv(config)?))
    });
    let r = resolve.clone();
    registry.register_reader("jsonl", move |props, _| {
        if props.get("storage").is_none() {
            let config: JsonLinesReaderConfig = props.deserialize()?;
            return Ok(Box::new(JsonLinesItemReader::new(config)?));
        }
        let mut config: ObjectReaderConfig = props.deserialize()?;
        r(&mut config.storage)?;
        Ok(Box::new(ObjectItemReader::json_lines(config)?))
    });
    let r = resolve.clone();
    registry.register_reader("json", move |props, _| {
        let mut config: ObjectReaderConfig = props.deserialize()?;
        r(&mut config.storage)?;
        Ok(Box::new(ObjectItemReader::json(config)?))
    });
    let r = resolve.clone();
    registry.register_writer("csv", move |props, _| {
        if props.get("storage").is_none() {
            let config: CsvWriterConfig = props.deserialize()?;
            return Ok(Box::new(CsvItemWriter::new(config)?));
        }
        let mut config: CsvObjectWriterConfig = props.deserialize()?;
        r(&mut config.storage)?;
        Ok(Box::new(ObjectItemWriter::csv(config)?))
    });
    let r = resolve.clone();
    registry.register_writer("jsonl", move |props, _| {
        if props.get("storage").is_none() {
            let config: JsonLinesWriterConfig = props.deserialize()?;
            return Ok(Box::new(JsonLinesItemWriter::new(config)?));
        }
        let mut config: ObjectWriterConfig = props.deserialize()?;
        r(&mut config.storage)?;
        Ok(Box::new(ObjectItemWriter::json_lines(config)?))
    });
    let r = resolve.clone();
    registry.register_writer("json", move |props, _| {
        let mut config: ObjectWriterConfig = props.deserialize()?;
        r(&mut config.storage)?;
        Ok(Box::new(ObjectItemWriter::json(config)?))
    });
    #[cfg(feature = "parquet")]
    {
        use ikkatsu_items::object::{ParquetReaderConfig, ParquetWriterConfig};
        let r = resolve.clone();
        registry.register_reader("parquet", move |props, _| {
            let mut config: ParquetReaderConfig = props.deserialize()?;
            r(&mut config.storage)?;
            Ok(Box::new(ObjectItemReader::parquet(config)?))
        });
        let r = resolve;
        registry.register_writer("parquet", move |props, _| {
            let mut config: ParquetWriterConfig = props.deserialize()?;
            r(&mut config.storage)?;
            Ok(Box::new(ObjectItemWriter::parquet(config)?))
        });
    }
}

/// Registers the `overwrite` tasklet, resolving its `@name` references through `app`.
fn register_overwrite(registry: &mut ComponentRegistry, app: Arc<AppConfig>) {
    registry.register_tasklet("overwrite", move |props, _| {
        let mut config: OverwriteConfig = props.deserialize()?;
        config.resolve_names(|s| app.storage_url(s), |s| app.status_store_url(s))?;
        Ok(Arc::new(OverwriteTasklet::new(config)?))
    });
}
