//! Exit codes of the commands, and how SIGINT/SIGTERM stop a running command.
//!
//! Every code the binary returns is decided here (the table in `docs/cli.md`): a job's
//! outcome by [`for_execution`], an overwrite run's by [`for_outcome`], and an error that
//! ended a command before it had an outcome of its own by [`for_error`].

use ikkatsu_core::{BatchStatus, CancellationToken, Error, ErrorKind, JobExecution, StepExecution};
use ikkatsu_overwrite::RunOutcome;

/// The job completed, or the command did what it was asked.
pub const EXIT_COMPLETED: u8 = 0;
/// The job failed, or the command failed at run time (an unreachable server, refused
/// credentials, a failing disk or database).
pub const EXIT_FAILED: u8 = 1;
/// Bad usage or an invalid configuration: a wrong flag, an invalid job file, parameter or
/// URL, something named that does not exist, a request the object's state refuses.
pub const EXIT_USAGE: u8 = 2;
/// The job stopped (restartable).
pub const EXIT_STOPPED: u8 = 3;
/// Refused: the job instance, or the overwrite flow (its status store's run lease, its
/// state directory, its embedded status store file), is already being run by another
/// process.
pub const EXIT_ALREADY_RUNNING: u8 = 4;
/// Nothing to do: the job instance already completed (run it with other identifying
/// parameters to start a new one).
pub const EXIT_ALREADY_COMPLETE: u8 = 5;

/// The exit code of a command that ended with `err` before it could report an outcome of
/// its own: 4 refused because another process runs the work, 5 the instance is already
/// complete, 3 stopped, 2 usage or configuration (the kinds `config`, `parse`,
/// `not-found`, `invalid-state`), else 1: a failure at run time, whatever the kind (a server
/// that cannot be reached or refuses the credentials, the repository, the disk, the
/// program).
pub fn for_error(err: &Error) -> u8 {
    match err.kind() {
        ErrorKind::AlreadyRunning => EXIT_ALREADY_RUNNING,
        ErrorKind::AlreadyComplete => EXIT_ALREADY_COMPLETE,
        ErrorKind::Cancelled => EXIT_STOPPED,
        ErrorKind::Config | ErrorKind::Parse | ErrorKind::NotFound | ErrorKind::InvalidState => {
            EXIT_USAGE
        }
        _ => EXIT_FAILED,
    }
}

/// The exit code of an overwrite run that reached its end: 0 every file done (or nothing to
/// do), 1 some failed or were in conflict, 3 stopped.
pub fn for_outcome(outcome: RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Stopped => EXIT_STOPPED,
        RunOutcome::CompletedWithFailures => EXIT_FAILED,
        RunOutcome::Completed => EXIT_COMPLETED,
    }
}

/// The exit code of a finished job execution: 0 COMPLETED, 3 STOPPED, 4 when a step was
/// refused because its work is already being run elsewhere (an overwrite step whose flow
/// another process holds), else 1.
pub fn for_execution(execution: &JobExecution, steps: &[StepExecution]) -> u8 {
    match execution.status {
        BatchStatus::Completed => EXIT_COMPLETED,
        BatchStatus::Stopped | BatchStatus::Stopping => EXIT_STOPPED,
        BatchStatus::Failed
            if steps.iter().any(|s| {
                s.status == BatchStatus::Failed
                    && s.exit_status
                        .description
                        .contains(ikkatsu_overwrite::ALREADY_RUNNING)
            }) =>
        {
            EXIT_ALREADY_RUNNING
        }
        _ => EXIT_FAILED,
    }
}

/// The exit code of an overwrite run that failed once running (the listing of the source,
/// the status store, the disk), the error printed: 3 when it was stopped, else 1 whatever
/// the kind (a server refusing the credentials or a file vanishing under the run is no
/// usage error). A refusal (another run holds the flow) and a configuration error are
/// returned, for [`for_error`].
pub fn for_run_time_error(err: Error) -> Result<u8, Error> {
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

/// Cancels `token` on the first SIGINT/SIGTERM (graceful stop at the next chunk boundary);
/// a second signal ends the process at once.
pub fn stop_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut signals = 0u32;
        loop {
            if !wait_for_signal().await {
                return;
            }
            signals += 1;
            if signals == 1 {
                tracing::warn!(
                    "stop requested: finishing the current chunk, then stopping (press Ctrl-C again to abort at once)"
                );
                token.cancel();
            } else {
                eprintln!("aborted; run the job again to recover and restart it");
                std::process::exit(130);
            }
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return false;
    };
    tokio::select! {
        _ = int.recv() => true,
        _ = term.recv() => true,
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> bool {
    tokio::signal::ctrl_c().await.is_ok()
}
