//! The licence files and metadata a packager or a lawyer looks for: both licence texts and a
//! NOTICE at the root, the ASF header kept on every file adapted from Apache OpenDAL, and no
//! placeholder address in the crates' metadata or the job schema.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn both_licences_and_a_notice_are_at_the_root() {
    let root = root();
    assert!(read(&root.join("LICENSE-MIT")).contains("Permission is hereby granted"));
    assert!(read(&root.join("LICENSE-APACHE")).contains("Version 2.0, January 2004"));
    let notice = read(&root.join("NOTICE"));
    assert!(notice.contains("Apache OpenDAL"), "{notice}");
    assert!(
        notice.contains("The Apache Software Foundation"),
        "{notice}"
    );
    let manifest = read(&root.join("Cargo.toml"));
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
}

#[test]
fn every_file_adapted_from_opendal_keeps_the_apache_header() {
    let mut adapted = 0;
    for service in ["ftp", "sftp"] {
        let dir = root()
            .join("crates/ikkatsu-storage/src/backend")
            .join(service);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = read(&path);
            if !text.contains("Adapted from Apache OpenDAL") {
                continue;
            }
            adapted += 1;
            assert!(
                text.starts_with("// Licensed to the Apache Software Foundation (ASF) under one\n"),
                "{} is adapted from OpenDAL but does not start with the ASF licence header",
                path.display()
            );
            assert!(text.contains("http://www.apache.org/licenses/LICENSE-2.0"));
            assert!(text.contains("Modified by the ikkatsu developers"));
        }
    }
    assert!(adapted >= 10, "only {adapted} adapted files found");
}

#[test]
fn no_placeholder_address_in_metadata_or_schema() {
    let root = root();
    let mut files = vec![root.join("Cargo.toml"), root.join("docs/job.schema.json")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        files.push(entry.unwrap().path().join("Cargo.toml"));
    }
    for file in files {
        let text = read(&file);
        assert!(
            !text.contains("example.invalid"),
            "{} names example.invalid",
            file.display()
        );
    }
}
