//! Keeping secrets out of what the command prints: every log line and error message passes
//! through [`ikkatsu_core::secret::redact`], and the logs of the crates that print
//! credentials at debug level are capped.

use tracing_subscriber::filter::{Directive, EnvFilter};

/// Log targets that print credentials (e.g. reqsign's `StaticCredentialProvider {
/// secret_access_key: … }`) below `info`: capped at `info` whatever `--log` says.
const CREDENTIAL_TARGETS: &[&str] = &[
    "reqsign",
    "reqsign_core",
    "reqsign_aws_core",
    "reqsign_aws_v4",
    "reqsign_azure_storage",
    "reqsign_google",
    "reqsign_file_read_tokio",
];

/// `filter` with [`CREDENTIAL_TARGETS`] capped at `info`.
pub fn cap_credential_targets(mut filter: EnvFilter) -> EnvFilter {
    for target in CREDENTIAL_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Prints `error: MESSAGE` on standard error, secrets redacted.
pub fn print_error(message: &str) {
    eprintln!("error: {}", ikkatsu_core::secret::redact(message));
}
