//! TLS shared by FTPS and the HTTP backends: the `ca-file` and `insecure` options, and a
//! certificate verifier that accepts any certificate. The crypto provider and the reading of
//! CA files are `ikkatsu-net`'s.

use std::path::PathBuf;

use ikkatsu_core::{Error, Result};
#[cfg(feature = "ftp")]
use rustls::pki_types::CertificateDer;

use crate::settings::Settings;

#[cfg(feature = "ftp")]
pub(crate) use ikkatsu_net::install_crypto_provider;

/// The trust options of a TLS backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// PEM file with the CA certificates to trust.
    pub(crate) ca_file: Option<PathBuf>,
    /// Accept any certificate (logs a warning).
    pub(crate) insecure: bool,
}

impl TlsSettings {
    /// Takes `ca-file` and `insecure` from the settings; they exclude each other.
    pub(crate) fn take(settings: &mut Settings) -> Result<TlsSettings> {
        let out = TlsSettings {
            ca_file: settings.take_file("ca-file")?,
            insecure: settings.take_bool("insecure")?.unwrap_or(false),
        };
        if out.insecure && out.ca_file.is_some() {
            return Err(Error::config(format!(
                "storage {}: `insecure` and `ca-file` exclude each other; keep one",
                settings.shown()
            )));
        }
        Ok(out)
    }
}

/// The certificates of the PEM file `path` given as `ca-file`: at least one.
#[cfg(feature = "ftp")]
pub(crate) fn read_ca_file(
    path: &std::path::Path,
    shown: &str,
) -> Result<Vec<CertificateDer<'static>>> {
    ikkatsu_net::read_ca_file(path, &format!("storage {shown}"))
}

/// Says that `insecure` turned certificate verification off for the storage `shown`.
pub(crate) fn warn_insecure(shown: &str) {
    tracing::warn!(
        storage = %shown,
        "TLS certificate verification is OFF for this storage (`insecure`): anyone on the \
         network path can read and change the data"
    );
}

/// Accepts any server certificate (`insecure`), still checking that the handshake is signed
/// by the certificate's key.
#[cfg(feature = "ftp")]
#[derive(Debug)]
pub(crate) struct AcceptAnyCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

#[cfg(feature = "ftp")]
impl AcceptAnyCertificate {
    /// The verifier, with the signature algorithms of the ring provider.
    pub(crate) fn new() -> Self {
        AcceptAnyCertificate {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

#[cfg(feature = "ftp")]
impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
