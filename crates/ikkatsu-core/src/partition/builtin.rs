//! Partitioners that need nothing but their settings: a numeric range cut into equal parts,
//! and an explicit list.

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{Partition, Partitioner};
use crate::context::ExecutionContext;
use crate::error::{Error, Result};
use crate::step::StepContext;

/// Cuts the inclusive range `min..=max` into `grid_size` contiguous ranges of equal size (the
/// first ones one larger when it does not divide evenly; fewer partitions than `grid_size`
/// when the range is shorter). Partition `i` has `partition.min` and `partition.max`
/// (inclusive). Spring Batch's sample `ColumnRangePartitioner` without the query: give it
/// the range, or use the SQL partitioner that reads it from a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePartitioner {
    min: i64,
    max: i64,
}

impl RangePartitioner {
    /// The range `min..=max`; an empty range (`max < min`) is an error naming both.
    pub fn new(min: i64, max: i64) -> Result<Self> {
        if max < min {
            return Err(Error::config(format!(
                "range partitioner: `max` ({max}) is below `min` ({min}); the range is inclusive"
            )));
        }
        Ok(RangePartitioner { min, max })
    }

    /// The ranges for `grid_size` partitions, as `(min, max)` inclusive pairs.
    pub fn ranges(&self, grid_size: usize) -> Vec<(i64, i64)> {
        let span = (i128::from(self.max) - i128::from(self.min) + 1) as u128;
        let parts = (grid_size.max(1) as u128).min(span);
        let (size, extra) = (span / parts, span % parts);
        let mut ranges = Vec::with_capacity(parts as usize);
        let mut start = i128::from(self.min);
        for i in 0..parts {
            let len = (size + u128::from(i < extra)) as i128;
            let end = start + len - 1;
            // Both ends lie within min..=max, so they fit an i64.
            ranges.push((start as i64, end as i64));
            start = end + 1;
        }
        ranges
    }
}

#[async_trait]
impl Partitioner for RangePartitioner {
    async fn partition(&self, grid_size: usize, _ctx: &StepContext) -> Result<Vec<Partition>> {
        Ok(self
            .ranges(grid_size)
            .into_iter()
            .enumerate()
            .map(|(i, (min, max))| {
                let mut context = ExecutionContext::new();
                context.put("partition.min", min);
                context.put("partition.max", max);
                Partition::new(format!("partition{i}"), context)
            })
            .collect())
    }
}

/// One partition per entry of a list, whatever the grid size; entry `i`'s keys become
/// `partition.KEY` in partition `i`'s context (a key already starting with `partition.` is
/// kept as is).
#[derive(Debug, Clone, PartialEq)]
pub struct ListPartitioner {
    entries: Vec<Map<String, Value>>,
}

impl ListPartitioner {
    /// A partitioner over `entries`.
    pub fn new(entries: Vec<Map<String, Value>>) -> Self {
        ListPartitioner { entries }
    }
}

#[async_trait]
impl Partitioner for ListPartitioner {
    async fn partition(&self, _grid_size: usize, _ctx: &StepContext) -> Result<Vec<Partition>> {
        Ok(self
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let mut context = ExecutionContext::new();
                for (key, value) in entry {
                    if key.starts_with("partition.") {
                        context.put(key.clone(), value);
                    } else {
                        context.put(format!("partition.{key}"), value);
                    }
                }
                Partition::new(format!("partition{i}"), context)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_range_once() {
        let ranges = RangePartitioner::new(1, 10).unwrap().ranges(3);
        assert_eq!(ranges, vec![(1, 4), (5, 7), (8, 10)]);
        assert_eq!(
            RangePartitioner::new(5, 6).unwrap().ranges(8),
            vec![(5, 5), (6, 6)]
        );
        assert_eq!(RangePartitioner::new(0, 0).unwrap().ranges(0), vec![(0, 0)]);
        let wide = RangePartitioner::new(i64::MIN, i64::MAX).unwrap().ranges(2);
        assert_eq!(wide, vec![(i64::MIN, -1), (0, i64::MAX)]);
        let err = RangePartitioner::new(3, 2).unwrap_err().to_string();
        assert!(err.contains("`max` (2) is below `min` (3)"), "{err}");
    }
}
