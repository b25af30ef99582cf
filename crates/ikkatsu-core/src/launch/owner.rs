//! Who runs an execution: `host:pid`, so that a killed process is noticed at once on the
//! same host.

use std::fmt;
use std::sync::OnceLock;

/// The `host:pid` of a process running an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOwner {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
}

impl ProcessOwner {
    /// Parses `host:pid`.
    pub fn parse(text: &str) -> Option<Self> {
        let (host, pid) = text.rsplit_once(':')?;
        Some(ProcessOwner {
            host: host.to_string(),
            pid: pid.parse().ok()?,
        })
    }

    /// On this host: whether the process is alive (`Some`); on another host: `None`.
    pub fn is_alive_here(&self) -> Option<bool> {
        let me = current_owner();
        if self.host != me.host {
            return None;
        }
        if self.pid == me.pid {
            return Some(true);
        }
        Some(pid_alive(self.pid))
    }
}

impl fmt::Display for ProcessOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.pid)
    }
}

#[cfg(unix)]
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc == 0 {
        // A zombie (killed, not yet reaped by its parent) is gone for our purposes.
        return !is_zombie(pid);
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(unix)]
fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn pid_alive(_pid: u32) -> bool {
    true
}

fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            if let Ok(name) = std::str::from_utf8(&buf[..end])
                && !name.is_empty()
            {
                return name.to_string();
            }
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_string())
}

/// This process's owner identity.
pub fn current_owner() -> &'static ProcessOwner {
    static OWNER: OnceLock<ProcessOwner> = OnceLock::new();
    OWNER.get_or_init(|| ProcessOwner {
        host: host_name(),
        pid: std::process::id(),
    })
}
