//! `overwrite-scan`: the scan phase of ikkatsu's overwrite flow over a generated tree of
//! small files, against `find`.
//!
//! The tree (`--files N`, default 1,000,000 empty files, 1000 per directory, directories
//! grouped by 32 under a second level; half of the files end in `.txt`) is generated once
//! under the temporary directory and reused by later runs when its marker file says it holds
//! the same count. Generation is not timed.
//!
//! Contenders, on the same tree, in one run:
//! * `limit`: `find DIR -type f -name '*.txt' > /dev/null` (a spawned process; wall time);
//! * `ikkatsu`: [`OverwriteFlow::scan`] with include `*.txt`, a fresh embedded (redb)
//!   status store and the gzip backlog (a process function that is never called).
//!
//! Peak memory: the ikkatsu scan is run again in child processes (this binary, hidden
//! subcommand `overwrite-scan-child`), once on the tree of N files and once on a tree of
//! N/10 files; each child reports its own peak RSS (`VmHWM` of `/proc/self/status`) just
//! before it exits, so the two sizes do not pollute each other or the parent.
//!
//! Output: one line per contender, then
//! `{"bench":"overwrite-scan","ratio_vs_find":X,"peak_rss_mb_1m":A,"peak_rss_mb_100k":B,"rss_ratio":A/B}`
//! (`_1m` is the size given by `--files`, `_100k` a tenth of it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Name of the bench in the JSON output.
pub const BENCH: &str = "overwrite-scan";
/// Files per generated directory.
const FILES_PER_DIR: u64 = 1000;
/// Directories per group directory.
const DIRS_PER_GROUP: u64 = 32;
/// The marker file in a complete tree (hidden: neither contender counts it).
const MARKER: &str = ".ikkatsu-bench-complete";

/// Command-line options of `overwrite-scan`.
pub struct Options {
    files: u64,
    runs: u32,
    skip_rss: bool,
}

impl Options {
    /// Parses `[--files N] [--runs K] [--no-rss]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            files: 1_000_000,
            runs: 1,
            skip_rss: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            let mut value = || flag_value(flag, inline.clone(), &mut it);
            match flag {
                "--files" => opts.files = parse_count(flag, &value()?, 10)?,
                "--runs" => opts.runs = parse_count(flag, &value()?, 1)? as u32,
                "--no-rss" => opts.skip_rss = true,
                other => return Err(format!("{BENCH}: unknown option `{other}`")),
            }
        }
        Ok(opts)
    }
}

/// Splits `--flag=value` into the flag and the inline value.
pub fn split_flag(arg: &str) -> (&str, Option<String>) {
    match arg.split_once('=') {
        Some((f, v)) => (f, Some(v.to_string())),
        None => (arg, None),
    }
}

/// The value of `flag`: inline (`--flag=v`) or the next argument.
pub fn flag_value<'a>(
    flag: &str,
    inline: Option<String>,
    it: &mut impl Iterator<Item = &'a String>,
) -> Result<String, String> {
    inline
        .or_else(|| it.next().cloned())
        .ok_or_else(|| format!("{flag} needs a value"))
}

/// Parses a count such as `1_000_000` or `1000000`, at least `min`.
pub fn parse_count(flag: &str, text: &str, min: u64) -> Result<u64, String> {
    let n: u64 = text
        .replace('_', "")
        .parse()
        .map_err(|e| format!("{flag} `{text}`: {e}"))?;
    if n < min {
        return Err(format!("{flag} must be at least {min}"));
    }
    Ok(n)
}

/// The cached tree of `files` files under the temporary directory.
fn tree_dir(files: u64) -> PathBuf {
    std::env::temp_dir().join(format!("ikkatsu-bench-overwrite-scan-{files}"))
}

/// Makes sure the tree of `files` files exists (reusing a complete one); returns its root.
fn ensure_tree(files: u64) -> Result<PathBuf, String> {
    let root = tree_dir(files);
    let marker = root.join(MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|text| text.trim() == files.to_string()) {
        eprintln!(
            "{BENCH}: reusing the tree of {files} files at {}",
            root.display()
        );
        return Ok(root);
    }
    if root.exists() {
        eprintln!(
            "{BENCH}: removing the incomplete tree at {}",
            root.display()
        );
        std::fs::remove_dir_all(&root)
            .map_err(|e| format!("cannot remove {}: {e}", root.display()))?;
    }
    let started = Instant::now();
    let dirs = files.div_ceil(FILES_PER_DIR);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8) as u64;
    std::thread::scope(|scope| -> Result<(), String> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let root = &root;
                scope.spawn(move || -> Result<(), String> {
                    for d in (t..dirs).step_by(threads as usize) {
                        let dir = root
                            .join(format!("g{:03}", d / DIRS_PER_GROUP))
                            .join(format!("d{d:05}"));
                        std::fs::create_dir_all(&dir)
                            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                        let first = d * FILES_PER_DIR;
                        for i in first..(first + FILES_PER_DIR).min(files) {
                            let ext = if i % 2 == 0 { "txt" } else { "dat" };
                            let path = dir.join(format!("f{i:07}.{ext}"));
                            std::fs::File::create(&path)
                                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| "a tree generator thread panicked".to_string())??;
        }
        Ok(())
    })?;
    std::fs::write(&marker, files.to_string())
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    eprintln!(
        "{BENCH}: generated {files} files in {dirs} directories in {:.1}s at {}",
        started.elapsed().as_secs_f64(),
        root.display()
    );
    Ok(root)
}

/// Files of the tree of `files` files that match `*.txt`.
fn expected_matches(files: u64) -> u64 {
    files.div_ceil(2)
}

/// Runs `find` on `root`; returns the wall time.
fn run_find(root: &Path) -> Result<f64, String> {
    let started = Instant::now();
    let status = Command::new("find")
        .arg(root)
        .args(["-type", "f", "-name", "*.txt"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run `find`: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("`find {}` failed: {status}", root.display()));
    }
    Ok(elapsed)
}

/// Diagnostic: a one-thread depth-first `std::fs` walk that stats the `*.txt` files (size and
/// modification time, as a walker for the overwrite flow needs), or every file when
/// `stat_all`; returns how many `*.txt` files it found.
fn std_walk(root: &Path, stat_all: bool) -> std::io::Result<u64> {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let matches = entry.file_name().as_encoded_bytes().ends_with(b".txt");
                if matches || stat_all {
                    let meta = entry.metadata()?;
                    std::hint::black_box((meta.len(), meta.modified().ok()));
                }
                count += u64::from(matches);
            }
        }
    }
    Ok(count)
}

/// What a child scan reports.
struct ChildReport {
    peak_rss_kb: u64,
    seconds: f64,
}

/// Runs the ikkatsu scan of `root` in a child process; returns its peak RSS and time.
fn run_child(root: &Path, files: u64) -> Result<ChildReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let output = Command::new(&exe)
        .arg("overwrite-scan-child")
        .arg(root)
        .arg(expected_matches(files).to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !output.status.success() {
        return Err(format!(
            "the child scan of {} failed: {}",
            root.display(),
            output.status
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> Result<&str, String> {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(|| format!("the child scan printed no `{name}=`: {text:?}"))
    };
    let peak_rss_kb = field("peak_rss_kb")?
        .parse()
        .map_err(|e| format!("child peak_rss_kb: {e}"))?;
    let seconds = field("seconds")?
        .parse()
        .map_err(|e| format!("child seconds: {e}"))?;
    Ok(ChildReport {
        peak_rss_kb,
        seconds,
    })
}

/// The peak resident set size of this process in KiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_kb() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status (Linux only): {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM line in /proc/self/status".to_string())
}

/// Runs the bench.
pub fn run(opts: &Options) -> Result<(), String> {
    let root = ensure_tree(opts.files)?;
    // Warm the dentry and inode caches once so neither contender pays for the first walk.
    let warm = run_find(&root)?;
    eprintln!("{BENCH}: warm-up find: {warm:.3}s");

    let mut best_find = f64::INFINITY;
    let mut best_ikkatsu = f64::INFINITY;
    for run in 1..=opts.runs {
        let find = run_find(&root)?;
        let ikkatsu = imp::scan_timed(&root, expected_matches(opts.files))?;
        if opts.runs > 1 {
            eprintln!(
                "{BENCH}: run {run}/{}: limit {find:.3}s, ikkatsu {ikkatsu:.3}s",
                opts.runs
            );
        }
        best_find = best_find.min(find);
        best_ikkatsu = best_ikkatsu.min(ikkatsu);
    }
    // Diagnostic only (stderr): the walk alone, without the status store and the backlog.
    match imp::walk_only(&root) {
        Ok((walked, seconds)) => {
            eprintln!(
                "{BENCH}: diagnostic: Storage::walk alone yields {walked} files in {seconds:.3}s"
            )
        }
        Err(message) => eprintln!("{BENCH}: diagnostic walk failed: {message}"),
    }
    for stat_all in [false, true] {
        let started = Instant::now();
        let counted = std_walk(&root, stat_all)
            .map_err(|e| format!("diagnostic walk of {}: {e}", root.display()))?;
        eprintln!(
            "{BENCH}: diagnostic: one-thread std::fs walk statting {} files: {counted} *.txt in {:.3}s",
            if stat_all { "all" } else { "only the *.txt" },
            started.elapsed().as_secs_f64()
        );
    }
    let files = opts.files;
    println!(
        r#"{{"bench":"{BENCH}","contender":"limit","seconds":{best_find:.6},"files":{files},"command":"find DIR -type f -name '*.txt'"}}"#
    );
    println!(
        r#"{{"bench":"{BENCH}","contender":"ikkatsu","seconds":{best_ikkatsu:.6},"files":{files},"matched":{}}}"#,
        expected_matches(files)
    );

    let (rss_big, rss_small) = if opts.skip_rss {
        (None, None)
    } else {
        let big = run_child(&root, files)?;
        eprintln!(
            "{BENCH}: child scan of {files} files: {:.3}s, peak RSS {} KiB",
            big.seconds, big.peak_rss_kb
        );
        let small_files = files / 10;
        let small_root = ensure_tree(small_files)?;
        run_find(&small_root)?;
        let small = run_child(&small_root, small_files)?;
        eprintln!(
            "{BENCH}: child scan of {small_files} files: {:.3}s, peak RSS {} KiB",
            small.seconds, small.peak_rss_kb
        );
        (Some(big.peak_rss_kb), Some(small.peak_rss_kb))
    };
    let mb = |kb: Option<u64>| {
        kb.map_or_else(|| "null".into(), |kb| format!("{:.1}", kb as f64 / 1024.0))
    };
    let rss_ratio = match (rss_big, rss_small) {
        (Some(a), Some(b)) if b > 0 => format!("{:.3}", a as f64 / b as f64),
        _ => "null".into(),
    };
    println!(
        r#"{{"bench":"{BENCH}","ratio_vs_find":{:.4},"peak_rss_mb_1m":{},"peak_rss_mb_100k":{},"rss_ratio":{rss_ratio}}}"#,
        best_ikkatsu / best_find,
        mb(rss_big),
        mb(rss_small)
    );
    Ok(())
}

/// The hidden `overwrite-scan-child ROOT EXPECTED`: one ikkatsu scan, then
/// `peak_rss_kb=K seconds=S` on stdout.
pub fn run_child_main(args: &[String]) -> Result<(), String> {
    let [root, expected] = args else {
        return Err("usage: ikkatsu-bench overwrite-scan-child ROOT EXPECTED_MATCHES".into());
    };
    let expected = parse_count("EXPECTED_MATCHES", expected, 0)?;
    let seconds = imp::scan_timed(Path::new(root), expected)?;
    println!("peak_rss_kb={} seconds={seconds:.6}", peak_rss_kb()?);
    Ok(())
}

#[cfg(not(feature = "ikkatsu"))]
mod imp {
    pub fn walk_only(_root: &std::path::Path) -> Result<(u64, f64), String> {
        Err("built without the `ikkatsu` feature".into())
    }

    pub fn scan_timed(_root: &std::path::Path, _expected: u64) -> Result<f64, String> {
        Err(
            "this ikkatsu-bench was built without the `ikkatsu` feature; build it with default \
             features (`scripts/bench overwrite-scan`)"
                .into(),
        )
    }
}

#[cfg(feature = "ikkatsu")]
mod imp {
    use std::path::Path;
    use std::time::Instant;

    use ikkatsu_core::CancellationToken;
    use ikkatsu_overwrite::{
        OverwriteFlow, OverwriteOptions, StatusStoreOptions, open_status_store, process_fn,
    };
    use ikkatsu_storage::{Storage, WalkOptions};

    use super::BENCH;

    /// Drains [`Storage::walk`] (include `*.txt`) alone; returns the count and the time.
    pub fn walk_only(root: &Path) -> Result<(u64, f64), String> {
        use futures::StreamExt;
        let runtime = tokio::runtime::Runtime::new()
            .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
        let root_text = root
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", root.display()))?;
        runtime
            .block_on(async {
                let source = Storage::open(root_text)?;
                let started = Instant::now();
                let mut walk = source.walk(WalkOptions::new().include("*.txt"))?;
                let mut count = 0u64;
                while let Some(item) = walk.next().await {
                    item?;
                    count += 1;
                }
                Ok::<_, ikkatsu_core::Error>((count, started.elapsed().as_secs_f64()))
            })
            .map_err(|e| e.report())
    }

    /// Opens a fresh embedded status store and runs [`OverwriteFlow::scan`] over `root`
    /// (include `*.txt`); checks the counts; returns the time (store opening included).
    pub fn scan_timed(root: &Path, expected: u64) -> Result<f64, String> {
        let state = tempfile::Builder::new()
            .prefix("ikkatsu-bench-overwrite-scan-state-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let runtime = tokio::runtime::Runtime::new()
            .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
        let root_text = root
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", root.display()))?;
        let store_path = state.path().join("status.redb");
        let store_url = store_path
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", store_path.display()))?;
        let result = runtime.block_on(async {
            let source = Storage::open(root_text)?;
            let started = Instant::now();
            let status = open_status_store(store_url, StatusStoreOptions::new("bench")).await?;
            let never = process_fn(|_input, _output| async {
                Err(ikkatsu_core::Error::new(
                    ikkatsu_core::ErrorKind::Unexpected,
                    "the scan bench's process function must not be called",
                ))
            });
            let mut options = OverwriteOptions::new(state.path().join("flow"));
            options.walk = WalkOptions::new().include("*.txt");
            let flow = OverwriteFlow::new(source, status.clone(), never, options);
            let summary = flow.scan(&CancellationToken::new()).await?;
            let elapsed = started.elapsed().as_secs_f64();
            status.close().await?;
            Ok::<_, ikkatsu_core::Error>((summary, elapsed))
        });
        let (summary, elapsed) =
            result.map_err(|e| format!("ikkatsu scan failed: {}", e.report()))?;
        if summary.matched != expected || summary.queued != expected {
            return Err(format!(
                "{BENCH}: ikkatsu matched {} and queued {} files, expected {expected} each",
                summary.matched, summary.queued
            ));
        }
        Ok(elapsed)
    }
}
