//! The fuzz crate's layout (docs/fuzzing.md), checked without the nightly toolchain: every
//! target in `fuzz/Cargo.toml` has its source file and seeds, `scripts/fuzz --list` names
//! exactly those targets, and the fuzz crate stays out of the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The `[[bin]]` targets of `fuzz/Cargo.toml`: (name, path).
fn targets() -> Vec<(String, String)> {
    let manifest = read(&root().join("fuzz/Cargo.toml"));
    let mut targets = Vec::new();
    for section in manifest.split("[[bin]]").skip(1) {
        let field = |key: &str| {
            section
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{key} = \"")))
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or_else(|| panic!("a [[bin]] without `{key}`: {section}"))
                .to_string()
        };
        targets.push((field("name"), field("path")));
    }
    targets
}

#[test]
fn every_fuzz_target_has_its_source_and_seeds() {
    let fuzz = root().join("fuzz");
    let targets = targets();
    assert_eq!(targets.len(), 8, "{targets:?}");
    for (name, path) in &targets {
        assert_eq!(path, &format!("fuzz_targets/{name}.rs"));
        let source = read(&fuzz.join(path));
        assert!(source.contains("fuzz_target!"), "{path}");
        assert!(
            source.starts_with("//! "),
            "{path} does not say what it checks"
        );
        let seeds = std::fs::read_dir(fuzz.join("seeds").join(name))
            .unwrap_or_else(|err| panic!("fuzz/seeds/{name}: {err}"))
            .count();
        assert!(seeds > 0, "fuzz/seeds/{name} is empty");
    }
}

#[test]
fn scripts_fuzz_lists_the_targets_and_explains_itself() {
    let script = root().join("scripts/fuzz");
    let listed = Command::new("bash")
        .arg(&script)
        .arg("--list")
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let names: Vec<String> = targets().into_iter().map(|(name, _)| name).collect();
    assert_eq!(listed, names);

    let help = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "{help:?}");
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("scripts/fuzz [SECONDS] [TARGET...]"),
        "{help}"
    );

    let unknown = Command::new("bash")
        .arg(&script)
        .args(["5", "no_such_target"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no_such_target"));
}

#[test]
fn the_fuzz_crate_is_not_a_workspace_member() {
    let workspace = read(&root().join("Cargo.toml"));
    assert!(
        workspace.contains("exclude = [\"bench\", \"fuzz\"]"),
        "{workspace}"
    );
    let manifest = read(&root().join("fuzz/Cargo.toml"));
    assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
    assert!(manifest.contains("cargo-fuzz = true"), "{manifest}");
    assert!(manifest.contains("publish = false"), "{manifest}");
    assert!(read(&root().join("fuzz/.gitignore")).contains("/corpus"));
}
