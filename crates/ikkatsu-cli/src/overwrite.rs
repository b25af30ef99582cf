//! `ikkatsu overwrite`: the overwrite flow from the command line.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ikkatsu_core::{CancellationToken, Error};
use ikkatsu_overwrite::register::{status_store_url, storage_url};
use ikkatsu_overwrite::{
    AfterScan, OverwriteRun, ProcessSummary, Progress, ProgressCallback, RunStart,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::{GlobalArgs, OverwriteArgs};
use crate::exit::{
    EXIT_COMPLETED, EXIT_FAILED, EXIT_STOPPED, for_outcome, for_run_time_error, stop_on_signals,
};

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

/// Runs `ikkatsu overwrite`.
pub async fn overwrite(global: &GlobalArgs, args: OverwriteArgs) -> Result<u8, Error> {
    let app = &global.app;
    let mut config = args.config;
    config.resolve_names(|s| storage_url(app, s), |s| status_store_url(app, s))?;
    let run = OverwriteRun::open(config, &default_status(&global.repository_url)).await?;
    if run.is_dry_run() {
        return dry_run(&run, args.json).await;
    }
    let config = run.config();
    let backlog = run.flow().options().backlog_path();
    let cancel = CancellationToken::new();
    stop_on_signals(cancel.clone());
    let mut bar = None;
    let report = run
        .run(RunStart::Scan, &cancel, |scan| {
            let Some(scan) = scan else {
                return AfterScan::Process(None);
            };
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
                return AfterScan::Stop;
            }
            let show_bar = !args.no_progress && !args.json && std::io::stderr().is_terminal();
            let (callback, shown) = progress_callback(scan.queued, show_bar);
            bar = shown;
            AfterScan::Process(Some(callback))
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = match report {
        Ok(report) => report,
        Err(err) => return for_run_time_error(err),
    };
    let Some(summary) = &report.process else {
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "source": config.shown_source(),
                    "namespace": config.namespace(),
                    "backlog": backlog,
                    "scan": report.scan,
                }))?
            );
        }
        return Ok(EXIT_COMPLETED);
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "source": config.shown_source(),
                "target": config.shown_target(),
                "namespace": config.namespace(),
                "backlog": backlog,
                "dry_run": false,
                "scan": report.scan,
                "process": summary,
            }))?
        );
    } else {
        print_summary(summary);
    }
    Ok(for_outcome(report.outcome()))
}

/// `ikkatsu overwrite --dry-run`: the paths a run would process on standard output (one a
/// line as they are found, or one JSON document), a summary on standard error; nothing is
/// written anywhere.
async fn dry_run(run: &OverwriteRun, json: bool) -> Result<u8, Error> {
    let config = run.config();
    let cancel = CancellationToken::new();
    stop_on_signals(cancel.clone());
    let mut paths = Vec::new();
    let mut stdout = std::io::BufWriter::new(std::io::stdout());
    let mut write_error = None;
    let summary = run
        .dry_run(&cancel, |file| {
            if json {
                paths.push(file.path.clone());
            } else if write_error.is_none()
                && let Err(err) = writeln!(stdout, "{}", file.path)
            {
                write_error = Some(err);
                cancel.cancel();
            }
        })
        .await;
    let summary = match summary {
        Ok(summary) => summary,
        Err(err) => return for_run_time_error(err),
    };
    if json {
        let document = json!({
            "dry_run": true,
            "source": config.shown_source(),
            "target": config.shown_target(),
            "namespace": config.namespace(),
            "would_process": paths,
            "count": summary.would_process,
            "matched": summary.matched,
            "symlinks": summary.symlinks,
            "failed": summary.failed,
            "links_skipped": summary.links_skipped,
            "stopped": summary.stopped,
        });
        if let Err(err) = writeln!(stdout, "{}", serde_json::to_string_pretty(&document)?) {
            write_error.get_or_insert(err);
        }
    }
    if let Err(err) = stdout.flush() {
        write_error.get_or_insert(err);
    }
    if let Some(err) = write_error {
        crate::redact::print_error(&format!("cannot write to standard output: {err}"));
        return Ok(EXIT_FAILED);
    }
    eprintln!(
        "dry run{}: {} of {} matching files would be processed{}{}; nothing was written",
        if summary.stopped { " stopped" } else { "" },
        summary.would_process,
        summary.matched,
        if summary.symlinks > 0 {
            format!(
                ", {} not overwritten through symbolic links",
                summary.symlinks
            )
        } else {
            String::new()
        },
        if summary.failed > 0 {
            format!(", {} cannot be checked", summary.failed)
        } else {
            String::new()
        },
    );
    Ok(if summary.stopped {
        EXIT_STOPPED
    } else {
        EXIT_COMPLETED
    })
}

/// `, N not overwritten through symbolic links` when there are such files.
fn symlinks_note(p: &Progress) -> String {
    if p.symlinks > 0 {
        format!(", {} not overwritten through symbolic links", p.symlinks)
    } else {
        String::new()
    }
}

/// The summary of a run that wrote: the counters, then the first failures.
fn print_summary(summary: &ProcessSummary) {
    let p = &summary.progress;
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
        symlinks_note(p),
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
