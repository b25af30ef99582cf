//! Azure Blob Storage: `azblob://container/prefix`, through OpenDAL's Azure Blob service.
//!
//! The endpoint is `https://ACCOUNT.blob.core.windows.net` unless `endpoint` is given (an
//! emulator: `http://127.0.0.1:10000/devstoreaccount1`). Credentials: `account-key` (shared
//! key), `sas-token`, else Azure's default chain (environment, workload and managed
//! identity), or none with `anonymous=true` (public containers).

use ikkatsu_core::{Error, Result};
use opendal::services::Azblob;

use super::http::{bucket_only, check_endpoint, open_object_store};
use super::opened::Opened;
use crate::layers::StorageOptions;
use crate::settings::Settings;
use crate::url::RemoteUrl;

/// The options of this backend (besides [`HTTP_OPTIONS`]).
const OPTIONS: &[&str] = &[
    "endpoint",
    "account",
    "account-key",
    "sas-token",
    "anonymous",
];

/// The OpenDAL builder for `url` and its options.
fn builder(url: &RemoteUrl, settings: &mut Settings) -> Result<Azblob> {
    let shown = settings.shown().to_string();
    bucket_only(
        url,
        &shown,
        "write `azblob://CONTAINER/prefix`; give the account as `account` and \
         the key as `account-key`",
    )?;
    let account = settings.take("account");
    let endpoint = match settings.take("endpoint") {
        Some(endpoint) => {
            check_endpoint(&endpoint, &shown)?;
            endpoint.trim_end_matches('/').to_string()
        }
        None => match &account {
            Some(account) => format!("https://{account}.blob.core.windows.net"),
            None => {
                return Err(Error::config(format!(
                    "storage {shown}: give `account` (the storage account name) or `endpoint`"
                )));
            }
        },
    };
    let mut b = Azblob::default()
        .container(&url.host)
        .root(&format!("/{}", url.path))
        .endpoint(&endpoint);
    if let Some(account) = &account {
        b = b.account_name(account);
    }
    let key = settings.take("account-key");
    let sas = settings.take("sas-token");
    let anonymous = settings.take_bool("anonymous")?.unwrap_or(false);
    if [key.is_some(), sas.is_some(), anonymous]
        .iter()
        .filter(|g| **g)
        .count()
        > 1
    {
        return Err(Error::config(format!(
            "storage {shown}: give one of `account-key`, `sas-token` and `anonymous`"
        )));
    }
    if let Some(key) = &key {
        if account.is_none() {
            return Err(Error::config(format!(
                "storage {shown}: `account-key` needs `account`, the storage account name"
            )));
        }
        b = b.account_key(key);
    }
    if let Some(sas) = &sas {
        b = b.sas_token(sas.trim_start_matches('?'));
    }
    if anonymous {
        b = b.skip_signature();
    }
    Ok(b)
}

/// Opens an Azure Blob storage.
pub(crate) fn open(url: &RemoteUrl, settings: Settings, layers: &StorageOptions) -> Result<Opened> {
    open_object_store(url, settings, layers, ("azblob", OPTIONS), builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::http::build_from;

    fn build(url: &str) -> Result<Azblob> {
        build_from(url, ("azblob", OPTIONS), builder)
    }

    #[test]
    fn maps_url_and_options() {
        let debug = format!(
            "{:?}",
            build("azblob://c/p?account=acc&account-key=a2V5").unwrap()
        );
        assert!(
            debug.contains("https://acc.blob.core.windows.net"),
            "{debug}"
        );
        assert!(!debug.contains("a2V5"), "{debug}");
        let debug = format!(
            "{:?}",
            build("azblob://c?endpoint=http://127.0.0.1:10000/devstoreaccount1&account=devstoreaccount1").unwrap()
        );
        assert!(
            debug.contains("127.0.0.1:10000/devstoreaccount1"),
            "{debug}"
        );
        for (url, expect) in [
            ("azblob://c/p", "give `account`"),
            (
                "azblob://c/p?endpoint=http://h&account-key=k",
                "needs `account`",
            ),
            ("azblob://c/p?account=a&account-key=k&sas-token=t", "one of"),
        ] {
            let err = build(url).unwrap_err();
            assert!(err.message().contains(expect), "{url}: {}", err.message());
        }
    }
}
