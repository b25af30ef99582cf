//! `ikkatsu`: run batch jobs defined in YAML, inspect, stop and restart their executions.

mod about;
mod args;
mod commands;
mod exit;
mod logging;
mod open;
mod output;
mod overwrite;
mod progress;
mod redact;
mod worker;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: batch jobs allocate and free many small items, often on different threads (a
/// chunk is read on one and written on another); glibc's allocator is much slower at that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    if let Err(err) = logging::init(&cli.global.logging) {
        eprintln!("error: {err:#}");
        return ExitCode::from(exit::EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(exit::EXIT_FAILED);
        }
    };
    let code = runtime.block_on(commands::dispatch(cli));
    // Do not wait for blocking tasks (e.g. a child process reader) at shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}
