//! What the `ikkatsu overwrite` end-to-end tests share: killing a run at a chosen point and
//! checking what a finished run leaves behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `cmd` (output discarded), waits until `reached()` says the kill point is reached,
/// then kills the process with SIGKILL. Checks `reached` every `poll` for at most `timeout`;
/// returns whether it was reached before the run ended by itself or the time ran out.
pub fn kill_9_when(
    cmd: &mut Command,
    timeout: Duration,
    poll: Duration,
    mut reached: impl FnMut() -> bool,
) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut hit = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if reached() {
            hit = true;
            break;
        }
        std::thread::sleep(poll);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    hit
}

/// Asserts that every flow's state under `dir/.ikkatsu/overwrite` has no work directory and
/// an empty journal: a finished run leaves no temporary file and no file in flight.
pub fn assert_nothing_in_flight(dir: &Path) {
    let state = dir.join(".ikkatsu/overwrite");
    for ns in std::fs::read_dir(&state).unwrap() {
        let ns = ns.unwrap().path();
        assert!(!ns.join("work").exists(), "work directory removed");
        assert_eq!(std::fs::read_dir(ns.join("journal")).unwrap().count(), 0);
    }
}
