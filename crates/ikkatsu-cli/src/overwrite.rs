//! `ikkatsu overwrite`: the overwrite flow from the command line.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::{CancellationToken, Error, ErrorKind};
use ikkatsu_overwrite::register::{status_store_url, storage_url};
use ikkatsu_overwrite::{OverwriteConfig, Progress, ProgressCallback};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::{GlobalArgs, OverwriteArgs};
use crate::commands::{EXIT_COMPLETED, EXIT_FAILED, EXIT_STOPPED, stop_on_signals};

/// The status store used when none is given: an embedded file beside a SQLite job
/// repository (in the working directory otherwise).
fn default_status(repository: &str) -> String {
    let name = ikkatsu_overwrite::DEFAULT_STATUS_STORE;
    let path = repository
        .strip_prefix("sqlite://")
        .or_else(|| repository.strip_prefix("sqlite:"));
    match path.and_then(|p| Path::new(p).parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name).display().to_string(),
        _ => name.to_string(),
    }
}

fn progress_callback(total: u64, show_bar: bool) -> (ProgressCallback, Option<ProgressBar>) {
    if show_bar {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} files  {per_sec}  eta {eta}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let handle = bar.clone();
        let callback: ProgressCallback = Arc::new(move |p: &Progress| {
            handle.set_position(p.handled());
            if p.failed + p.conflicts > 0 {
                handle.set_message(format!("{} failed, {} conflicts", p.failed, p.conflicts));
            }
        });
        return (callback, Some(bar));
    }
    let last = Mutex::new(Instant::now());
    let callback: ProgressCallback = Arc::new(move |p: &Progress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(5) || p.handled() == p.total {
            *last = Instant::now();
            tracing::info!(
                handled = p.handled(),
                total = p.total,
                done = p.done,
                failed = p.failed,
                conflicts = p.conflicts,
                rate = format!("{:.1}/s", p.rate()),
                eta_seconds = p.eta_seconds().map(|s| s.round() as u64),
                "overwrite progress"
            );
        }
    });
    (callback, None)
}

/// An error once the flow runs (the listing of the source, the status store, the disk): the
/// run failed (exit code 1), whatever its kind, unless another run holds the flow (4) or the
/// configuration is at fault (2), or it was stopped (3): a server refusing the credentials
/// or a file vanishing under the run is no usage error.
fn run_time_failure(err: Error) -> Result<u8, Error> {
    match err.kind() {
        ErrorKind::AlreadyRunning | ErrorKind::Config | ErrorKind::Parse => Err(err),
        ErrorKind::Cancelled => {
            crate::redact::print_error(&err.report());
            Ok(EXIT_STOPPED)
        }
        _ => {
            crate::redact::print_error(&err.report());
            Ok(EXIT_FAILED)
        }
    }
}

/// Runs `ikkatsu overwrite`.
pub async fn overwrite(global: &GlobalArgs, args: OverwriteArgs) -> Result<u8, Error> {
    let app = &global.app;
    let config = OverwriteConfig {
        source: storage_url(app, &args.source)?,
        target: args.target.map(|t| storage_url(app, &t)).transpose()?,
        include: args.include,
        exclude: args.exclude,
        max_depth: args.max_depth,
        follow_symlinks: args.follow_symlinks,
        hidden: args.hidden,
        exec: args.exec,
        shell: args.shell,
        timeout: args.timeout.map(HumanDuration::from),
        status: args.status.map(|s| status_store_url(app, &s)).transpose()?,
        namespace: args.namespace,
        concurrency: args.concurrency,
        max_errors: args.max_errors,
        retries: args.retries,
        state_dir: args.state_dir,
        backlog: args.backlog,
        dry_run: args.dry_run,
        cooperate: args.cooperate,
    };
    config.validate()?;
    let flow = config
        .build(&default_status(&global.repository_url))
        .await?;
    let cancel = CancellationToken::new();
    stop_on_signals(cancel.clone());
    let scan = match flow.scan(&cancel).await {
        Ok(scan) => scan,
        Err(err) => return run_time_failure(err),
    };
    let backlog = flow.options().backlog_path();
    if !args.json {
        println!(
            "scanned {}: {} files match, {} need processing{} (backlog {})",
            config.shown_source(),
            scan.matched,
            scan.queued,
            if scan.links_skipped > 0 {
                format!(", {} symbolic links skipped", scan.links_skipped)
            } else {
                String::new()
            },
            backlog.display()
        );
    }
    if args.scan_only {
        flow.release_lease().await?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "source": config.shown_source(),
                    "namespace": config.namespace(),
                    "backlog": backlog,
                    "scan": scan,
                }))?
            );
        }
        return Ok(EXIT_COMPLETED);
    }
    let show_bar = !args.no_progress && !args.json && std::io::stderr().is_terminal();
    let (callback, bar) = progress_callback(scan.queued, show_bar);
    let summary = flow.process(&cancel, Some(callback)).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = match summary {
        Ok(summary) => summary,
        Err(err) => return run_time_failure(err),
    };
    let p = &summary.progress;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "source": config.shown_source(),
                "target": config.shown_target(),
                "namespace": config.namespace(),
                "backlog": backlog,
                "dry_run": config.dry_run,
                "scan": scan,
                "process": summary,
            }))?
        );
    } else if config.dry_run {
        // Nothing was written: the files a real run would process are counted as skipped.
        println!(
            "dry run: {} would be processed, {} failed{} of {}; nothing was written",
            p.skipped,
            p.failed,
            if p.symlinks > 0 {
                format!(", {} not overwritten through symbolic links", p.symlinks)
            } else {
                String::new()
            },
            p.total,
        );
        for failure in &summary.failures {
            println!("  failed {}: {}", failure.path, failure.error);
        }
    } else {
        println!(
            "{}: {} done, {} skipped, {} conflicts, {} failed{} of {} in {:.1}s ({:.1} files/s){}",
            if summary.stopped {
                "stopped"
            } else {
                "finished"
            },
            p.done,
            p.skipped,
            p.conflicts,
            p.failed,
            if p.symlinks > 0 {
                format!(", {} not overwritten through symbolic links", p.symlinks)
            } else {
                String::new()
            },
            p.total,
            p.elapsed_seconds,
            p.rate(),
            if summary.recovered > 0 {
                format!("; {} interrupted uploads recovered", summary.recovered)
            } else {
                String::new()
            }
        );
        for failure in &summary.failures {
            println!(
                "  {} {}: {}",
                if failure.conflict {
                    "conflict"
                } else {
                    "failed"
                },
                failure.path,
                failure.error
            );
        }
        if p.failed + p.conflicts > summary.failures.len() as u64 {
            println!("  all failures: {}", summary.failures_file.display());
        }
    }
    Ok(if summary.stopped {
        EXIT_STOPPED
    } else if p.failed + p.conflicts > 0 {
        EXIT_FAILED
    } else {
        EXIT_COMPLETED
    })
}
