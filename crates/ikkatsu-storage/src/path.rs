//! Remote-name safety: the rules a path must follow before it is used on a storage or joined
//! with a local directory, and the hidden temporary names written beside a file.

use std::sync::atomic::{AtomicU64, Ordering};

use ikkatsu_core::{Error, ErrorKind, Result};

/// Checks that `path` is a safe path relative to a storage root: `/`-separated, not
/// absolute, without empty, `.` or `..` components, without NUL, and without a backslash
/// that another system could read as a separator leading out of the root (`..\x`, `\x`,
/// `a\..\b`) or a drive prefix (`C:`).
///
/// Every path that comes from a listing is checked before it is joined with a local path, so
/// a hostile server cannot make ikkatsu write outside its temporary directory.
///
/// ```
/// use ikkatsu_storage::validate_relative_path;
///
/// assert!(validate_relative_path("reports/2024/jan.csv").is_ok());
/// assert!(validate_relative_path("../etc/passwd").is_err());
/// assert!(validate_relative_path("/etc/passwd").is_err());
/// assert!(validate_relative_path("a/..\\..\\b").is_err());
/// ```
pub fn validate_relative_path(path: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "unsafe path {:?}: {why}; only relative paths without `..`, `.` or empty components are accepted",
                path.replace('\0', "\\0")
            ),
        ))
    };
    if path.is_empty() {
        return refuse("the path is empty");
    }
    if path.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return refuse("it is absolute");
    }
    if has_drive_prefix(path) {
        return refuse("it starts with a drive letter");
    }
    for component in path.split('/') {
        match component {
            "" => return refuse("it has an empty component"),
            "." | ".." => return refuse("it has a `.` or `..` component"),
            _ => {}
        }
        // Another system may read a backslash as a separator.
        if component.contains('\\')
            && component
                .split('\\')
                .any(|part| part == ".." || part == ".")
        {
            return refuse("it has a `..` component separated by backslashes");
        }
    }
    Ok(())
}

fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Joins a path accepted by [`validate_relative_path`] to a local directory.
pub fn join_local(root: &std::path::Path, path: &str) -> Result<std::path::PathBuf> {
    validate_relative_path(path)?;
    let mut joined = root.to_path_buf();
    for component in path.split('/') {
        joined.push(component);
    }
    Ok(joined)
}

/// Numbers the temporary names of this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `path` split into its directory (with the trailing `/`, or empty) and its name.
pub(crate) fn split_dir(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The prefix of every temporary name [`temp_sibling`] makes for `path`.
pub(crate) fn temp_sibling_prefix(path: &str) -> String {
    let (dir, name) = split_dir(path);
    format!("{dir}.{name}.ikkatsu-")
}

/// A hidden name beside `path` for content being written.
pub(crate) fn temp_sibling(path: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}{}-{n}.tmp",
        temp_sibling_prefix(path),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    #[test]
    fn examples() {
        for ok in [
            "a",
            "a/b/c.txt",
            "with space/ü.txt",
            "a#b%20c",
            "a\\b",
            "..a/b..",
            ".hidden",
        ] {
            assert!(validate_relative_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/a", "\\a", "a//b", "a/", "./a", "a/./b", "..", "a/../b", "a/..", "..\\a",
            "a\\..\\b", "a\\..", "C:x", "c:\\x", "a\0b",
        ] {
            let err = validate_relative_path(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{bad}");
        }
    }

    /// Lexical normalisation as an OS would do it, treating `\` as a separator too.
    fn escapes(root: &Path, path: &str) -> bool {
        let joined = root.join(path.replace('\\', "/"));
        let mut depth: i64 = 0;
        for component in joined.strip_prefix(root).unwrap_or(&joined).components() {
            match component {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return true,
            }
            if depth < 0 {
                return true;
            }
        }
        !joined.starts_with(root)
    }

    proptest! {
        #[test]
        fn accepted_paths_never_escape(parts in proptest::collection::vec(
            prop_oneof![
                Just("..".to_string()), Just(".".to_string()), Just(String::new()),
                Just("a".to_string()), Just("ü b".to_string()), Just("\\".to_string()),
                Just("..\\".to_string()), Just("\\..".to_string()), Just("\0".to_string()),
                Just("C:".to_string()), "[a-z.\\\\/]{1,4}",
            ],
            1..6,
        ), separators in proptest::collection::vec(prop_oneof![Just("/"), Just("\\"), Just("")], 6)) {
            let mut path = String::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    path.push_str(separators[i]);
                }
                path.push_str(part);
            }
            if validate_relative_path(&path).is_ok() {
                let root = Path::new("/storage/root");
                prop_assert!(!escapes(root, &path), "{path:?} escapes");
                let joined = join_local(root, &path).unwrap();
                prop_assert!(joined.starts_with(root));
                prop_assert!(!path.contains('\0'));
            }
        }
    }
}
