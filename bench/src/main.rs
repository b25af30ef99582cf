//! `ikkatsu-bench`: benchmarks that compare ikkatsu with the fastest reasonable hand-written
//! code (the "limit") and with peer batch frameworks, on the same input, in one process.
//!
//! Every benchmark prints one JSON line per contender:
//! `{"bench":NAME,"contender":NAME,"seconds":S,"rows":N}`, then one line with the ratios of
//! ikkatsu's time to the others'. Diagnostics go to stderr so stdout stays machine-readable.
//!
//! Run through `scripts/bench`, which builds this project in release mode.

mod chunk_csv;
mod report;

use std::process::ExitCode;

const USAGE: &str = "\
usage: ikkatsu-bench <BENCH> [OPTIONS]

benches:
  chunk-csv [--rows N] [--runs K] [--only C1,C2,...] [--ikkatsu-items record|typed]
            [--keep-dir]
      CSV file -> uppercase the `city` field -> CSV file, chunk size 1000.
      Contenders: limit (hand-written csv loop), peer (spring-batch-rs 0.4), ikkatsu.
      --rows N          rows in the generated input (default 1000000)
      --runs K          run each contender K times, report the best (default 1)
      --only LIST       run only these contenders (comma-separated)
      --ikkatsu-items   ikkatsu's Record-based CSV reader/writer (default) or the
                        serde-typed ones
      --keep-dir        keep the temporary directory with input and outputs
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
