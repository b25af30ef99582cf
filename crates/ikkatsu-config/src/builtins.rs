//! The built-in component types, from crate `ikkatsu-items`:
//!
//! | kind      | type      | component                                   | properties |
//! |-----------|-----------|---------------------------------------------|------------|
//! | reader    | `csv`     | [`CsvItemReader`]                           | [`CsvReaderConfig`] |
//! | reader    | `jsonl`   | [`JsonLinesItemReader`]                     | [`JsonLinesReaderConfig`] |
//! | processor | `script`  | [`ScriptItemProcessor`] (sees `params`)     | [`ScriptProcessorConfig`] |
//! | processor | `mapping` | [`FieldMappingItemProcessor`]               | [`FieldMappingConfig`] |
//! | writer    | `csv`     | [`CsvItemWriter`]                           | [`CsvWriterConfig`] |
//! | writer    | `jsonl`   | [`JsonLinesItemWriter`]                     | [`JsonLinesWriterConfig`] |
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

    /// The built-ins, with `@name` storage and status-store references of the `overwrite`
    /// step resolved through the application config `app`.
    pub fn with_app_config(app: AppConfig) -> Self {
        let mut registry = ComponentRegistry::new();
        registry.register_builtins();
        // Replaces the `overwrite` type registered without an application config.
        register_overwrite(&mut registry, app);
        registry
    }

    /// Adds the built-in component types to this registry.
    pub fn register_builtins(&mut self) -> &mut Self {
        self.register_reader("csv", |props, _| {
            let config: CsvReaderConfig = props.deserialize()?;
            Ok(Box::new(CsvItemReader::new(config)?))
        })
        .register_reader("jsonl", |props, _| {
            let config: JsonLinesReaderConfig = props.deserialize()?;
            Ok(Box::new(JsonLinesItemReader::new(config)?))
        })
        .register_processor("script", |props, ctx| {
            let config: ScriptProcessorConfig = props.deserialize()?;
            let processor = ScriptItemProcessor::new(config)?.with_job_parameters(ctx.parameters);
            Ok(Arc::new(processor))
        })
        .register_processor("mapping", |props, _| {
            let config: FieldMappingConfig = props.deserialize()?;
            Ok(Arc::new(FieldMappingItemProcessor::new(config)?))
        })
        .register_writer("csv", |props, _| {
            let config: CsvWriterConfig = props.deserialize()?;
            Ok(Box::new(CsvItemWriter::new(config)?))
        })
        .register_writer("jsonl", |props, _| {
            let config: JsonLinesWriterConfig = props.deserialize()?;
            Ok(Box::new(JsonLinesItemWriter::new(config)?))
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
        register_overwrite(self, AppConfig::default());
        self
    }
}

/// Registers the `overwrite` tasklet, resolving its `@name` references through `app`.
fn register_overwrite(registry: &mut ComponentRegistry, app: AppConfig) {
    let app = Arc::new(app);
    registry.register_tasklet("overwrite", move |props, _| {
        let mut config: OverwriteConfig = props.deserialize()?;
        config.source = app.storage_url(&config.source)?;
        config.target = config.target.map(|t| app.storage_url(&t)).transpose()?;
        config.status = config
            .status
            .map(|s| app.status_store_url(&s))
            .transpose()?;
        Ok(Arc::new(OverwriteTasklet::new(config)?))
    });
}
