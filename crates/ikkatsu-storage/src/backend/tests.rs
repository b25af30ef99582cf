use super::*;
use crate::url::mask_secrets;

/// The error of opening `url`.
fn open_error(url: &str) -> Error {
    match open(
        &StorageConnection::new(url),
        &StorageOptions::default(),
        &mask_secrets(url),
    ) {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e,
    }
}

#[test]
fn scheme_and_host_errors_are_clear() {
    for (url, expect) in [
        ("s3:///prefix", "names no bucket"),
        ("azblob:///prefix", "names no container"),
        ("sftp:///dir", "names no host"),
        ("nope://host/x", "unknown scheme"),
    ] {
        let err = open_error(url);
        assert_eq!(err.kind(), ikkatsu_core::ErrorKind::Config, "{url}");
        assert!(err.message().contains(expect), "{url}: {}", err.message());
    }
    let err = open_error("nope://bob:hunter2@host/dir");
    assert!(
        err.message().contains("nope://bob:***@host/dir"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains("hunter2"));
    for backend in BACKENDS {
        for scheme in backend.schemes {
            assert!(
                err.message().contains(&format!("`{scheme}://`")),
                "{scheme}"
            );
        }
    }
}

#[test]
fn every_scheme_has_one_backend() {
    let mut seen = std::collections::BTreeSet::new();
    for backend in BACKENDS {
        for scheme in backend.schemes {
            assert!(seen.insert(*scheme), "`{scheme}` is served twice");
            assert_eq!(*scheme, scheme.to_ascii_lowercase());
        }
    }
    let gs = BACKENDS.iter().find(|b| b.schemes.contains(&"gs")).unwrap();
    assert_eq!(gs.feature, "gcs");
}

#[test]
fn missing_features_name_the_feature() {
    for backend in BACKENDS.iter().filter(|b| b.open.is_none()) {
        for scheme in backend.schemes {
            let err = open_error(&format!("{scheme}://h/p"));
            assert!(
                err.message()
                    .contains(&format!("cargo feature `{}`", backend.feature)),
                "{}",
                err.message()
            );
        }
    }
}

/// The URL table of docs/storage.md names each remote backend's schemes beside its cargo
/// feature, and no other remote scheme: the table cannot drift from [`BACKENDS`].
#[test]
fn the_docs_url_table_matches_the_registry() {
    let docs = include_str!("../../../../docs/storage.md");
    let table = docs
        .split("## URL forms")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").find(|block| block.contains("| URL |")))
        .expect("docs/storage.md has a URL forms table");
    let mut documented = std::collections::BTreeMap::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (forms, feature) = (cells[1], cells[3].trim_matches('`'));
        if feature == "always" {
            continue;
        }
        for form in forms.split('`').filter(|f| f.contains("://")) {
            let scheme = form.split("://").next().unwrap_or_default();
            documented.insert(scheme.to_string(), feature.to_string());
        }
    }
    let registered: std::collections::BTreeMap<String, String> = BACKENDS
        .iter()
        .flat_map(|b| {
            b.schemes
                .iter()
                .map(|s| (s.to_string(), b.feature.to_string()))
        })
        .collect();
    assert_eq!(documented, registered);
}
