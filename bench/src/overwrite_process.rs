//! `overwrite-process`: the whole overwrite flow (scan + process) over small files with a
//! trivial in-process function, against a hand-written tokio loop.
//!
//! `--files N` (default 100,000) files of about 1 KB of lower-case ASCII text, 1000 per
//! directory, are (re)generated in a temporary directory before each contender, so both do
//! the same work. Generation and the check that every file came out upper-cased are not
//! timed.
//!
//! Contenders, in one run:
//! * `limit`: walk the tree (`std::fs::read_dir`, depth first), then a tokio loop
//!   (`buffer_unordered` with ikkatsu's default concurrency, 2 × cores) doing, per file,
//!   read → ASCII uppercase → write a temporary sibling → rename over the original;
//! * `ikkatsu`: [`OverwriteFlow::scan`] then [`OverwriteFlow::process`] with a fresh
//!   embedded (redb) status store, default options, and a [`process_fn`] closure doing
//!   read → ASCII uppercase → write. Everything ikkatsu does per file is in the time: the
//!   status lookups, the journal, the conditional write (new content beside the file, stat
//!   check, rename), the flushes that make it crash-safe, and recording the file as done.
//!   `--status-store memory` runs it with the in-memory status store instead (a diagnostic:
//!   the difference is the embedded store's share).
//!
//! Rounds (`--runs K`, default 2): the contenders run in turn, the first one first in odd
//! rounds and second in even rounds. The order matters on some file systems: ext4 without
//! a journal skips inodes deleted in the last minute (or more) when it allocates one, so
//! the contender that runs second allocates its temporary files among the first one's
//! 100,000 freshly freed inodes and pays for it. Alternating cancels that bias.
//!
//! Output: one line per contender and round, then
//! `{"bench":"overwrite-process","ratio_vs_limit":X,"round_ratios":[…]}` where `X` is the
//! geometric mean of the rounds' ikkatsu / limit ratios.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::overwrite_scan::{flag_value, parse_count, split_flag};
use crate::report;

/// Name of the bench in the JSON output.
pub const BENCH: &str = "overwrite-process";
/// Files per generated directory.
const FILES_PER_DIR: u64 = 1000;

/// Command-line options of `overwrite-process`.
pub struct Options {
    files: u64,
    concurrency: Option<usize>,
    memory_store: bool,
    runs: u32,
    /// `--runs-in-parallel K`: compare K cooperating runs with one (`overwrite_cooperate`).
    pub runs_in_parallel: Option<usize>,
    work_ms: u64,
    status_url: String,
}

impl Options {
    /// Parses `[--files N] [--concurrency C] [--status-store embedded|memory] [--runs K]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            files: 100_000,
            concurrency: None,
            memory_store: false,
            runs: 2,
            runs_in_parallel: None,
            work_ms: 20,
            status_url: "memory:".into(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            let mut value = || flag_value(flag, inline.clone(), &mut it);
            match flag {
                "--files" => opts.files = parse_count(flag, &value()?, 1)?,
                "--runs" => opts.runs = parse_count(flag, &value()?, 1)? as u32,
                "--runs-in-parallel" => {
                    opts.runs_in_parallel = Some(parse_count(flag, &value()?, 2)? as usize);
                }
                "--work-ms" => opts.work_ms = parse_count(flag, &value()?, 0)?,
                "--status-url" => opts.status_url = value()?,
                "--concurrency" => {
                    opts.concurrency = Some(parse_count(flag, &value()?, 1)? as usize);
                }
                "--status-store" => {
                    opts.memory_store = match value()?.as_str() {
                        "embedded" => false,
                        "memory" => true,
                        other => {
                            return Err(format!(
                                "--status-store `{other}`: expected `embedded` or `memory`"
                            ));
                        }
                    }
                }
                other => return Err(format!("{BENCH}: unknown option `{other}`")),
            }
        }
        Ok(opts)
    }

    /// Files in the tree.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Rounds.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// Files at once per run (default 2 × cores).
    pub fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The wait per file of the cooperating-runs comparison.
    pub fn work_ms(&self) -> u64 {
        self.work_ms
    }

    /// The status store the cooperating runs share.
    pub fn status_url(&self) -> &str {
        &self.status_url
    }
}

/// The content of file `i` before processing: about 1 KB of lower-case ASCII text.
fn content(i: u64) -> Vec<u8> {
    const LINE: &str =
        "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs\n";
    let mut text = format!("file number {i}\n");
    while text.len() + LINE.len() <= 1024 {
        text.push_str(LINE);
    }
    text.into_bytes()
}

/// Relative path of file `i`.
fn rel_path(i: u64) -> String {
    format!("d{:04}/f{i:07}.txt", i / FILES_PER_DIR)
}

/// Writes (or rewrites) the `files` input files under `root`.
pub fn generate(root: &Path, files: u64) -> Result<(), String> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8) as u64;
    let dirs = files.div_ceil(FILES_PER_DIR);
    for d in 0..dirs {
        let dir = root.join(format!("d{d:04}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::thread::scope(|scope| -> Result<(), String> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<(), String> {
                    for i in (t..files).step_by(threads as usize) {
                        let path = root.join(rel_path(i));
                        std::fs::write(&path, content(i))
                            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| "a generator thread panicked".to_string())??;
        }
        Ok(())
    })
}

/// Checks that every file holds its content upper-cased and nothing else is in the tree.
pub fn verify(root: &Path, files: u64) -> Result<(), String> {
    for i in 0..files {
        let path = root.join(rel_path(i));
        let got =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if got != content(i).to_ascii_uppercase() {
            return Err(format!(
                "{} was not upper-cased exactly once",
                path.display()
            ));
        }
    }
    let found = walk(root).map_err(|e| format!("cannot walk {}: {e}", root.display()))?;
    if found.len() as u64 != files {
        return Err(format!(
            "{} holds {} files after the run, expected {files} (leftover temporary files?)",
            root.display(),
            found.len()
        ));
    }
    Ok(())
}

/// Every file under `root`, depth first (the limit's walk).
fn walk(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// Runs the bench.
pub fn run(opts: &Options) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("ikkatsu-bench-overwrite-process-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let root = dir.path().join("files");
    let concurrency = opts.concurrency();
    let runtime = imp::runtime()?;
    let mut ratios = Vec::new();
    for round in 1..=opts.runs {
        let order = report::round_order(round, ["limit", "ikkatsu"]);
        let mut seconds = [0.0f64; 2];
        for (position, name) in order.into_iter().enumerate() {
            let started = Instant::now();
            generate(&root, opts.files)?;
            eprintln!(
                "{BENCH}: generated {} files in {:.1}s at {}",
                opts.files,
                started.elapsed().as_secs_f64(),
                root.display()
            );
            let state = dir.path().join(format!("state-{name}-{round}"));
            let elapsed = match name {
                "limit" => imp::limit(&runtime, &root, concurrency)?,
                _ => imp::ikkatsu(&runtime, &root, &state, concurrency, opts)?,
            };
            verify(&root, opts.files).map_err(|e| format!("contender `{name}`: {e}"))?;
            println!(
                r#"{{"bench":"{BENCH}","contender":"{name}","seconds":{elapsed:.6},"files":{},"concurrency":{concurrency},"round":{round},"position":{}}}"#,
                opts.files,
                position + 1
            );
            seconds[usize::from(name == "ikkatsu")] = elapsed;
        }
        ratios.push(seconds[1] / seconds[0]);
    }
    let (geometric_mean, shown) = report::mean_ratio(&ratios);
    println!(
        r#"{{"bench":"{BENCH}","ratio_vs_limit":{geometric_mean:.4},"round_ratios":{shown}}}"#
    );
    Ok(())
}

#[cfg(feature = "ikkatsu")]
pub use imp::upper_case;

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

    pub fn limit(_: &Runtime, _: &Path, _: usize) -> Result<f64, String> {
        unreachable!("runtime() fails without the ikkatsu feature")
    }

    pub fn ikkatsu(
        _: &Runtime,
        _: &Path,
        _: &Path,
        _: usize,
        _: &super::Options,
    ) -> Result<f64, String> {
        unreachable!("runtime() fails without the ikkatsu feature")
    }
}

#[cfg(feature = "ikkatsu")]
mod imp {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use futures::StreamExt;
    use ikkatsu_core::{CancellationToken, Error};
    use ikkatsu_overwrite::{
        OverwriteFlow, OverwriteOptions, StatusStoreOptions, open_status_store, process_fn,
    };
    use ikkatsu_storage::Storage;
    use tokio::runtime::Runtime;

    pub fn runtime() -> Result<Runtime, String> {
        Runtime::new().map_err(|e| format!("cannot start the tokio runtime: {e}"))
    }

    /// The user function of the ikkatsu contenders: read, wait `work` (none when zero),
    /// ASCII uppercase, write.
    pub fn upper_case(
        work: std::time::Duration,
    ) -> std::sync::Arc<dyn ikkatsu_overwrite::ProcessFn> {
        process_fn(move |input: PathBuf, output: PathBuf| async move {
            let mut data = tokio::fs::read(&input)
                .await
                .map_err(|e| Error::io(format_args!("reading `{}`", input.display()), e))?;
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            data.make_ascii_uppercase();
            tokio::fs::write(&output, data)
                .await
                .map_err(|e| Error::io(format_args!("writing `{}`", output.display()), e))
        })
    }

    /// One file: read, uppercase, write a temporary sibling, rename it over the original.
    async fn limit_one(path: PathBuf) -> std::io::Result<()> {
        let mut data = tokio::fs::read(&path).await?;
        data.make_ascii_uppercase();
        let mut temp = path.clone().into_os_string();
        temp.push(".tmp");
        tokio::fs::write(&temp, data).await?;
        tokio::fs::rename(&temp, &path).await
    }

    pub fn limit(runtime: &Runtime, root: &Path, concurrency: usize) -> Result<f64, String> {
        runtime.block_on(async {
            let started = Instant::now();
            let root = root.to_path_buf();
            let files = tokio::task::spawn_blocking(move || super::walk(&root))
                .await
                .map_err(|e| format!("limit: walk task: {e}"))?
                .map_err(|e| format!("limit: walk: {e}"))?;
            let mut results = futures::stream::iter(files)
                .map(|path| async move {
                    let shown = path.display().to_string();
                    limit_one(path)
                        .await
                        .map_err(|e| format!("limit: {shown}: {e}"))
                })
                .buffer_unordered(concurrency);
            while let Some(result) = results.next().await {
                result?;
            }
            Ok(started.elapsed().as_secs_f64())
        })
    }

    pub fn ikkatsu(
        runtime: &Runtime,
        root: &Path,
        state: &Path,
        concurrency: usize,
        opts: &super::Options,
    ) -> Result<f64, String> {
        let files = opts.files;
        let root_text = root
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", root.display()))?;
        let store_path = state.join("status.redb");
        let store_url = if opts.memory_store {
            "memory:".to_string()
        } else {
            store_path
                .to_str()
                .ok_or_else(|| format!("{} is not UTF-8", store_path.display()))?
                .to_string()
        };
        std::fs::create_dir_all(state)
            .map_err(|e| format!("cannot create {}: {e}", state.display()))?;
        let result = runtime.block_on(async {
            let source = Storage::open(root_text)?;
            let started = Instant::now();
            let status = open_status_store(&store_url, StatusStoreOptions::new("bench")).await?;
            let upper = upper_case(std::time::Duration::ZERO);
            let mut options = OverwriteOptions::new(state.join("flow"));
            options.concurrency = Some(concurrency);
            let flow = OverwriteFlow::new(source, status.clone(), upper, options);
            let cancel = CancellationToken::new();
            let scan = flow.scan(&cancel).await?;
            let scanned = started.elapsed().as_secs_f64();
            let summary = flow.process(&cancel, None).await?;
            let elapsed = started.elapsed().as_secs_f64();
            status.close().await?;
            Ok::<_, Error>((scan, summary, scanned, elapsed))
        });
        let (scan, summary, scanned, elapsed) =
            result.map_err(|e| format!("ikkatsu flow failed: {}", e.report()))?;
        eprintln!(
            "{}: ikkatsu scan {scanned:.3}s + process {:.3}s",
            super::BENCH,
            elapsed - scanned
        );
        if scan.queued != files || summary.progress.done != files {
            return Err(format!(
                "ikkatsu queued {} and did {} files (failed {}, first failures {:?}), expected {files}",
                scan.queued, summary.progress.done, summary.progress.failed, summary.failures
            ));
        }
        Ok(elapsed)
    }
}
