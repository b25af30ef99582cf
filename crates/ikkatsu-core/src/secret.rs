//! Secrets: which names hold one, how URLs are shown, and the process-wide redaction of every
//! secret ikkatsu has seen.
//!
//! One rule for the whole workspace:
//!
//! * [`is_secret_name`] says whether a key (job parameter, storage option, query parameter,
//!   property, environment variable) holds a secret: its name (case and `-`/`_` ignored)
//!   contains `password`, `passwd`, `passphrase`, `secret`, `token`, `credential` or
//!   `signature`, ends in `apikey`, `accesskey`, `accountkey`, `privatekey` or `-key`, or is
//!   `key` or `sig`; a name ending in `-file` or `-path` names a file holding a secret, not a
//!   secret (and `access-key-id` is an identifier).
//! * [`mask_url`] shows a URL with its password and secret query parameters as `***`.
//! * [`register`] records a secret value; [`redact`] replaces every recorded value in a text
//!   by `***`. The command line passes every log line and message through [`redact`], so a
//!   library that prints a credential (a `Debug` of its client, a protocol trace) prints
//!   `***` instead.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::RwLock;

/// What a secret shows as.
pub const MASK: &str = "***";

/// Secrets shorter than this are not redacted from free text (a two-letter password would
/// blank out every occurrence of those letters); they are still masked where they are known
/// to be secrets (parameters, URLs).
pub const MIN_REDACTED_LEN: usize = 4;

/// The recorded secrets in the order [`redact`] replaces them: longest first, so that a
/// secret containing another is replaced whole. A set, so that recording one is cheap however
/// many there are (a long-lived process may parse very many URLs).
static SECRETS: RwLock<BTreeSet<(Reverse<usize>, String)>> = RwLock::new(BTreeSet::new());

/// `key` lowercased, with `_`, `.` and spaces as `-`.
pub fn normalize_key(key: &str) -> String {
    key.trim()
        .to_ascii_lowercase()
        .replace(['_', '.', ' '], "-")
}

/// Whether the value under `key` is a secret (see the module documentation for the rule).
pub fn is_secret_name(key: &str) -> bool {
    let key = normalize_key(key);
    if key.ends_with("-file") || key.ends_with("-path") {
        return false;
    }
    let squeezed = key.replace('-', "");
    [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "signature",
    ]
    .iter()
    .any(|s| squeezed.contains(s))
        || ["apikey", "accesskey", "accountkey", "privatekey"]
            .iter()
            .any(|s| squeezed.ends_with(s))
        || key == "key"
        || key.ends_with("-key")
        || key == "sig"
}

/// Records `value` as a secret: from now on [`redact`] replaces it (and its percent-encoded
/// form) by `***`. Values shorter than [`MIN_REDACTED_LEN`] are ignored.
pub fn register(value: &str) {
    let value = value.trim();
    if value.chars().count() < MIN_REDACTED_LEN {
        return;
    }
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    for form in [value.to_string(), percent_encode(value), escaped] {
        secrets.insert((Reverse(form.len()), form));
    }
}

/// Records the secrets of `url`: the password of `user:password@host` and the values of
/// secret-named query parameters (percent-decoded and as written).
pub fn register_url(url: &str) {
    if let Some((start, end)) = password_range(url) {
        register(&url[start..end]);
        register(&percent_decode(&url[start..end]));
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((key, value)) = pair.split_once('=')
                && is_secret_name(&percent_decode(key))
            {
                register(value);
                register(&percent_decode(value));
            }
        }
    }
}

/// Environment variables holding credentials that libraries read by themselves (the AWS,
/// Azure and Google SDK conventions, PostgreSQL and MySQL clients): [`register_environment`]
/// records their values.
pub const CREDENTIAL_VARIABLES: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_CREDENTIAL",
    "PGPASSWORD",
    "MYSQL_PWD",
    "REDISCLI_AUTH",
];

/// Records the values of [`CREDENTIAL_VARIABLES`] that are set. (A `${NAME}` reference in a
/// job file or the application config records its value when it is read as a secret.)
pub fn register_environment() {
    for name in CREDENTIAL_VARIABLES {
        if let Ok(value) = std::env::var(name) {
            register(&value);
        }
    }
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Ok(secrets) = SECRETS.read() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for (_, secret) in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// The URL with its password and secret query parameters replaced by `***`, for messages
/// and logs.
pub fn mask_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((start, end)) = password_range(&out) {
        out.replace_range(start..end, MASK);
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_name(&percent_decode(key)) => format!("{key}={MASK}"),
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

/// The byte range of the password in `scheme://user:password@host…` (for `redis://` and
/// `rediss://`, a lone `redis://password@host` too).
fn password_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = start + url[start..end].rfind('@')?;
    match url[start..at].find(':') {
        Some(colon) => Some((start + colon + 1, at)),
        None if url[..start].to_ascii_lowercase().starts_with("redis") && at > start => {
            Some((start, at))
        }
        None => None,
    }
}

/// Percent-decodes `text` (invalid escapes and non-UTF-8 results are kept as written).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// Percent-encodes everything but unreserved characters (as a URL writer would).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "DB_PASSWORD",
            "dbPassword",
            "key-passphrase",
            "secret-access-key",
            "AWS_SECRET_ACCESS_KEY",
            "api-token",
            "apiKey",
            "access_key",
            "account-key",
            "credentials",
            "key",
            "sig",
            "PGPASSWORD",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "input",
            "key-file",
            "credential-file",
            "password-path",
            "keyword",
            "monkey-count",
            "region",
            "access-key-id",
            "AWS_ACCESS_KEY_ID",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            mask_url("ftp://u:p%40ss@h:21/d?region=x&secret_access_key=abc"),
            "ftp://u:***@h:21/d?region=x&secret_access_key=***"
        );
        assert_eq!(mask_url("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(mask_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(mask_url("redis://pw@h/0"), "redis://***@h/0");
        assert_eq!(mask_url("ftp://user@h/d"), "ftp://user@h/d");
    }

    #[test]
    fn registered_secrets_are_redacted() {
        register("Marker-Pa$s 1");
        register("no");
        register_url("postgres://u:url%2Fsecret@h/db?password=qsecret1");
        let text = "a Marker-Pa$s 1 b Marker-Pa%24s%201 c url/secret url%2Fsecret qsecret1 no";
        assert_eq!(redact(text), "a *** b *** c *** *** *** no");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
