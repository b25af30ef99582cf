//! [`register`]: the `overwrite` tasklet type under its job-file name, and
//! [`storage_url`]/[`status_store_url`], how its `@name` references are resolved through the
//! application config.
//!
//! | kind    | type        | component             | properties          |
//! |---------|-------------|-----------------------|---------------------|
//! | tasklet | `overwrite` | [`OverwriteTasklet`]  | [`OverwriteConfig`] |

use std::sync::Arc;

use ikkatsu_config::{AppConfig, ComponentRegistry};
use ikkatsu_core::Result;
use ikkatsu_storage::StorageConnection;

use crate::config::OverwriteConfig;
use crate::step::OverwriteTasklet;

/// Registers the `overwrite` tasklet type in `registry`; its `source`, `target` and `status-store`
/// may name storages and status stores of the application config `app` (`@name`).
pub fn register(registry: &mut ComponentRegistry, app: &Arc<AppConfig>) {
    let app = app.clone();
    registry.register_tasklet("overwrite", move |props, _| {
        let mut config: OverwriteConfig = props.deserialize()?;
        config.resolve_names(|s| storage_url(&app, s), |s| status_store_url(&app, s))?;
        Ok(Arc::new(OverwriteTasklet::new(config)?))
    });
}

/// The storage URL `reference` stands for: a leading `@name` is replaced by the named storage
/// of `app`, its options appended as query parameters ([`StorageConnection::to_url`]: secrets
/// in clear, do not show it); other references are returned as they are.
pub fn storage_url(app: &AppConfig, reference: &str) -> Result<String> {
    let named = app.storage(reference)?;
    StorageConnection {
        url: named.url,
        options: named.options,
    }
    .to_url()
}

/// The status-store URL `reference` stands for (`@name` of `app`, or the URL itself).
pub fn status_store_url(app: &AppConfig, reference: &str) -> Result<String> {
    app.status_store_url(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_storages_become_urls_with_their_options() {
        // SAFETY: only this test reads this variable.
        unsafe { std::env::set_var("IKK_OVERWRITE_REGISTER_SECRET", "s3cr&t") };
        let app = AppConfig::from_str(
            "storages:\n  inbox: file:///srv/in\n  lake:\n    url: s3://lake/raw\n    region: eu-west-1\n    secret-access-key: ${IKK_OVERWRITE_REGISTER_SECRET}\n  local:\n    url: /data\n    region: x\nstatus-stores:\n  shared: \"memory:\"\n",
            "ikkatsu.yaml",
        )
        .unwrap();
        assert_eq!(storage_url(&app, "@inbox").unwrap(), "file:///srv/in");
        assert_eq!(storage_url(&app, "/plain/path").unwrap(), "/plain/path");
        let url = storage_url(&app, "@lake").unwrap();
        assert!(url.starts_with("s3://lake/raw?"), "{url}");
        assert!(url.contains("secret-access-key=s3cr%26t"), "{url}");
        let err = storage_url(&app, "@local").unwrap_err().to_string();
        assert!(err.contains("takes no options"), "{err}");
        let err = storage_url(&app, "@nope").unwrap_err().to_string();
        assert!(err.contains("inbox") && err.contains("storages"), "{err}");
        assert_eq!(status_store_url(&app, "@shared").unwrap(), "memory:");
    }
}
