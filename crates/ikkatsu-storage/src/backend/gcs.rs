//! Google Cloud Storage: `gcs://bucket/prefix` (or `gs://`), through OpenDAL's GCS service.
//!
//! Credentials: a service-account JSON key (`credential-file`, or its content as
//! `credential`, JSON or base64), an OAuth `token`, else Google's default chain
//! (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud well-known file, and the VM metadata server
//! unless `instance-metadata=false`); an emulator takes `endpoint` and `anonymous=true`.

use base64::Engine as _;
use ikkatsu_core::{Error, Result};
use opendal::services::Gcs;

use super::http::{bucket_only, check_endpoint, open_object_store};
use super::opened::Opened;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::RemoteUrl;

/// The options of this backend (besides [`HTTP_OPTIONS`]).
const OPTIONS: &[&str] = &[
    "endpoint",
    "credential-file",
    "credential",
    "token",
    "anonymous",
    "instance-metadata",
];

/// The OpenDAL builder for `url` and its options.
fn builder(url: &RemoteUrl, settings: &mut Settings) -> Result<Gcs> {
    let shown = settings.shown().to_string();
    bucket_only(
        url,
        &shown,
        "write `gcs://BUCKET/prefix`; give credentials as options and an \
         emulator as `endpoint`",
    )?;
    let mut b = Gcs::default()
        .bucket(&url.host)
        .root(&format!("/{}", url.path));
    if let Some(endpoint) = settings.take("endpoint") {
        check_endpoint(&endpoint, &shown)?;
        b = b.endpoint(endpoint.trim_end_matches('/'));
    }
    let file = settings.take_file("credential-file")?;
    let content = settings.take("credential");
    let token = settings.take("token");
    let anonymous = settings.take_bool("anonymous")?.unwrap_or(false);
    let given = [
        file.is_some(),
        content.is_some(),
        token.is_some(),
        anonymous,
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        return Err(Error::config(format!(
            "storage {shown}: give one of `credential-file`, `credential`, `token` and \
             `anonymous`"
        )));
    }
    if let Some(path) = &file {
        let path = path.to_str().ok_or_else(|| {
            Error::config(format!(
                "storage {shown}: `credential-file` {} is not UTF-8",
                path.display()
            ))
        })?;
        b = b.credential_path(path);
    }
    if let Some(content) = content {
        b = b.credential(&credential_base64(&content, &shown)?);
    }
    if let Some(token) = token {
        b = b.token(token);
    }
    if anonymous {
        b = b
            .skip_signature()
            .disable_vm_metadata()
            .disable_config_load();
    }
    if !settings.take_bool("instance-metadata")?.unwrap_or(true) {
        b = b.disable_vm_metadata();
    }
    Ok(b)
}

/// The service-account key as OpenDAL wants it: base64 of the JSON.
fn credential_base64(content: &str, shown: &str) -> Result<String> {
    let content = content.trim();
    let json = if content.starts_with('{') {
        content.as_bytes().to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|_| {
                Error::config(format!(
                    "storage {shown}: `credential` is neither a service-account JSON key nor \
                     its base64"
                ))
            })?
    };
    if serde_json_like_object(&json) {
        Ok(base64::engine::general_purpose::STANDARD.encode(json))
    } else {
        Err(Error::config(format!(
            "storage {shown}: `credential` does not hold a JSON object (a service-account key)"
        )))
    }
}

fn serde_json_like_object(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    text.starts_with('{') && text.ends_with('}')
}

/// Opens a GCS storage.
pub(crate) fn open(url: &RemoteUrl, settings: Settings, layers: &StorageOptions) -> Result<Opened> {
    open_object_store(url, settings, layers, ("gcs", OPTIONS), builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::http::build_from;

    fn build(url: &str) -> Result<Gcs> {
        build_from(url, ("gcs", OPTIONS), builder)
    }

    #[test]
    fn maps_url_and_options() {
        let b = build("gs://bucket/p/q?endpoint=http://127.0.0.1:4443&anonymous=true").unwrap();
        let debug = format!("{b:?}");
        assert!(debug.contains("bucket"), "{debug}");
        assert!(debug.contains("http://127.0.0.1:4443"), "{debug}");
        assert!(debug.contains("/p/q"), "{debug}");
        assert!(build("gcs://b?credential=%7B%22type%22%3A1%7D").is_ok());
        let err = build("gcs://b?credential=notjson").unwrap_err();
        assert!(
            err.message().contains("service-account"),
            "{}",
            err.message()
        );
        let err = build("gcs://b?token=t&anonymous=true").unwrap_err();
        assert!(err.message().contains("one of"), "{}", err.message());
    }

    #[test]
    fn credential_forms() {
        let json = r#"{"type":"service_account"}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(credential_base64(json, "x").unwrap(), b64);
        assert_eq!(credential_base64(&b64, "x").unwrap(), b64);
    }
}
