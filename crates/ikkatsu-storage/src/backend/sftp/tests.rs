//! The SSH error classification and the known_hosts lookup.

use std::sync::Arc;
use std::time::Duration;

use opendal::ErrorKind;
use russh::keys::PublicKey;

use super::auth::auth_refused;
use super::config::{Credentials, HostKeyCheck, SftpSettings};
use super::error::{Failure, parse_ssh_error};
use super::host_key::{Client, Known};
use crate::error::{AUTH_MARK, HOST_KEY_MARK};

fn settings() -> SftpSettings {
    SftpSettings {
        host: "127.0.0.1".into(),
        port: Some(2222),
        user: Some("u".into()),
        root: "/data/".into(),
        key_file: None,
        known_hosts: Some("/etc/kh".into()),
        check: HostKeyCheck::Strict,
        connect_timeout: Duration::from_secs(5),
        connections: 2,
    }
}

fn credentials() -> Arc<Credentials> {
    Arc::new(Credentials::new("u".into(), None, None, Vec::new()))
}

const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFyfGZy0OdrG86LcyVCKMgL0onwFlokdbmJOlksv6RAd";
const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBjrmP7fQjWRVTbmqsyVYUG6GbeLRra3k7UbSKR0ln9o";

fn key(base64: &str) -> PublicKey {
    russh::keys::parse_public_key_base64(base64).unwrap()
}

#[test]
fn ssh_errors_are_classified() {
    let client = Client::new(&settings(), credentials());
    let refused = client.check_key(&key(KEY)).unwrap_err();
    let err = parse_ssh_error(Failure::HostKey(refused), &settings());
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(!err.is_temporary());
    assert!(err.to_string().contains(HOST_KEY_MARK), "{err}");
    assert!(err.to_string().contains("/etc/kh"), "{err}");
    assert!(err.to_string().contains("[127.0.0.1]:2222"), "{err}");
    assert!(err.to_string().contains("ssh-keyscan -p 2222"), "{err}");

    let err = auth_refused(&settings(), "u", &["/k/id".to_string()]);
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(!err.is_temporary());
    assert!(err.to_string().contains(AUTH_MARK), "{err}");
    assert!(err.to_string().contains("u@[127.0.0.1]:2222"), "{err}");
    assert!(err.to_string().contains("/k/id"), "{err}");

    for e in [
        russh::Error::IO(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        )),
        russh::Error::HUP,
        russh::Error::Disconnect,
        russh::Error::KeepaliveTimeout,
    ] {
        let err = parse_ssh_error(Failure::Ssh(e), &settings());
        assert_eq!(err.kind(), ErrorKind::Unexpected);
        assert!(err.is_temporary(), "{err}");
        let source = std::error::Error::source(&err).expect("source");
        assert!(source.downcast_ref::<std::io::Error>().is_some(), "{err}");
    }
}

/// Hashed (`|1|...`) and plain `[host]:port` entries are found; another key of the same
/// type for the host is a changed key; `add` appends an unknown key.
#[test]
fn known_hosts_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("known_hosts");
    let mut s = settings();
    s.known_hosts = Some(file.clone());
    std::fs::write(&file, format!("[127.0.0.1]:2222 ssh-ed25519 {KEY}\n")).unwrap();
    let client = Client::new(&s, credentials());
    assert_eq!(client.lookup(&key(KEY)).unwrap(), Known::Matches);
    assert!(matches!(
        client.lookup(&key(OTHER)).unwrap(),
        Known::Changed { line: 1, .. }
    ));
    let changed = client.check_key(&key(OTHER)).unwrap_err();
    assert!(changed.contains("CHANGED"), "{changed}");

    let hashed = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&file)
        .output();
    if let Ok(out) = hashed
        && out.status.success()
    {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("|1|"), "{text}");
        assert_eq!(client.lookup(&key(KEY)).unwrap(), Known::Matches);
    }

    let on_22 = SftpSettings {
        port: None,
        ..s.clone()
    };
    assert_eq!(
        Client::new(&on_22, credentials())
            .lookup(&key(KEY))
            .unwrap(),
        Known::Unknown
    );

    std::fs::write(&file, "").unwrap();
    s.check = HostKeyCheck::Add;
    let client = Client::new(&s, credentials());
    client.check_key(&key(KEY)).unwrap();
    assert_eq!(client.lookup(&key(KEY)).unwrap(), Known::Matches);
    assert!(client.check_key(&key(OTHER)).is_err());
}
