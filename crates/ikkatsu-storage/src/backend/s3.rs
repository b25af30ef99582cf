//! S3 and S3-compatible object stores: `s3://bucket/prefix?region=…&endpoint=…`, through
//! OpenDAL's S3 service.
//!
//! Credentials: static keys (`access-key-id` + `secret-access-key`, optional
//! `session-token`), else the standard AWS chain (environment, `profile` in the shared config
//! files, web identity, and the instance role from the metadata service unless
//! `instance-metadata=false`), or none with `anonymous=true`.

use ikkatsu_core::{Error, Result};
use opendal::services::S3;

use super::http::{bucket_only, check_endpoint, open_object_store};
use super::opened::Opened;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::RemoteUrl;

/// The options of this backend (besides [`HTTP_OPTIONS`]).
const OPTIONS: &[&str] = &[
    "endpoint",
    "region",
    "access-key-id",
    "secret-access-key",
    "session-token",
    "profile",
    "virtual-host-style",
    "anonymous",
    "instance-metadata",
];

/// The OpenDAL builder for `url` and its options.
fn builder(url: &RemoteUrl, settings: &mut Settings) -> Result<S3> {
    let shown = settings.shown().to_string();
    bucket_only(
        url,
        &shown,
        "write `s3://BUCKET/prefix`; give keys as `access-key-id` and \
         `secret-access-key` and a server as `endpoint`",
    )?;
    let mut b = S3::default()
        .bucket(&url.host)
        .root(&format!("/{}", url.path));
    if let Some(endpoint) = settings.take("endpoint") {
        check_endpoint(&endpoint, &shown)?;
        b = b.endpoint(endpoint.trim_end_matches('/'));
    }
    match settings.take("region") {
        Some(region) => b = b.region(&region),
        None if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none() =>
        {
            return Err(Error::config(format!(
                "storage {shown}: no region: add `region=…` (e.g. `?region=us-east-1`; any \
                 value for most S3-compatible servers) or set AWS_REGION"
            )));
        }
        None => {}
    }
    let key_id = settings.take("access-key-id");
    let secret = settings.take("secret-access-key");
    match (&key_id, &secret) {
        (Some(id), Some(secret)) => b = b.access_key_id(id).secret_access_key(secret),
        (None, None) => {}
        _ => {
            return Err(Error::config(format!(
                "storage {shown}: give both `access-key-id` and `secret-access-key`, or \
                 neither (to use the AWS credential chain)"
            )));
        }
    }
    if let Some(token) = settings.take("session-token") {
        b = b.session_token(&token);
    }
    if let Some(profile) = settings.take("profile") {
        b = b.profile(&profile);
    }
    if settings.take_bool("virtual-host-style")?.unwrap_or(false) {
        b = b.enable_virtual_host_style();
    }
    if settings.take_bool("anonymous")?.unwrap_or(false) {
        b = b.skip_signature();
    }
    if !settings.take_bool("instance-metadata")?.unwrap_or(true) {
        b = b.disable_ec2_metadata();
    }
    Ok(b)
}

/// Opens an S3 storage.
pub(crate) fn open(url: &RemoteUrl, settings: Settings, layers: &StorageOptions) -> Result<Opened> {
    open_object_store(url, settings, layers, ("s3", OPTIONS), builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::remote as parse;

    fn settings(url: &RemoteUrl) -> Settings {
        Settings::new(url.query.clone(), &Default::default(), "s3://shown").unwrap()
    }

    #[test]
    fn maps_url_and_options() {
        let url = parse(
            "s3://bucket/in/box?endpoint=http://127.0.0.1:9000/&region=us-east-1&access_key_id=a&secret_access_key=b&virtual-host-style=false",
        );
        let mut s = settings(&url);
        let b = builder(&url, &mut s).unwrap();
        s.finish("s3", OPTIONS).unwrap();
        let debug = format!("{b:?}");
        assert!(debug.contains("bucket"), "{debug}");
        assert!(debug.contains("http://127.0.0.1:9000"), "{debug}");
        assert!(!debug.contains("secret_access_key: Some"), "{debug}");
    }

    #[test]
    fn clear_errors() {
        for (url, expect) in [
            ("s3://b/p?region=r&access-key-id=a", "both"),
            ("s3://b/p?region=r&endpoint=localhost:9000", "http://"),
            ("s3://u:p@b/p?region=r", "access-key-id"),
            ("s3://b/p?region=r&anonymous=perhaps", "true or false"),
        ] {
            let parsed = parse(url);
            let err = builder(&parsed, &mut settings(&parsed)).unwrap_err();
            assert!(err.message().contains(expect), "{url}: {}", err.message());
        }
    }
}
