//! Logging in: the key of `key-file`, or the SSH agent's keys and the default keys, or a
//! password (by the `password` method, then by `keyboard-interactive`, answering the
//! server's hidden prompts with it, as PAM's "Password:" asks).

use std::path::Path;
use std::sync::Arc;

use opendal::{Error, ErrorKind, Result};
use russh::MethodKind;
use russh::client as ssh;
use russh::client::KeyboardInteractiveAuthResponse as Interactive;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::config::{Credentials, SftpSettings, target};
use super::error::parse_ssh_error;
use super::host_key::Client;
use crate::error::AUTH_MARK;

/// At most this many rounds of keyboard-interactive questions (PAM asks one).
const MAX_ROUNDS: usize = 4;

/// Authenticates `handle` with `c`: the key of `key-file` when given; else, without a
/// password, the agent's keys and then the default keys; then the password when given.
pub(super) async fn authenticate(
    handle: &mut ssh::Handle<Client>,
    s: &SftpSettings,
    c: &Credentials,
) -> Result<()> {
    let user = c.user.as_str();
    let mut tried = Vec::new();
    if let Some(key) = &c.key {
        let file = s
            .key_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        tried.push(format!("the key {file}"));
        if offer_key(handle, user, key.clone(), s).await? {
            return Ok(());
        }
    } else if c.password.is_none() {
        if offer_agent_keys(handle, user, s, &mut tried).await? {
            return Ok(());
        }
        for (path, key) in &c.default_keys {
            tried.push(format!("the key {}", path.display()));
            if offer_key(handle, user, key.clone(), s).await? {
                return Ok(());
            }
        }
    }
    if let Some(password) = &c.password {
        tried.push("the password".to_string());
        if offer_password(handle, user, password, s).await? {
            return Ok(());
        }
    }
    Err(auth_refused(s, user, &tried))
}

/// Offers the keys of the SSH agent at `SSH_AUTH_SOCK`, if one is reachable.
async fn offer_agent_keys(
    handle: &mut ssh::Handle<Client>,
    user: &str,
    s: &SftpSettings,
    tried: &mut Vec<String>,
) -> Result<bool> {
    let Some(socket) = std::env::var_os("SSH_AUTH_SOCK") else {
        return Ok(false);
    };
    let mut agent = match AgentClient::connect_uds(&socket).await {
        Ok(agent) => agent,
        Err(e) => {
            tracing::debug!(
                socket = %Path::new(&socket).display(),
                error = %e,
                "SSH agent not reachable"
            );
            return Ok(false);
        }
    };
    let identities = agent.request_identities().await.unwrap_or_default();
    for identity in identities {
        let key = identity.public_key().into_owned();
        let hash = rsa_hash(handle, key.algorithm(), s).await?;
        tried.push(format!(
            "the agent key {}",
            key.fingerprint(HashAlg::Sha256)
        ));
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(result) if result.success() => return Ok(true),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "the SSH agent did not sign"),
        }
    }
    Ok(false)
}

/// Offers `key`; true when the server accepted it.
pub(super) async fn offer_key(
    handle: &mut ssh::Handle<Client>,
    user: &str,
    key: Arc<PrivateKey>,
    s: &SftpSettings,
) -> Result<bool> {
    let hash = rsa_hash(handle, key.algorithm(), s).await?;
    handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
        .await
        .map(|r| r.success())
        .map_err(|e| parse_ssh_error(e.into(), s))
}

/// Logs in with `password`: by the `password` method, and when the server refuses it but
/// offers `keyboard-interactive`, by answering that method's hidden prompts with it. True
/// when the server accepted it.
async fn offer_password(
    handle: &mut ssh::Handle<Client>,
    user: &str,
    password: &str,
    s: &SftpSettings,
) -> Result<bool> {
    let result = handle
        .authenticate_password(user, password)
        .await
        .map_err(|e| parse_ssh_error(e.into(), s))?;
    let remaining = match result {
        russh::client::AuthResult::Success => return Ok(true),
        russh::client::AuthResult::Failure {
            remaining_methods, ..
        } => remaining_methods,
    };
    if !remaining.contains(&MethodKind::KeyboardInteractive) {
        return Ok(false);
    }
    let mut reply = handle
        .authenticate_keyboard_interactive_start(user, None)
        .await
        .map_err(|e| parse_ssh_error(e.into(), s))?;
    for _ in 0..MAX_ROUNDS {
        let prompts = match reply {
            Interactive::Success => return Ok(true),
            Interactive::Failure { .. } => return Ok(false),
            Interactive::InfoRequest { prompts, .. } => prompts,
        };
        let mut answers = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            if prompt.echo {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "{AUTH_MARK}: {user}@{} asks `{}` during keyboard-interactive login, \
                         which only a person can answer; use a key (`key-file`) or an account \
                         that asks for its password only",
                        target(s),
                        prompt.prompt.trim()
                    ),
                ));
            }
            answers.push(password.to_string());
        }
        reply = handle
            .authenticate_keyboard_interactive_respond(answers)
            .await
            .map_err(|e| parse_ssh_error(e.into(), s))?;
    }
    Ok(matches!(reply, Interactive::Success))
}

/// For an RSA key, the best signature hash the server takes.
pub(super) async fn rsa_hash(
    handle: &ssh::Handle<Client>,
    algorithm: Algorithm,
    s: &SftpSettings,
) -> Result<Option<HashAlg>> {
    if !algorithm.is_rsa() {
        return Ok(None);
    }
    handle
        .best_supported_rsa_hash()
        .await
        .map(Option::flatten)
        .map_err(|e| parse_ssh_error(e.into(), s))
}

/// The server refused every key and the password offered.
pub(super) fn auth_refused(s: &SftpSettings, user: &str, tried: &[String]) -> Error {
    let host = target(s);
    let message = if tried.is_empty() {
        format!(
            "{AUTH_MARK}: nothing to log in to {user}@{host} with: give `key-file` or \
             `password`, or put the key in the SSH agent (`SSH_AUTH_SOCK`) or in \
             ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa or ~/.ssh/id_rsa"
        )
    } else {
        format!(
            "{AUTH_MARK}: {user}@{host} refused {}; check the user, that the public key is \
             in its authorized_keys and the password",
            tried.join(", ")
        )
    };
    Error::new(ErrorKind::PermissionDenied, message)
}
