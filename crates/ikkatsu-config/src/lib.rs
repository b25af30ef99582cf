//! # ikkatsu-config
//!
//! YAML job definitions for ikkatsu, in the JSL / JSR-352 shape: parse a job file into a
//! [`JobDefinition`], check it with [`JobDefinition::validate`], and build it into an
//! [`ikkatsu_core::Job`] with [`JobDefinition::build`]. Components are named in the file by
//! `type` or by a `ref`, both registered from Rust in a [`ComponentRegistry`]. This crate
//! knows no component: the crates that provide them register their types
//! (`ikkatsu_items::register`, `ikkatsu_overwrite::register`; `ikkatsu::registry` calls them
//! all), and a crate of your own does the same. Named storages and status stores of the
//! application config ([`AppConfig`]) are plain data here; the crates that open them give
//! them their meaning.
//!
//! The modules: [`model`] is what a job file says, with the kinds of flow elements (`chunk`,
//! `tasklet`, and the refused `decision`, `split`, `partition`) in one table
//! (`model::element`); the parser (`parse`) reads it and `build` makes the job through the
//! registry, each implementing its side of the table.
//!
//! Every problem is reported with the file, line, column and key, and as many problems as
//! can be found are reported together ([`ConfigErrors`]); no input makes the parser panic.
//! String values of `params` and of component `properties` may refer to job parameters
//! (`${params.NAME}`), environment variables (`${NAME}`, `${NAME:-default}`) and secret
//! files (`${file:/path}`, or `file:///path` for keys ending in `password`, `passphrase`,
//! `secret`, `token`, `access-key`, `account-key`, `credential`); secrets print as `***`. Relative paths in properties are resolved by the
//! components against the current working directory. The format is described in
//! `docs/job-format.md` and `docs/job.schema.json`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use ikkatsu_config::{ComponentRegistry, JobDefinition};
//! use ikkatsu_core::prelude::*;
//! use ikkatsu_core::Record;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ikkatsu_core::Error> {
//! let yaml = r#"
//! id: numbers
//! params:
//!   count: "4"
//! steps:
//!   - name: copy
//!     chunk:
//!       reader: { type: numbers, properties: { count: "${params.count}" } }
//!       writer: { ref: sink }
//!       chunk-size: 3
//! "#;
//!
//! let sink = VecItemWriter::<Record>::new();
//! let mut registry = ComponentRegistry::new();
//! registry.register_reader("numbers", |props, _ctx| {
//!     #[derive(serde::Deserialize)]
//!     #[serde(deny_unknown_fields)]
//!     struct Config { count: u64 }
//!     let config: Config = props.deserialize()?;
//!     let items = (1..=config.count)
//!         .map(|n| Record::from_iter([("n".to_string(), serde_json::json!(n))]))
//!         .collect();
//!     Ok(Box::new(VecItemReader::new(items)))
//! });
//! let writer = sink.clone();
//! registry.register_writer_ref("sink", move |_props, _ctx| Ok(Box::new(writer.clone())));
//!
//! let definition = JobDefinition::from_str(yaml, "numbers.yaml")?;
//! let job = definition.build(&registry, &JobParameters::new())?;
//! let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
//! let execution = operator
//!     .start(&job, JobParameters::new(), CancellationToken::new())
//!     .await?;
//! assert_eq!(execution.status, BatchStatus::Completed);
//! assert_eq!(sink.items().len(), 4);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod app;
mod build;
mod de;
pub mod error;
mod interpolate;
pub mod model;
mod node;
pub mod parameters;
mod parse;
mod properties;
pub mod registry;
mod secret;

pub use app::{AppConfig, NamedStorage};
pub use error::{ConfigError, ConfigErrors, Position};
pub use model::{
    ChunkDefinition, ComponentDefinition, ComponentSelector, ElementDefinition, ElementKind,
    FlowDefinition, FlowElementDefinition, JobDefinition, ListenerRole, Located, NamedFlow,
    ParamDefinition, RetryDefinition, SkipDefinition, TransitionDefinition,
};
pub use node::Node;
pub use parameters::launch_parameters;
pub use properties::Properties;
pub use registry::{BrokerSettings, BuildContext, ComponentKind, ComponentRegistry};
pub use secret::Secret;
