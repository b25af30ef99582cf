//! What the process uses, sampled when a step starts and ends: the `resources` of a
//! `step-ended` event.

use serde::Serialize;

/// A sample of the process's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// User plus system CPU time, in microseconds.
    cpu_micros: u64,
}

/// The resources of a step: what the process used while it ran (other work of the process,
/// such as the other flows of a split, included) and what it holds when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepResources {
    /// CPU time (user plus system) the process used during the step, in milliseconds.
    pub cpu_time_ms: u64,
    /// The process's resident memory when the step ended, in bytes (Linux; 0 elsewhere).
    pub rss_bytes: u64,
    /// The process's open file descriptors when the step ended (Linux; 0 elsewhere).
    pub open_files: u64,
}

/// Samples the process now.
pub(crate) fn sample() -> Sample {
    // SAFETY: `getrusage` fills the struct it is given and touches nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
    if !ok {
        return Sample::default();
    }
    let micros = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    Sample {
        cpu_micros: micros(usage.ru_utime) + micros(usage.ru_stime),
    }
}

/// The resources since `start`.
pub(crate) fn since(start: Sample) -> StepResources {
    let end = sample();
    StepResources {
        cpu_time_ms: end.cpu_micros.saturating_sub(start.cpu_micros) / 1000,
        rss_bytes: rss_bytes(),
        open_files: std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64),
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_step_shows_cpu_time_memory_and_files() {
        let start = sample();
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(30);
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let used = since(start);
        assert!(used.cpu_time_ms >= 10, "{used:?}");
        assert!(used.rss_bytes > 1024 * 1024, "{used:?}");
        assert!(used.open_files >= 3, "{used:?}");
    }
}
