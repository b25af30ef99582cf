//! A private `ssh-agent` holding one passphrase-protected key, so that ssh (which runs in
//! batch mode and cannot ask for a passphrase) can use it. The agent listens on a socket in
//! the storage's private directory (mode 0700), is given only to the ssh processes of this
//! storage, and is stopped when the storage is dropped. The passphrase reaches `ssh-add`
//! through the environment of that one child and an askpass helper that answers once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ikkatsu_core::{Error, ErrorKind, Result};

use crate::error::AUTH_MARK;

/// A running private agent; dropping it stops the agent.
#[derive(Debug)]
pub(crate) struct PrivateAgent {
    child: Child,
    socket: PathBuf,
}

impl PrivateAgent {
    /// Starts an agent in `dir` and adds `key`, unlocked with `passphrase`.
    pub(crate) fn start(dir: &Path, key: &Path, passphrase: &str, shown: &str) -> Result<Self> {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::io(
                    format!(
                        "storage {shown}: cannot start ssh-agent for `key-passphrase` (install \
                         the OpenSSH client, or use a key without passphrase)"
                    ),
                    e,
                )
                .set_temporary(false)
            })?;
        let mut agent = PrivateAgent { child, socket };
        agent.wait_for_socket(shown)?;
        agent.add_key(dir, key, passphrase, shown)?;
        Ok(agent)
    }

    /// The agent's socket, for `SSH_AUTH_SOCK`.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    fn wait_for_socket(&mut self, shown: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("storage {shown}: ssh-agent exited at start ({status})"),
                ));
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("storage {shown}: ssh-agent did not open its socket within 10 s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn add_key(&self, dir: &Path, key: &Path, passphrase: &str, shown: &str) -> Result<()> {
        let askpass = dir.join("askpass");
        let asked = dir.join("askpass.asked");
        // Answers once: ssh-add asks again after a wrong passphrase, and an empty answer (the
        // helper failing) makes it give up instead of looping.
        let script = format!(
            "#!/bin/sh\nif [ -e '{asked}' ]; then exit 1; fi\n: > '{asked}'\nprintf '%s\\n' \"$IKKATSU_SSH_KEY_PASSPHRASE\"\n",
            asked = asked.display()
        );
        write_executable(&askpass, &script)
            .map_err(|e| Error::io(format!("storage {shown}: askpass helper"), e))?;
        let mut child = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .env("IKKATSU_SSH_KEY_PASSPHRASE", passphrase)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::io(
                    format!("storage {shown}: cannot run ssh-add for `key-passphrase`"),
                    e,
                )
                .set_temporary(false)
            })?;
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = child
            .wait()
            .map_err(|e| Error::io(format!("storage {shown}: ssh-add"), e))?;
        let _ = std::fs::remove_file(&askpass);
        let _ = std::fs::remove_file(&asked);
        if status.success() {
            return Ok(());
        }
        let detail = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Enter passphrase"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "storage {shown}: {AUTH_MARK}: the key {} could not be unlocked with \
                 `key-passphrase` ({}); check the passphrase and the key file",
                key.display(),
                if detail.is_empty() {
                    "ssh-add refused it".to_string()
                } else {
                    detail
                }
            ),
        ))
    }
}

impl Drop for PrivateAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o700);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
