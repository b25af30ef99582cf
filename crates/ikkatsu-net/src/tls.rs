//! The process-wide rustls crypto provider and the `ca-file` option.

use std::path::Path;
use std::sync::Once;

use ikkatsu_core::{Error, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Installs ring as the process-wide rustls crypto provider, unless the program installed
/// one. Call it before building any TLS client; calling it again does nothing.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: a provider is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// The certificates of the PEM file `path` given as `ca-file`: at least one. `what` names
/// the client in errors (`storage s3://bucket`).
pub fn read_ca_file(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::io(format!("{what}: `ca-file` {}", path.display()), e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::config(format!(
                "{what}: `ca-file` {} holds no usable PEM certificate: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "{what}: `ca-file` {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let err = read_ca_file(&missing, "storage s3://b").unwrap_err();
        assert!(
            err.to_string().contains("storage s3://b: `ca-file`"),
            "{err}"
        );
        assert!(err.to_string().contains("none.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = read_ca_file(&empty, "webhook").unwrap_err();
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
    }

    #[test]
    fn the_provider_is_installed_once() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
