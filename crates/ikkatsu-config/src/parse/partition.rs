//! `partition: {partitioner, step, grid-size, parallelism, remote, heartbeat, stale-after}`.

use super::Parser;
use crate::model::element::ElementParser;
use crate::model::{ElementKind, PartitionDefinition, RemoteDefinition};
use crate::node::Node;

const PARTITION_KEYS: &[&str] = &[
    "partitioner",
    "step",
    "grid-size",
    "parallelism",
    "remote",
    "heartbeat",
    "stale-after",
];
/// The kinds a worker step may be.
const WORKER_KINDS: &[&str] = &["chunk", "tasklet"];
const REMOTE_KEYS: &[&str] = &["broker", "queue", "timeout", "poll-interval"];

impl Parser<'_> {
    pub(crate) fn partition(&mut self, node: &Node, element: &str) -> Option<PartitionDefinition> {
        let what = format!("the partition of {element}");
        let f = self.map(node, &what, PARTITION_KEYS)?;
        let partitioner = self
            .required(&f, "partitioner", &what)
            .and_then(|n| self.component(n, &format!("the partitioner of {element}")));
        let worker = self
            .required(&f, "step", &what)
            .and_then(|n| self.worker(n, element));
        let grid_size = f
            .get("grid-size")
            .and_then(|n| self.count(n, "grid-size", &what, 1));
        let parallelism = f
            .get("parallelism")
            .and_then(|n| self.count(n, "parallelism", &what, 1));
        let remote = f.get("remote").and_then(|n| self.remote(n, &what));
        if remote.is_some() && parallelism.is_some() {
            self.error(
                f.key_position("parallelism"),
                format!("{what}: `parallelism` is for partitions run in this process; with `remote` each worker's `--concurrency` sets it"),
            );
        }
        let heartbeat = f
            .get("heartbeat")
            .and_then(|n| self.duration(n, "heartbeat", &what));
        let stale_after = f
            .get("stale-after")
            .and_then(|n| self.duration(n, "stale-after", &what));
        if let (Some(beat), Some(stale)) = (heartbeat, stale_after)
            && stale <= beat * 2
        {
            self.error(
                f.key_position("stale-after"),
                format!("{what}: `stale-after` must be more than twice `heartbeat`, or a live partition would look abandoned"),
            );
        }
        Some(PartitionDefinition {
            partitioner: partitioner?,
            worker: Box::new(worker?),
            worker_position: f.get("step").map_or(node.position(), Node::position),
            grid_size,
            parallelism,
            remote,
            heartbeat,
            stale_after,
        })
    }

    /// The worker step: a mapping with `chunk` or `tasklet`.
    fn worker(&mut self, node: &Node, element: &str) -> Option<ElementKind> {
        let what = format!("the worker step of {element}");
        let f = self.map(node, &what, WORKER_KINDS)?;
        let kinds: Vec<&str> = WORKER_KINDS.iter().copied().filter(|k| f.has(k)).collect();
        match kinds.as_slice() {
            [key] => {
                let value = f.get(key)?;
                self.element_kind(key, value, f.key_position(key), &what)
            }
            // Unknown keys were reported by `map`.
            [] if !f.entries.is_empty() => None,
            [] => {
                self.error(
                    node.position(),
                    format!("{what} needs `chunk` or `tasklet` (decisions, splits and partitions cannot be partition workers)"),
                );
                None
            }
            _ => {
                self.error(
                    f.key_position("tasklet"),
                    format!("{what} has both `chunk` and `tasklet`: give only one"),
                );
                None
            }
        }
    }

    fn remote(&mut self, node: &Node, what: &str) -> Option<RemoteDefinition> {
        let what = format!("`remote` of {what}");
        let f = self.map(node, &what, REMOTE_KEYS)?;
        let broker = self.required(&f, "broker", &what)?;
        self.name(broker, "broker", &what)?;
        let queue = f
            .get("queue")
            .and_then(|n| self.name(n, "queue", &what))
            .map(|q| q.value);
        let timeout = f
            .get("timeout")
            .and_then(|n| self.duration(n, "timeout", &what));
        let poll_interval = f
            .get("poll-interval")
            .and_then(|n| self.duration(n, "poll-interval", &what));
        Some(RemoteDefinition {
            broker: broker.clone(),
            queue,
            timeout,
            poll_interval,
        })
    }
}
