//! `overwrite-remote`: the overwrite flow over files on the local SFTP and S3 test servers,
//! against rclone doing the same work (copy down, transform, copy up).
//!
//! `--files N` (default 10,000) files of `--size BYTES` (default 10,240) of lower-case ASCII
//! text, 1000 per directory, are uploaded (untimed, with rclone) under two fresh prefixes per
//! backend, one per contender, so both start from the same remote state. The servers are the
//! ones `scripts/test-servers start` runs; their addresses and credentials come from the
//! `IKKATSU_TEST_*` variables (`scripts/bench` sets them).
//!
//! Contenders, per backend, in one run of `--runs K` rounds (default 2); the contenders
//! run in turn, rclone first in odd rounds and ikkatsu first in even ones, because the one
//! running second creates its files on a server that has just freed the first one's (on
//! ext4 new inodes cost more among recently deleted ones), and the ratio is the rounds'
//! geometric mean:
//! * `rclone` (the peer): `rclone copy REMOTE LOCAL`, then every local file upper-cased in
//!   place (one thread; this takes a few tens of milliseconds), then
//!   `rclone copy --ignore-times LOCAL REMOTE`. rclone runs with its defaults (4 transfers,
//!   8 checkers) unless `--concurrency C` is given, then `--transfers C --checkers 2C`.
//! * `ikkatsu`: [`OverwriteFlow::scan`] then [`OverwriteFlow::process`] on the remote
//!   storage, with a fresh embedded (redb) status store and ikkatsu's defaults (concurrency
//!   on a remote storage: 2 × cores, at least 8, unless `--concurrency C`): per file a
//!   download to the work directory, the function (read → upper-case → write), a
//!   conditional upload over the original, and the file recorded as done.
//!
//! After each contender, every remote file is downloaded (untimed) and checked to hold its
//! content upper-cased exactly once. The prefixes are deleted at the end.
//!
//! Output: one line per backend and contender, then per backend
//! `{"bench":"overwrite-remote","backend":B,"ratio_vs_rclone":X,"round_ratios":[…]}`
//! (ikkatsu's time over rclone's, geometric mean of the rounds; the goal is ≤ 1.0).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::overwrite_scan::{flag_value, parse_count, split_flag};
use crate::report;

/// Name of the bench in the JSON output.
pub const BENCH: &str = "overwrite-remote";
/// Files per generated directory.
const FILES_PER_DIR: u64 = 1000;

/// A remote the bench runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sftp,
    S3,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sftp => "sftp",
            Backend::S3 => "s3",
        }
    }
}

/// Command-line options of `overwrite-remote`.
pub struct Options {
    files: u64,
    size: usize,
    concurrency: Option<usize>,
    backends: Vec<Backend>,
    runs: u32,
}

impl Options {
    /// Parses `[--files N] [--size BYTES] [--concurrency C] [--backends sftp,s3] [--runs K]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            files: 10_000,
            size: 10_240,
            concurrency: None,
            backends: vec![Backend::Sftp, Backend::S3],
            runs: 2,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            let mut value = || flag_value(flag, inline.clone(), &mut it);
            match flag {
                "--runs" => opts.runs = parse_count(flag, &value()?, 1)? as u32,
                "--files" => opts.files = parse_count(flag, &value()?, 1)?,
                "--size" => opts.size = parse_count(flag, &value()?, 16)? as usize,
                "--concurrency" => {
                    opts.concurrency = Some(parse_count(flag, &value()?, 1)? as usize);
                }
                "--backends" => {
                    opts.backends = value()?
                        .split(',')
                        .map(|b| match b.trim() {
                            "sftp" => Ok(Backend::Sftp),
                            "s3" => Ok(Backend::S3),
                            other => Err(format!(
                                "--backends: unknown backend `{other}` (expected sftp, s3)"
                            )),
                        })
                        .collect::<Result<_, _>>()?;
                }
                other => return Err(format!("{BENCH}: unknown option `{other}`")),
            }
        }
        Ok(opts)
    }
}

/// The test-server settings the bench needs, from the `IKKATSU_TEST_*` variables.
pub struct Servers {
    s3_endpoint: String,
    s3_access_key: String,
    s3_secret_key: String,
    s3_region: String,
    sftp_host: String,
    sftp_port: String,
    sftp_user: String,
    sftp_root: String,
    sftp_key: String,
    sftp_known_hosts: String,
}

impl Servers {
    fn from_env() -> Result<Servers, String> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                format!(
                    "{name} is not set: start the test servers and load their settings with \
                     `scripts/test-servers start && eval \"$(scripts/test-servers env)\"` \
                     (scripts/bench overwrite-remote does both)"
                )
            })
        };
        Ok(Servers {
            s3_endpoint: var("IKKATSU_TEST_S3_ENDPOINT")?,
            s3_access_key: var("IKKATSU_TEST_S3_ACCESS_KEY")?,
            s3_secret_key: var("IKKATSU_TEST_S3_SECRET_KEY")?,
            s3_region: var("IKKATSU_TEST_S3_REGION")?,
            sftp_host: var("IKKATSU_TEST_SFTP_HOST")?,
            sftp_port: var("IKKATSU_TEST_SFTP_PORT")?,
            sftp_user: var("IKKATSU_TEST_SFTP_USER")?,
            sftp_root: var("IKKATSU_TEST_SFTP_ROOT")?,
            sftp_key: var("IKKATSU_TEST_SFTP_KEY")?,
            sftp_known_hosts: var("IKKATSU_TEST_SFTP_KNOWN_HOSTS")?,
        })
    }

    /// The environment that defines rclone's remotes `bench-s3:` and `bench-sftp:`.
    fn rclone_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let mut set = |remote: &str, key: &str, value: &str| {
            env.push((format!("RCLONE_CONFIG_{remote}_{key}"), value.to_string()));
        };
        set("BENCHS3", "TYPE", "s3");
        set("BENCHS3", "PROVIDER", "Other");
        set("BENCHS3", "ENV_AUTH", "false");
        set("BENCHS3", "ACCESS_KEY_ID", &self.s3_access_key);
        set("BENCHS3", "SECRET_ACCESS_KEY", &self.s3_secret_key);
        set("BENCHS3", "ENDPOINT", &self.s3_endpoint);
        set("BENCHS3", "REGION", &self.s3_region);
        set("BENCHS3", "FORCE_PATH_STYLE", "true");
        set("BENCHSFTP", "TYPE", "sftp");
        set("BENCHSFTP", "HOST", &self.sftp_host);
        set("BENCHSFTP", "PORT", &self.sftp_port);
        set("BENCHSFTP", "USER", &self.sftp_user);
        set("BENCHSFTP", "KEY_FILE", &self.sftp_key);
        set("BENCHSFTP", "KNOWN_HOSTS_FILE", &self.sftp_known_hosts);
        // The test server offers SFTP only (no shell to run checksums in).
        set("BENCHSFTP", "SHELL_TYPE", "none");
        set("BENCHSFTP", "DISABLE_HASHCHECK", "true");
        env
    }

    /// rclone's name for `prefix` on `backend` (the S3 bucket is `bucket`).
    fn rclone_path(&self, backend: Backend, bucket: &str, prefix: &str) -> String {
        match backend {
            Backend::S3 => format!("benchs3:{bucket}/{prefix}"),
            Backend::Sftp => format!(
                "benchsftp:{}/{prefix}",
                self.sftp_root.trim_end_matches('/')
            ),
        }
    }

    /// ikkatsu's storage URL for `prefix` on `backend`.
    fn storage_url(&self, backend: Backend, bucket: &str, prefix: &str) -> String {
        match backend {
            Backend::S3 => format!(
                "s3://{bucket}/{prefix}?endpoint={}&region={}&access-key-id={}&secret-access-key={}",
                self.s3_endpoint, self.s3_region, self.s3_access_key, self.s3_secret_key
            ),
            Backend::Sftp => format!(
                "sftp://{}@{}:{}{}/{prefix}?key-file={}&known-hosts={}",
                self.sftp_user,
                self.sftp_host,
                self.sftp_port,
                self.sftp_root.trim_end_matches('/'),
                self.sftp_key,
                self.sftp_known_hosts
            ),
        }
    }
}

/// The content of file `i` before processing: `size` bytes of lower-case ASCII text.
fn content(i: u64, size: usize) -> Vec<u8> {
    const LINE: &[u8] =
        b"the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs\n";
    let mut data = format!("file number {i}\n").into_bytes();
    while data.len() < size {
        let take = LINE.len().min(size - data.len());
        data.extend_from_slice(&LINE[..take]);
    }
    data
}

/// Relative path of file `i`.
fn rel_path(i: u64) -> String {
    format!("d{:04}/f{i:07}.txt", i / FILES_PER_DIR)
}

/// Writes the input files under `root`.
fn generate(root: &Path, files: u64, size: usize) -> Result<(), String> {
    for i in 0..files {
        let path = root.join(rel_path(i));
        if i % FILES_PER_DIR == 0 {
            let dir = path.parent().unwrap_or(root);
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, content(i, size))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Checks that `root` holds every file upper-cased exactly once, and nothing else.
fn verify(root: &Path, files: u64, size: usize) -> Result<(), String> {
    for i in 0..files {
        let path = root.join(rel_path(i));
        let got =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if got != content(i, size).to_ascii_uppercase() {
            return Err(format!(
                "{} was not upper-cased exactly once",
                path.display()
            ));
        }
    }
    let found = walk(root).map_err(|e| format!("cannot walk {}: {e}", root.display()))?;
    if found.len() as u64 != files {
        return Err(format!(
            "the remote holds {} files after the run, expected {files} (leftover temporary \
             files?)",
            found.len()
        ));
    }
    Ok(())
}

/// Every file under `root`.
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

/// Runs rclone with the bench's remotes; fails with its output when it fails.
fn rclone(servers: &Servers, args: &[&str]) -> Result<(), String> {
    let output = Command::new("rclone")
        .args(args)
        .envs(servers.rclone_env())
        // A CA bundle from the environment makes rclone's S3 client refuse its own transport;
        // the test servers are plain HTTP.
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .map_err(|e| {
            format!("cannot run rclone ({e}): install it (`apt-get install rclone`; scripts/test-servers start does)")
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rclone {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The rclone contender: copy down, transform locally, copy up.
fn run_rclone(
    servers: &Servers,
    remote: &str,
    work: &Path,
    concurrency: Option<usize>,
) -> Result<f64, String> {
    let local = work
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", work.display()))?;
    let tuning = concurrency.map(|c| {
        vec![
            "--transfers".to_string(),
            c.to_string(),
            "--checkers".to_string(),
            (2 * c).to_string(),
        ]
    });
    let tuning: Vec<&str> = tuning
        .iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>();
    let started = Instant::now();
    let mut down = vec!["copy", remote, local];
    down.extend(&tuning);
    rclone(servers, &down)?;
    for path in walk(work).map_err(|e| format!("cannot walk {}: {e}", work.display()))? {
        let mut data =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        data.make_ascii_uppercase();
        std::fs::write(&path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let mut up = vec!["copy", "--ignore-times", local, remote];
    up.extend(&tuning);
    rclone(servers, &up)?;
    Ok(started.elapsed().as_secs_f64())
}

/// Runs the bench.
pub fn run(opts: &Options) -> Result<(), String> {
    let servers = Servers::from_env()?;
    let dir = tempfile::Builder::new()
        .prefix("ikkatsu-bench-overwrite-remote-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let input = dir.path().join("input");
    generate(&input, opts.files, opts.size)?;
    let input_text = input
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", input.display()))?;
    let run_id = format!("bench-{}", std::process::id());
    let bucket = format!("ikkatsu-{run_id}");
    let runtime = imp::runtime()?;
    let mut ratios = Vec::new();
    for &backend in &opts.backends {
        if backend == Backend::S3 {
            rclone(&servers, &["mkdir", &format!("benchs3:{bucket}")])?;
        }
        let mut round_ratios = Vec::new();
        for round in 1..=opts.runs {
            let mut seconds = [0.0f64; 2];
            for (position, contender) in report::round_order(round, ["rclone", "ikkatsu"])
                .into_iter()
                .enumerate()
            {
                let elapsed = run_contender(
                    &servers,
                    &runtime,
                    opts,
                    dir.path(),
                    input_text,
                    backend,
                    &bucket,
                    &format!("{run_id}-{contender}-{round}"),
                    contender,
                )?;
                println!(
                    r#"{{"bench":"{BENCH}","backend":"{}","contender":"{contender}","seconds":{elapsed:.6},"files":{},"bytes_per_file":{},"round":{round},"position":{}}}"#,
                    backend.name(),
                    opts.files,
                    opts.size,
                    position + 1
                );
                seconds[usize::from(contender == "ikkatsu")] = elapsed;
            }
            round_ratios.push(seconds[1] / seconds[0]);
        }
        if backend == Backend::S3 {
            let _ = rclone(&servers, &["purge", &format!("benchs3:{bucket}")]);
        }
        ratios.push((backend, report::mean_ratio(&round_ratios)));
    }
    for (backend, (ratio, shown)) in ratios {
        println!(
            r#"{{"bench":"{BENCH}","backend":"{}","ratio_vs_rclone":{ratio:.4},"round_ratios":{shown}}}"#,
            backend.name()
        );
    }
    Ok(())
}

/// Uploads the input under `prefix`, runs `contender` on it, checks the result and deletes
/// the prefix; returns the contender's time.
#[allow(clippy::too_many_arguments)]
fn run_contender(
    servers: &Servers,
    runtime: &imp::Runtime,
    opts: &Options,
    dir: &Path,
    input_text: &str,
    backend: Backend,
    bucket: &str,
    prefix: &str,
    contender: &str,
) -> Result<f64, String> {
    let remote = servers.rclone_path(backend, bucket, prefix);
    let started = Instant::now();
    rclone(servers, &["copy", "--transfers", "16", input_text, &remote])?;
    eprintln!(
        "{BENCH}: {}: uploaded {} files for {contender} in {:.1}s",
        backend.name(),
        opts.files,
        started.elapsed().as_secs_f64()
    );
    let work = dir.join(format!("{}-{prefix}", backend.name()));
    let result = match contender {
        "rclone" => run_rclone(servers, &remote, &work, opts.concurrency),
        _ => imp::ikkatsu(
            runtime,
            &servers.storage_url(backend, bucket, prefix),
            &work,
            opts,
        ),
    };
    let check = dir.join(format!("{}-{prefix}-check", backend.name()));
    let verified = result.and_then(|elapsed| {
        let check_text = check
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", check.display()))?;
        rclone(servers, &["copy", "--transfers", "16", &remote, check_text])?;
        verify(&check, opts.files, opts.size)
            .map_err(|e| format!("contender `{contender}` on {}: {e}", backend.name()))?;
        Ok(elapsed)
    });
    let _ = rclone(servers, &["purge", &remote]);
    verified
}

#[cfg(not(feature = "ikkatsu"))]
mod imp {
    use std::path::Path;

    pub struct Runtime;

    pub fn runtime() -> Result<Runtime, String> {
        Err(
            "this ikkatsu-bench was built without the `ikkatsu` feature; build it with default \
             features (`scripts/bench overwrite-remote`)"
                .into(),
        )
    }

    pub fn ikkatsu(_: &Runtime, _: &str, _: &Path, _: &super::Options) -> Result<f64, String> {
        unreachable!("runtime() fails without the ikkatsu feature")
    }
}

#[cfg(feature = "ikkatsu")]
mod imp {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use ikkatsu_core::{CancellationToken, Error};
    use ikkatsu_overwrite::{
        OverwriteFlow, OverwriteOptions, StatusStoreOptions, open_status_store, process_fn,
    };
    use ikkatsu_storage::Storage;
    pub use tokio::runtime::Runtime;

    pub fn runtime() -> Result<Runtime, String> {
        Runtime::new().map_err(|e| format!("cannot start the tokio runtime: {e}"))
    }

    pub fn ikkatsu(
        runtime: &Runtime,
        url: &str,
        state: &Path,
        opts: &super::Options,
    ) -> Result<f64, String> {
        let files = opts.files;
        std::fs::create_dir_all(state)
            .map_err(|e| format!("cannot create {}: {e}", state.display()))?;
        let store_path = state.join("status.redb");
        let store_url = store_path
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", store_path.display()))?
            .to_string();
        let result = runtime.block_on(async {
            let source = Storage::open(url)?;
            let started = Instant::now();
            let status = open_status_store(&store_url, StatusStoreOptions::new("bench")).await?;
            let upper = process_fn(|input: PathBuf, output: PathBuf| async move {
                let mut data = tokio::fs::read(&input)
                    .await
                    .map_err(|e| Error::io(format_args!("reading `{}`", input.display()), e))?;
                data.make_ascii_uppercase();
                tokio::fs::write(&output, data)
                    .await
                    .map_err(|e| Error::io(format_args!("writing `{}`", output.display()), e))
            });
            let mut options = OverwriteOptions::new(state.join("flow"));
            if let Some(concurrency) = opts.concurrency {
                options.concurrency = Some(concurrency);
            }
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
