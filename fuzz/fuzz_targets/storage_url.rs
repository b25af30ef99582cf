//! Storage URLs: the first line of the input is a URL, the next lines `key=value` options
//! beside it (as in the application config). Opening it gives a storage or an error, never
//! a panic (no remote backend is built in: remote URLs are parsed and their options checked,
//! then refused as not part of this build); the masked URL, the error message and the
//! connection's `Debug` never show the password, a secret query parameter or a secret
//! option; a connection's `to_url` opens the same way as the connection.
#![no_main]

use ikkatsu_core::secret::{is_secret_name, mask_url};
use ikkatsu_fuzz::Secrets;
use ikkatsu_storage::{Storage, StorageConnection, StorageOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let url = text.split('\n').next().unwrap_or_default();
    let mut secrets = Secrets::of_url(url, text);
    for (key, value) in options(text) {
        if is_secret_name(key) {
            secrets.add(text, value);
        }
    }
    let shown = shown_texts(text);
    let blanked = shown_texts(&secrets.blank(text));
    for ((what, shown), (_, blanked)) in shown.iter().zip(&blanked) {
        secrets.assert_hidden(what, shown, blanked);
    }
});

/// The `key=value` lines after the URL.
fn options(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split('\n')
        .skip(1)
        .map(|line| line.split_once('=').unwrap_or((line, "")))
}

/// Opens the storage of `text` and returns what shows it: the masked URL, the connection's
/// `Debug`, the error.
fn shown_texts(text: &str) -> Vec<(&'static str, String)> {
    let url = text.split('\n').next().unwrap_or_default();
    let mut connection = StorageConnection::new(url);
    for (key, value) in options(text) {
        connection = connection.with_option(key, value);
    }
    let mut shown = vec![
        ("the masked URL", mask_url(url)),
        ("the shown URL", connection.shown_url()),
        ("the connection's Debug", format!("{connection:?}")),
    ];

    // A named memory storage lives as long as the process: opening millions of them would
    // only measure the memory of the fuzzer.
    let scheme = url.split(':').next().unwrap_or_default();
    if scheme.eq_ignore_ascii_case("memory") && url.len() > "memory:".len() {
        return shown;
    }
    let opened = Storage::open_connection(&connection, &StorageOptions::default());
    if let Err(err) = &opened {
        shown.push(("the error", err.to_string()));
    }
    if let Ok(joined) = connection.to_url() {
        let again = Storage::open(&joined);
        assert_eq!(
            again.is_ok(),
            opened.is_ok(),
            "{url:?} with {:?} opens as {joined:?} differently: {:?} / {:?}",
            connection.options,
            again.as_ref().err(),
            opened.as_ref().err()
        );
    }
    shown
}
