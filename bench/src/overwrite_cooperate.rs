//! `overwrite-process --runs-in-parallel K`: the speed-up of K cooperating runs of one flow
//! (`--cooperate`, one shared status store, each run with its own state directory) over one
//! run, on the same tree.
//!
//! A cooperating run adds workers where the files are, so the bench gives each file a wait
//! (`--work-ms`, default 20 ms) standing for what a real transform waits on (a remote
//! storage, a service, a command): with files that cost only CPU, K runs on one machine
//! share the same cores. Every run has the same concurrency (`--concurrency`, default 2 ×
//! cores). The status store is `memory:` (the runs are flows of this one process) unless
//! `--status-url` names a Redis server or cluster shared by the runs.
//!
//! Contenders, in alternating order over `--runs` rounds: `one-run` and `cooperating-K`.
//! Both are checked: every file upper-cased exactly once, nothing else left in the tree.
//!
//! Output: one line per contender and round, then
//! `{"bench":"overwrite-process","runs_in_parallel":K,"speedup":X,"round_speedups":[…]}`
//! where `X` is the geometric mean of the rounds' one-run / cooperating time.

use crate::overwrite_process::{BENCH, Options, generate, verify};
use crate::report;

/// Runs the cooperating-runs comparison.
pub fn run(opts: &Options, parallel: usize) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("ikkatsu-bench-overwrite-cooperate-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let root = dir.path().join("files");
    let concurrency = opts.concurrency();
    let runtime = imp::runtime()?;
    let cooperating = format!("cooperating-{parallel}");
    let mut speedups = Vec::new();
    for round in 1..=opts.runs() {
        let order = report::round_order(round, ["one-run", cooperating.as_str()]);
        let mut seconds = [0.0f64; 2];
        for (position, name) in order.into_iter().enumerate() {
            generate(&root, opts.files())?;
            let runs = if name == "one-run" { 1 } else { parallel };
            let state = dir.path().join(format!("state-{name}-{round}"));
            let namespace = format!("bench-coop-{}-{round}-{name}", std::process::id());
            let elapsed = imp::runs(&runtime, &root, &state, &namespace, runs, concurrency, opts)?;
            verify(&root, opts.files()).map_err(|e| format!("contender `{name}`: {e}"))?;
            println!(
                r#"{{"bench":"{BENCH}","contender":"{name}","seconds":{elapsed:.6},"files":{},"concurrency":{concurrency},"work_ms":{},"round":{round},"position":{}}}"#,
                opts.files(),
                opts.work_ms(),
                position + 1
            );
            seconds[usize::from(runs > 1)] = elapsed;
        }
        speedups.push(seconds[0] / seconds[1]);
    }
    let (geometric_mean, shown) = report::mean_ratio(&speedups);
    println!(
        r#"{{"bench":"{BENCH}","runs_in_parallel":{parallel},"speedup":{geometric_mean:.4},"round_speedups":{shown}}}"#
    );
    Ok(())
}

#[cfg(not(feature = "ikkatsu"))]
mod imp {
    use std::path::Path;

    pub struct Runtime;

    pub fn runtime() -> Result<Runtime, String> {
        Err(
            "this ikkatsu-bench was built without the `ikkatsu` feature; build it with default \
             features (`scripts/bench overwrite-process`)"
                .into(),
        )
    }

    pub fn runs(
        _: &Runtime,
        _: &Path,
        _: &Path,
        _: &str,
        _: usize,
        _: usize,
        _: &super::Options,
    ) -> Result<f64, String> {
        unreachable!("runtime() fails without the ikkatsu feature")
    }
}

#[cfg(feature = "ikkatsu")]
mod imp {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use ikkatsu_core::{CancellationToken, Error};
    use ikkatsu_overwrite::{
        OverwriteFlow, OverwriteOptions, StatusStoreOptions, open_status_store,
    };
    use ikkatsu_storage::Storage;
    use tokio::runtime::Runtime;

    pub fn runtime() -> Result<Runtime, String> {
        Runtime::new().map_err(|e| format!("cannot start the tokio runtime: {e}"))
    }

    /// `runs` flows at once over `root`, cooperating when more than one; the seconds until
    /// the last one ends.
    pub fn runs(
        runtime: &Runtime,
        root: &Path,
        state: &Path,
        namespace: &str,
        runs: usize,
        concurrency: usize,
        opts: &super::Options,
    ) -> Result<f64, String> {
        let root_text = root
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", root.display()))?
            .to_string();
        let url = opts.status_url().to_string();
        let work = Duration::from_millis(opts.work_ms());
        let files = opts.files();
        let result = runtime.block_on(async {
            let status = open_status_store(&url, StatusStoreOptions::new(namespace)).await?;
            let started = Instant::now();
            let flows = (0..runs).map(|run| {
                let status = status.clone();
                let root_text = root_text.clone();
                let state = state.join(format!("run-{run}"));
                async move {
                    let upper = crate::overwrite_process::upper_case(work);
                    let mut options = OverwriteOptions::new(state);
                    options.concurrency = Some(concurrency);
                    options.cooperate = runs > 1;
                    let flow =
                        OverwriteFlow::new(Storage::open(&root_text)?, status, upper, options);
                    let cancel = CancellationToken::new();
                    flow.scan(&cancel).await?;
                    let summary = flow.process(&cancel, None).await?;
                    if let Some(first) = summary.failures.first() {
                        eprintln!(
                            "{}: first failure: {}: {}",
                            super::BENCH,
                            first.path,
                            first.error
                        );
                    }
                    Ok::<_, Error>(summary.progress)
                }
            });
            let progress = futures::future::try_join_all(flows).await?;
            let elapsed = started.elapsed().as_secs_f64();
            status.clear().await?;
            status.close().await?;
            Ok::<_, Error>((progress, elapsed))
        });
        let (progress, elapsed) =
            result.map_err(|e| format!("ikkatsu flow failed: {}", e.report()))?;
        let done: u64 = progress.iter().map(|p| p.done).sum();
        let failed: u64 = progress.iter().map(|p| p.failed).sum();
        let shares: Vec<u64> = progress.iter().map(|p| p.done).collect();
        eprintln!(
            "{}: {runs} run(s) in {elapsed:.3}s, files done per run {shares:?}",
            super::BENCH
        );
        if done != files || failed != 0 {
            return Err(format!(
                "{runs} run(s) did {done} files and failed {failed}, expected {files} done"
            ));
        }
        Ok(elapsed)
    }
}
