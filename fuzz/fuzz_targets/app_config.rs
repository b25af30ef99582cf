//! The application config: any text given to `AppConfig::from_str` is a config or errors
//! naming the file; every named storage and status store is found by its `@name`; `Debug`
//! of a named storage masks its secret options; a named storage becomes a URL
//! (`StorageConnection::to_url`) or an error, never a panic.
#![no_main]

use ikkatsu_config::AppConfig;
use ikkatsu_core::secret::is_secret_name;
use ikkatsu_storage::StorageConnection;
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "ikkatsu.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ikkatsu_fuzz::may_name_special_file(text) {
        return;
    }
    let app = match AppConfig::from_str(text, ORIGIN) {
        Ok(app) => app,
        Err(errors) => {
            assert!(!errors.is_empty(), "an error without a message");
            for error in errors.iter() {
                assert_eq!(error.origin(), ORIGIN, "{error}");
            }
            return;
        }
    };
    for (name, storage) in &app.storages {
        let found = app.storage(&format!("@{name}"));
        assert_eq!(found.as_ref().ok(), Some(storage), "@{name}");
        let shown = format!("{storage:?}");
        for (key, value) in &storage.options {
            if !is_secret_name(key) || value.chars().count() < 6 {
                continue;
            }
            // Shown, and not because the rest of the storage holds it anyway.
            let mut blanked = storage.clone();
            blanked
                .options
                .insert(key.clone(), "x".repeat(value.chars().count()));
            let blanked = format!("{blanked:?}");
            assert!(
                !shown.contains(value.as_str()) || blanked.contains(value.as_str()),
                "option `{key}` shown: {shown}"
            );
        }
        let connection = StorageConnection {
            url: storage.url.clone(),
            options: storage.options.clone(),
        };
        let _ = connection.to_url();
        let _ = ikkatsu_overwrite::register::storage_url(&app, &format!("@{name}"));
    }
    for (name, url) in &app.status_stores {
        assert_eq!(
            app.status_store_url(&format!("@{name}")).ok().as_ref(),
            Some(url)
        );
    }
    if let Some(repository) = &app.repository {
        let _ = ikkatsu_sql::SqlUrl::parse(repository, "job repository");
    }
});
