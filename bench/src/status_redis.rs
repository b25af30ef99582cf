//! `status-redis`: `StatusStore::needs_processing` throughput of the Redis status store.
//!
//! In a fresh random namespace (`bench-<pid>-<nanos>`) of the Redis server at `--url`
//! (default `redis://127.0.0.1:6379`), every other one of `--keys N` (default 1,000,000)
//! paths is first recorded as done with `report_done` (not timed; `--fill-concurrency`
//! calls in flight at once, default 64, over the store's one multiplexed connection). Then
//! `needs_processing` is timed over all N paths in batches of `--batch` (default 1000) with
//! `--concurrency` batches in flight (default 4; `1` is the scan phase's one-batch-at-a-time
//! pattern, which is also measured and reported). The answer is checked: exactly the
//! paths not recorded as done. The namespace is cleared afterwards, also after a failure.
//!
//! With `--cluster URL` (a `redis+cluster://…` URL; default: `$IKKATSU_TEST_REDIS_CLUSTER_URL`
//! when set, `--cluster none` to skip) the same is measured on the Redis Cluster after the
//! single server.
//!
//! Output: one line per store and concurrency (`"store":"single"` or `"cluster"`), then
//! `{"bench":"status-redis","keys_per_second":X,"cluster_keys_per_second":Y,"goal":200000}`
//! for `--concurrency` (`cluster_keys_per_second` only with a cluster).

use crate::overwrite_scan::{flag_value, parse_count, split_flag};

/// Name of the bench in the JSON output.
pub const BENCH: &str = "status-redis";
/// The throughput the issue asks for.
#[cfg(feature = "ikkatsu")]
const GOAL: u64 = 200_000;

/// Command-line options of `status-redis`.
pub struct Options {
    keys: u64,
    url: String,
    batch: usize,
    concurrency: usize,
    fill_concurrency: usize,
    cluster: Option<String>,
}

impl Options {
    /// Parses `[--keys N] [--url URL] [--cluster URL|none] [--batch B] [--concurrency C]
    /// [--fill-concurrency F]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            keys: 1_000_000,
            url: "redis://127.0.0.1:6379".into(),
            batch: 1000,
            concurrency: 4,
            fill_concurrency: 64,
            cluster: std::env::var("IKKATSU_TEST_REDIS_CLUSTER_URL")
                .ok()
                .filter(|u| !u.is_empty()),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            let mut value = || flag_value(flag, inline.clone(), &mut it);
            match flag {
                "--keys" => opts.keys = parse_count(flag, &value()?, 2)?,
                "--url" => {
                    opts.url = value()?;
                    let lower = opts.url.to_ascii_lowercase();
                    if !lower.starts_with("redis://") && !lower.starts_with("rediss://") {
                        return Err("--url must be a redis:// or rediss:// URL".into());
                    }
                }
                "--cluster" => {
                    let url = value()?;
                    if url == "none" {
                        opts.cluster = None;
                    } else if url.to_ascii_lowercase().starts_with("redis+cluster://") {
                        opts.cluster = Some(url);
                    } else {
                        return Err("--cluster must be a redis+cluster:// URL or `none`".into());
                    }
                }
                "--batch" => opts.batch = parse_count(flag, &value()?, 1)? as usize,
                "--concurrency" => opts.concurrency = parse_count(flag, &value()?, 1)? as usize,
                "--fill-concurrency" => {
                    opts.fill_concurrency = parse_count(flag, &value()?, 1)? as usize;
                }
                other => return Err(format!("{BENCH}: unknown option `{other}`")),
            }
        }
        Ok(opts)
    }
}

#[cfg(not(feature = "ikkatsu"))]
pub fn run(_opts: &Options) -> Result<(), String> {
    Err(
        "this ikkatsu-bench was built without the `ikkatsu` feature; build it with default \
         features (`scripts/bench status-redis`)"
            .into(),
    )
}

#[cfg(feature = "ikkatsu")]
pub fn run(opts: &Options) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    runtime.block_on(imp::run(opts))
}

#[cfg(feature = "ikkatsu")]
mod imp {
    use std::sync::Arc;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use futures::StreamExt;
    use ikkatsu_overwrite::{StatusStore, StatusStoreOptions, mask_url, open_status_store};
    use ikkatsu_storage::FileInfo;

    use super::{BENCH, GOAL, Options};

    fn file(i: u64) -> FileInfo {
        FileInfo::new(format!("dir{:04}/file{i:07}.txt", i / 1000), 1 + i % 7)
    }

    pub async fn run(opts: &Options) -> Result<(), String> {
        let single = run_on(opts, &opts.url, "single").await?;
        let cluster = match &opts.cluster {
            Some(url) => Some(run_on(opts, url, "cluster").await?),
            None => None,
        };
        match cluster {
            Some(c) => println!(
                r#"{{"bench":"{BENCH}","keys_per_second":{single:.0},"cluster_keys_per_second":{c:.0},"goal":{GOAL}}}"#
            ),
            None => {
                println!(r#"{{"bench":"{BENCH}","keys_per_second":{single:.0},"goal":{GOAL}}}"#)
            }
        }
        Ok(())
    }

    /// Measures on the store at `url` (`store` names it in the output); returns the
    /// throughput at `--concurrency`.
    async fn run_on(opts: &Options, url: &str, label: &str) -> Result<f64, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let namespace = format!("bench-{}-{nanos}", std::process::id());
        let store = open_status_store(url, StatusStoreOptions::new(&namespace))
            .await
            .map_err(|e| {
                format!(
                    "cannot open the Redis status store at {}: {}",
                    mask_url(url),
                    e.report()
                )
            })?;
        eprintln!("{BENCH}: namespace `{namespace}` on {}", store.describe());
        let result = measure(opts, &store, label).await;
        let started = Instant::now();
        let cleared = store.clear().await;
        eprintln!(
            "{BENCH}: cleared the namespace in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let _ = store.close().await;
        let rate = result?;
        cleared.map_err(|e| format!("cannot clear namespace `{namespace}`: {}", e.report()))?;
        Ok(rate)
    }

    async fn measure(
        opts: &Options,
        store: &Arc<dyn StatusStore>,
        label: &str,
    ) -> Result<f64, String> {
        let started = Instant::now();
        let done = opts.keys / 2;
        let mut fills = futures::stream::iter((0..opts.keys).step_by(2))
            .map(|i| {
                let store = store.clone();
                async move {
                    let f = file(i);
                    store
                        .report_done(&f, &f)
                        .await
                        .map_err(|e| format!("report_done: {}", e.report()))
                }
            })
            .buffer_unordered(opts.fill_concurrency);
        while let Some(result) = fills.next().await {
            result?;
        }
        let fill = started.elapsed().as_secs_f64();
        eprintln!(
            "{BENCH}: recorded {done} of {} keys as done in {fill:.1}s ({:.0}/s, {} report_done \
             calls in flight)",
            opts.keys,
            done as f64 / fill,
            opts.fill_concurrency
        );

        let batches: Vec<Vec<FileInfo>> = (0..opts.keys)
            .collect::<Vec<_>>()
            .chunks(opts.batch)
            .map(|chunk| chunk.iter().map(|&i| file(i)).collect())
            .collect();
        let mut levels = vec![1];
        if opts.concurrency != 1 {
            levels.push(opts.concurrency);
        }
        let mut chosen = 0.0;
        for concurrency in levels {
            let batches = batches.clone();
            let started = Instant::now();
            let mut lookups = futures::stream::iter(batches)
                .map(|batch| {
                    let store = store.clone();
                    async move {
                        store
                            .needs_processing(batch)
                            .await
                            .map_err(|e| format!("needs_processing: {}", e.report()))
                    }
                })
                .buffered(concurrency);
            let mut needed = 0u64;
            let mut wrong = None;
            while let Some(result) = lookups.next().await {
                for f in result? {
                    needed += 1;
                    // Paths of even numbers were recorded as done: none may come back.
                    let number = f.path.rsplit_once("file").and_then(|(_, n)| {
                        n.strip_suffix(".txt").and_then(|n| n.parse::<u64>().ok())
                    });
                    if number.is_none_or(|n| n % 2 == 0) {
                        wrong.get_or_insert(f.path);
                    }
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            if let Some(path) = wrong {
                return Err(format!("needs_processing returned `{path}`, which is done"));
            }
            if needed != opts.keys - done {
                return Err(format!(
                    "needs_processing returned {needed} files, expected {}",
                    opts.keys - done
                ));
            }
            let rate = opts.keys as f64 / seconds;
            println!(
                r#"{{"bench":"{BENCH}","contender":"ikkatsu","store":"{label}","seconds":{seconds:.6},"keys":{},"batch":{},"concurrency":{concurrency},"keys_per_second":{rate:.0}}}"#,
                opts.keys, opts.batch
            );
            chosen = rate;
        }
        Ok(chosen)
    }
}
