//! `partition-scale`: a CPU-bound chunk step over N records (default 1,000,000) as one
//! partition, as 2 local partitions, and as 2 partitions run by 2 workers through RabbitMQ
//! (`PartitionWorker`s in this process, each with its own broker connection, all sharing one
//! SQLite job repository file); then the fixed cost of a partition, from 64 partitions of one
//! record each, locally and remotely.
//!
//! Prints one line per contender and
//! `{"bench":"partition-scale","speedup_local_2":X,"speedup_remote_2":Y,
//!   "overhead_ms_per_partition_local":A,"overhead_ms_per_partition_remote":B}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use ikkatsu_config::{BrokerSettings, ComponentRegistry};
use ikkatsu_core::partition::{
    LocalPartitionHandler, PartitionHandler, PartitionStep, PartitionWorker, RangePartitioner,
    RemotePartitionHandler, StepLocator,
};
use ikkatsu_core::prelude::*;

use crate::overwrite_scan::{flag_value, parse_count, split_flag};
use crate::report;

/// Options of the bench.
pub struct Options {
    records: u64,
    broker: String,
    runs: u32,
}

impl Options {
    /// Parses `--records N`, `--broker URL`, `--runs K`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            records: 1_000_000,
            broker: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            runs: 2,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            let mut value = || flag_value(flag, inline.clone(), &mut it);
            match flag {
                "--records" => opts.records = parse_count(flag, &value()?, 64)?,
                "--broker" => opts.broker = value()?,
                "--runs" => opts.runs = parse_count(flag, &value()?, 1)? as u32,
                other => return Err(format!("partition-scale: unknown option `{other}`")),
            }
        }
        Ok(opts)
    }
}

/// About 2 µs of arithmetic per record, the same whatever runs it.
fn work(n: i64) -> u64 {
    let mut x = n as u64 ^ 0x9E37_79B9_7F4A_7C15;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// Reads `partition.min..=partition.max`, does the work per record in chunks of 1000 and
/// adds the results to a checksum.
struct CpuWorker {
    checksum: Arc<AtomicU64>,
}

#[async_trait]
impl Step for CpuWorker {
    fn name(&self) -> &str {
        "cpu"
    }

    async fn execute(&self, execution: &mut StepExecution, ctx: &StepContext) -> Result<(), Error> {
        let min: i64 = execution
            .execution_context
            .get("partition.min")?
            .unwrap_or(0);
        let max: i64 = execution
            .execution_context
            .get("partition.max")?
            .unwrap_or(-1);
        let checksum = self.checksum.clone();
        let step = ChunkStep::<i64, u64>::builder("cpu")
            .reader(VecItemReader::new((min..=max).collect()))
            .processor(FnItemProcessor::new(|n: i64| Ok(Some(work(n)))))
            .writer(SumWriter { checksum })
            .chunk_size(1000)
            .build()?;
        step.execute(execution, ctx).await
    }
}

struct SumWriter {
    checksum: Arc<AtomicU64>,
}

#[async_trait]
impl ItemStream for SumWriter {}

#[async_trait]
impl ItemWriter<u64> for SumWriter {
    async fn write(&mut self, items: &[u64]) -> Result<(), Error> {
        let sum = items.iter().fold(0u64, |a, b| a.wrapping_add(*b));
        self.checksum.fetch_add(sum, Ordering::Relaxed);
        Ok(())
    }
}

struct Locator {
    worker: Arc<dyn Step>,
}

#[async_trait]
impl StepLocator for Locator {
    async fn worker_step(&self, _job: &JobExecution, _step: &str) -> Result<Arc<dyn Step>, Error> {
        Ok(self.worker.clone())
    }
}

/// One job run: `records` values in `grid` partitions through `handler`.
async fn run_job(
    repository: &Arc<dyn JobRepository>,
    handler: Arc<dyn PartitionHandler>,
    worker: Arc<dyn Step>,
    records: u64,
    grid: usize,
    label: &str,
) -> Result<f64, String> {
    let partitioner = RangePartitioner::new(1, records as i64).map_err(|e| e.to_string())?;
    let step =
        PartitionStep::new("cpu", worker, Arc::new(partitioner), handler).with_grid_size(grid);
    let job = Job::linear("partition-scale", vec![Arc::new(step)]).map_err(|e| e.to_string())?;
    let params = JobParameters::new().with("run", ParameterValue::String(label.to_string()));
    let started = Instant::now();
    let execution = JobOperator::new(repository.clone())
        .start(&job, params, CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    if execution.status != BatchStatus::Completed {
        return Err(format!("{label}: {:?}", execution.exit_status));
    }
    Ok(seconds)
}

/// Runs the bench.
pub fn run(opts: &Options) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(run_async(opts))
}

async fn run_async(opts: &Options) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let repository = ikkatsu_repository_sql::connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    let checksum = Arc::new(AtomicU64::new(0));
    let worker: Arc<dyn Step> = Arc::new(CpuWorker {
        checksum: checksum.clone(),
    });

    let mut registry = ComponentRegistry::new();
    ikkatsu_broker::register(&mut registry);
    let queue = format!("ikkatsu.bench.{}", std::process::id());
    let settings = BrokerSettings::new(&opts.broker, &queue);
    let manager_broker = registry.broker(&settings).map_err(|e| e.to_string())?;
    let shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let broker = registry.broker(&settings).map_err(|e| e.to_string())?;
        let locator = Arc::new(Locator {
            worker: worker.clone(),
        });
        let w = PartitionWorker::new(repository.clone(), broker, locator);
        workers.push(tokio::spawn(w.run(shutdown.clone())));
    }
    let local = |n: usize| -> Arc<dyn PartitionHandler> { Arc::new(LocalPartitionHandler::new(n)) };
    let remote: Arc<dyn PartitionHandler> = Arc::new(RemotePartitionHandler::new(manager_broker));

    let mut best = [f64::MAX; 3];
    let mut sums = [0u64; 3];
    for round in 0..opts.runs {
        for (i, (label, handler, grid)) in [
            ("1-partition", local(1), 1),
            ("2-local", local(2), 2),
            ("2-remote", remote.clone(), 2),
        ]
        .into_iter()
        .enumerate()
        {
            checksum.store(0, Ordering::Relaxed);
            let seconds = run_job(
                &repository,
                handler,
                worker.clone(),
                opts.records,
                grid,
                &format!("{label}-{round}"),
            )
            .await?;
            eprintln!(
                "partition-scale: {label} round {}: {seconds:.3}s",
                round + 1
            );
            best[i] = best[i].min(seconds);
            sums[i] = checksum.load(Ordering::Relaxed);
        }
    }
    if sums[0] != sums[1] || sums[0] != sums[2] {
        return Err(format!("checksums differ: {sums:?}"));
    }
    for (label, seconds) in ["1-partition", "2-local", "2-remote"].iter().zip(best) {
        report::contender("partition-scale", label, seconds, opts.records);
    }

    // The fixed cost of a partition: 64 partitions of one record against one of 64.
    let tiny = |handler: Arc<dyn PartitionHandler>, grid: usize, label: &'static str| {
        let (repository, worker) = (repository.clone(), worker.clone());
        async move { run_job(&repository, handler, worker, 64, grid, label).await }
    };
    let base_local = tiny(local(1), 1, "tiny-local-1").await?;
    let many_local = tiny(local(1), 64, "tiny-local-64").await?;
    let base_remote = tiny(remote.clone(), 1, "tiny-remote-1").await?;
    let many_remote = tiny(remote.clone(), 64, "tiny-remote-64").await?;
    let per = |many: f64, base: f64| ((many - base) / 63.0 * 1000.0).max(0.0);
    shutdown.cancel();
    for w in workers {
        w.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    println!(
        r#"{{"bench":"partition-scale","speedup_local_2":{:.3},"speedup_remote_2":{:.3},"overhead_ms_per_partition_local":{:.2},"overhead_ms_per_partition_remote":{:.2},"goals":{{"speedup_local_2":1.8,"speedup_remote_2":1.7,"overhead_ms_per_partition":20}}}}"#,
        best[0] / best[1],
        best[0] / best[2],
        per(many_local, base_local),
        per(many_remote, base_remote),
    );
    Ok(())
}
