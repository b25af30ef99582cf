//! rustls needs one crypto provider per process; ikkatsu installs ring's once, before the
//! first TLS client is built (FTPS and the HTTP backends).

use std::sync::Once;

/// Installs ring as the process-wide rustls crypto provider, unless the program installed one.
pub(crate) fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: a provider is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}
