//! `ikkatsu-bench`: benchmarks that compare ikkatsu with the fastest reasonable hand-written
//! code (the "limit") and with peer batch frameworks, on the same input, in one process.
//!
//! Every benchmark prints one JSON line per contender:
//! `{"bench":NAME,"contender":NAME,"seconds":S,"rows":N}`, then one line with the ratios of
//! ikkatsu's time to the others'. Diagnostics go to stderr so stdout stays machine-readable.
//!
//! Run through `scripts/bench`, which builds this project in release mode.

mod chunk_csv;
mod overwrite_cooperate;
mod overwrite_process;
mod overwrite_remote;
mod overwrite_scan;
mod partition_scale;
mod report;
mod status_redis;

use std::process::ExitCode;

/// The allocator the `ikkatsu` binary uses, for every contender alike (they all run in this
/// one process).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: ikkatsu-bench <BENCH> [OPTIONS]

benches:
  chunk-csv [--rows N] [--runs K] [--only C1,C2,...] [--ikkatsu-items record|typed|row]
            [--keep-dir]
      CSV file -> uppercase the `city` field -> CSV file, chunk size 1000.
      Contenders: limit (hand-written csv loop), peer (spring-batch-rs 0.4), ikkatsu.
      --rows N          rows in the generated input (default 1000000)
      --runs K          run each contender K times, report the best (default 3)
      --only LIST       run only these contenders (comma-separated)
      --ikkatsu-items   ikkatsu's Record-based CSV reader/writer (default) or the
                        serde-typed ones
      --keep-dir        keep the temporary directory with input and outputs
  overwrite-scan [--files N] [--runs K] [--no-rss]
      Overwrite-flow scan (walk *.txt + fresh redb status store + backlog) of a cached
      tree of N empty files (default 1000000; half *.txt) vs `find DIR -type f -name '*.txt'`,
      then peak RSS of the scan in child processes at N and N/10 files.
  overwrite-process [--files N] [--concurrency C] [--status-store embedded|memory]
      Overwrite flow (scan + process, redb status store, read -> uppercase -> write) over N
      ~1 KB files (default 100000) vs a hand-written tokio loop (temp file + rename).
      --status-store memory: the in-memory store instead of redb (diagnostic)
      --runs-in-parallel K [--work-ms MS] [--status-url URL]: instead, K cooperating runs
      (--cooperate, one shared status store: memory: or a Redis URL) against one run, each
      file waiting MS ms (default 20) as a transform waiting on a remote service would;
      prints the speed-up (one run's time / the K runs' time)
  overwrite-remote [--files N] [--size BYTES] [--concurrency C] [--backends sftp,s3]
      Overwrite flow over N files (default 10000) of BYTES (default 10240) on the SFTP and
      S3 test servers (IKKATSU_TEST_* variables) vs rclone copy down, transform, copy up.
  partition-scale [--records N] [--broker URL] [--runs K]
      A CPU-bound chunk step over N records (default 1000000): 1 partition vs 2 local
      partitions vs 2 workers through RabbitMQ (default amqp://guest:guest@127.0.0.1:5672/%2f),
      SQLite repository; then the fixed cost of a partition (64 one-record partitions).
  status-redis [--keys N] [--url URL] [--batch B] [--concurrency C] [--fill-concurrency F]
      needs_processing throughput of the Redis status store over N keys (default 1000000,
      half recorded as done first) in batches of B (1000), C batches in flight (4).
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(bench) = args.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let result = match bench.as_str() {
        "chunk-csv" => chunk_csv::Options::parse(&rest).and_then(|opts| chunk_csv::run(&opts)),
        "overwrite-scan" => {
            overwrite_scan::Options::parse(&rest).and_then(|opts| overwrite_scan::run(&opts))
        }
        // Hidden: one ikkatsu scan in a child process, for its peak RSS.
        "overwrite-scan-child" => overwrite_scan::run_child_main(&rest),
        "overwrite-process" => {
            overwrite_process::Options::parse(&rest).and_then(|opts| match opts.runs_in_parallel {
                Some(parallel) => overwrite_cooperate::run(&opts, parallel),
                None => overwrite_process::run(&opts),
            })
        }
        "overwrite-remote" => {
            overwrite_remote::Options::parse(&rest).and_then(|opts| overwrite_remote::run(&opts))
        }
        "partition-scale" => {
            partition_scale::Options::parse(&rest).and_then(|opts| partition_scale::run(&opts))
        }
        "status-redis" => {
            status_redis::Options::parse(&rest).and_then(|opts| status_redis::run(&opts))
        }
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown bench `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ikkatsu-bench: error: {message}");
            ExitCode::FAILURE
        }
    }
}
