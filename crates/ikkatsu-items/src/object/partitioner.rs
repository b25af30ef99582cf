//! [`FilesPartitioner`]: one partition per object matching a glob on any storage.

use async_trait::async_trait;
use ikkatsu_core::partition::{Partition, Partitioner};
use ikkatsu_core::{ExecutionContext, Result, StepContext};
use serde::Deserialize;

use super::{Location, ObjectItemReader};

/// `partitioner: {type: files, properties: {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilesPartitionerConfig {
    /// The storage URL (or `@name` of the application config); without it `path` is local.
    #[serde(default)]
    pub storage: Option<String>,
    /// A glob (`in/**/*.csv`) or one object, relative to the storage root.
    pub path: String,
    /// Globs of objects left out.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// One partition per object matching `path` (sorted by path; the grid size does not
/// matter). Partition `i` has `partition.file` — the object's path relative to the storage
/// root, or, for local files, its absolute path — and `partition.size` in bytes. No match
/// makes no partitions (the step completes with nothing to do, and says so in the log).
#[derive(Debug, Clone)]
pub struct FilesPartitioner {
    location: Location,
    exclude: Vec<String>,
    local: bool,
}

impl FilesPartitioner {
    /// A partitioner over the objects `config` names; nothing is listed yet.
    pub fn new(config: FilesPartitionerConfig) -> Result<Self> {
        let local = config
            .storage
            .as_deref()
            .is_none_or(|s| s.trim().is_empty());
        Ok(FilesPartitioner {
            location: Location::new(config.storage.as_deref(), &config.path, "partitioner")?,
            exclude: config.exclude,
            local,
        })
    }
}

#[async_trait]
impl Partitioner for FilesPartitioner {
    async fn partition(&self, _grid_size: usize, _ctx: &StepContext) -> Result<Vec<Partition>> {
        let storage = self.location.open()?;
        let files =
            ObjectItemReader::list(&storage, &self.location, &self.exclude, "partitioner").await?;
        Ok(files
            .into_iter()
            .enumerate()
            .map(|(i, file)| {
                let mut context = ExecutionContext::new();
                let path = if self.local {
                    format!("/{}", file.path)
                } else {
                    file.path
                };
                context.put("partition.file", path);
                context.put("partition.size", file.size);
                Partition::new(format!("partition{i}"), context)
            })
            .collect())
    }
}
