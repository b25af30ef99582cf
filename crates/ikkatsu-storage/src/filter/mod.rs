//! What a walk keeps: [`WalkOptions`] (rclone's filter rules, size and age limits, depth,
//! hidden names, symbolic links), their compiled [`PathFilter`], and the [`WalkCounts`] a
//! walk adds to. Every backend's walk uses the one [`PathFilter`].
//!
//! The rules follow rclone (<https://rclone.org/filtering/>): [`glob`] translates the
//! patterns, [`rules`] orders them (first match wins, with rclone's directory rules),
//! [`limits`] reads sizes and ages.

mod glob;
mod limits;
mod path_glob;
mod rules;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use ikkatsu_core::{Error, Result};

use crate::file_info::FileInfo;
pub use limits::{ByteSize, FileAge};
pub use path_glob::PathGlobs;
use rules::{FileList, Rules, read_lines};

/// What [`Storage::walk`](crate::Storage::walk) yields: the files that rclone, given the
/// same filter flags, would list (see `docs/overwrite.md#choosing-files`), minus hidden
/// names unless [`WalkOptions::include_hidden`], down to [`WalkOptions::max_depth`].
///
/// Patterns: a pattern without `/` matches the file name at any depth (`*.csv`), a leading
/// `/` anchors it at the root (`/*.csv`: top-level files only), any other pattern matches
/// the end of the path on a `/` boundary (`a/*.csv`: files in any directory named `a`).
/// `*` and `?` stay within one name, `**` crosses directories, `{a,b}` is an alternation,
/// `[...]` a character class. A pattern ending in `/` matches directories: as an exclusion
/// it drops the whole directory.
///
/// Rules are tried in rclone's order: `include`, `include_from`, `exclude`,
/// `exclude_from`, `filter`, `filter_from` (each in the order given), then, when there is
/// any include rule, an implicit exclusion of everything else. The first rule that matches
/// decides; a file no rule matches is kept. `files_from` replaces all rules and limits
/// (combining them is refused, as rclone does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Include patterns (`--include`).
    pub include: Vec<String>,
    /// Exclude patterns (`--exclude`).
    pub exclude: Vec<String>,
    /// Rules `+ PATTERN` (include), `- PATTERN` (exclude) or `!` (forget the rules so far)
    /// (`--filter`).
    pub filter: Vec<String>,
    /// Files of include patterns, one a line; blank lines and lines starting with `#` or
    /// `;` are ignored (`--include-from`).
    pub include_from: Vec<PathBuf>,
    /// Files of exclude patterns (`--exclude-from`).
    pub exclude_from: Vec<PathBuf>,
    /// Files of `+`/`-`/`!` rules (`--filter-from`).
    pub filter_from: Vec<PathBuf>,
    /// Files listing the paths to take (relative to the root, one a line); nothing else is
    /// taken (`--files-from`).
    pub files_from: Vec<PathBuf>,
    /// Only files of at least this many bytes (`--min-size`).
    pub min_size: Option<u64>,
    /// Only files of at most this many bytes (`--max-size`).
    pub max_size: Option<u64>,
    /// Only files modified at least this long ago, or before this date (`--min-age`).
    pub min_age: Option<FileAge>,
    /// Only files modified at most this long ago, or since this date (`--max-age`).
    pub max_age: Option<FileAge>,
    /// At most this many path components in a yielded file (1: files directly in the root).
    /// `None`: no limit.
    pub max_depth: Option<usize>,
    /// Follow symbolic links to directories and files (for reading: a writer decides what
    /// to do with files reached through a link, see `docs/adr/0012-symbolic-links.md`). A
    /// link to a directory that is already on the current path (a loop) is not entered; a
    /// dangling link is skipped with a warning. When false, symbolic links are neither
    /// followed nor yielded, and each is skipped with a warning.
    pub follow_symlinks: bool,
    /// Yield files whose name, or the name of one of whose directories, starts with `.`.
    /// Without it such files are left out whatever the rules say.
    pub include_hidden: bool,
    /// Counters the walk adds to as it goes (see [`WalkCounts`]); `None`: not counted.
    pub counts: Option<WalkCounts>,
}

/// What a walk skipped, counted as it goes: give a clone in [`WalkOptions::counts`] and
/// read it once the walk has ended. Two `WalkCounts` are equal when they are the same
/// counters.
#[derive(Debug, Clone, Default)]
pub struct WalkCounts {
    links_skipped: Arc<AtomicU64>,
}

impl WalkCounts {
    /// Fresh counters at zero.
    pub fn new() -> Self {
        WalkCounts::default()
    }

    /// Symbolic links the local walker skipped (each with a warning in the log): every link
    /// when links are not followed, and dangling links when they are.
    pub fn links_skipped(&self) -> u64 {
        self.links_skipped.load(Ordering::Relaxed)
    }

    pub(crate) fn add_link_skipped(&self) {
        self.links_skipped.fetch_add(1, Ordering::Relaxed);
    }
}

impl PartialEq for WalkCounts {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.links_skipped, &other.links_skipped)
    }
}

impl Eq for WalkCounts {}

impl WalkOptions {
    /// Every non-hidden file, any depth, symbolic links not followed.
    pub fn new() -> Self {
        WalkOptions::default()
    }

    /// Adds an include pattern.
    pub fn include(mut self, glob: impl Into<String>) -> Self {
        self.include.push(glob.into());
        self
    }

    /// Adds an exclude pattern.
    pub fn exclude(mut self, glob: impl Into<String>) -> Self {
        self.exclude.push(glob.into());
        self
    }

    /// Adds a `+ PATTERN`, `- PATTERN` or `!` rule.
    pub fn filter(mut self, rule: impl Into<String>) -> Self {
        self.filter.push(rule.into());
        self
    }

    /// Sets the maximum depth.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Sets whether symbolic links are followed.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Sets whether hidden files and directories are walked.
    pub fn include_hidden(mut self, include: bool) -> Self {
        self.include_hidden = include;
        self
    }

    /// Whether any rule, list or limit beyond depth and hidden names is set.
    fn has_rules(&self) -> bool {
        !(self.include.is_empty()
            && self.exclude.is_empty()
            && self.filter.is_empty()
            && self.include_from.is_empty()
            && self.exclude_from.is_empty()
            && self.filter_from.is_empty())
    }

    fn has_limits(&self) -> bool {
        self.min_size.is_some()
            || self.max_size.is_some()
            || self.min_age.is_some()
            || self.max_age.is_some()
    }

    /// Compiles the rules, reading the rule and list files; an invalid pattern or rule
    /// is a [`ikkatsu_core::ErrorKind::Config`] error naming it (and the file and line it
    /// came from), an unreadable file one naming the file. Ages are measured from now.
    pub fn compile(&self) -> Result<PathFilter> {
        let mut rules = Rules::default();
        for glob in &self.include {
            rules
                .add(true, glob)
                .map_err(|e| bad_pattern("include", glob, e))?;
        }
        add_from(&mut rules, &self.include_from, "include-from", |r, l| {
            r.add(true, l)
        })?;
        for glob in &self.exclude {
            rules
                .add(false, glob)
                .map_err(|e| bad_pattern("exclude", glob, e))?;
        }
        add_from(&mut rules, &self.exclude_from, "exclude-from", |r, l| {
            r.add(false, l)
        })?;
        for rule in &self.filter {
            rules
                .add_rule(rule)
                .map_err(|e| bad_pattern("filter", rule, e))?;
        }
        add_from(
            &mut rules,
            &self.filter_from,
            "filter-from",
            Rules::add_rule,
        )?;
        if !self.include.is_empty() || !self.include_from.is_empty() {
            rules
                .add(false, "/**")
                .map_err(|e| bad_pattern("include", "/**", e))?;
        }
        let now = Utc::now();
        let modified_from = self.max_age.map(|age| age.cutoff(now));
        let modified_to = self.min_age.map(|age| age.cutoff(now));
        if let (Some(from), Some(to), Some(min), Some(max)) =
            (modified_from, modified_to, self.min_age, self.max_age)
            && to < from
        {
            return Err(Error::config(format!(
                "min-age {min} is larger than max-age {max}: no file can match; swap them or drop one"
            )));
        }
        let files = if self.files_from.is_empty() {
            None
        } else {
            if self.has_rules() || self.has_limits() {
                return Err(Error::config(
                    "files-from takes exactly the listed files and cannot be combined with include, exclude, filter (or their -from files), min-size, max-size, min-age or max-age; drop one or the other",
                ));
            }
            let mut list = FileList::default();
            for file in &self.files_from {
                for (_, line) in read_lines(file, "files-from")? {
                    list.add(&line);
                }
            }
            Some(list)
        };
        Ok(PathFilter {
            inner: Arc::new(Compiled {
                rules,
                files,
                min_size: self.min_size,
                max_size: self.max_size,
                modified_from,
                modified_to,
                max_depth: self.max_depth,
                include_hidden: self.include_hidden,
            }),
        })
    }
}

fn bad_pattern(option: &str, pattern: &str, why: String) -> Error {
    Error::config(format!(
        "invalid {option} pattern {pattern:?}: {why}; fix the pattern"
    ))
}

/// Adds the rules of each file of `files`, naming the file and line of a bad one.
fn add_from(
    rules: &mut Rules,
    files: &[PathBuf],
    option: &str,
    add: impl Fn(&mut Rules, &str) -> std::result::Result<(), String>,
) -> Result<()> {
    for file in files {
        for (number, line) in read_lines(file, option)? {
            add(rules, &line).map_err(|why| {
                Error::config(format!(
                    "{option} {}:{number}: {why}; fix the line",
                    file.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// The compiled filter of a walk: rules, limits, depth and hidden names. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PathFilter {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    rules: Rules,
    files: Option<FileList>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    modified_from: Option<DateTime<Utc>>,
    modified_to: Option<DateTime<Utc>>,
    max_depth: Option<usize>,
    include_hidden: bool,
}

impl PathFilter {
    /// Whether the file at the relative `path` is kept by its path: its depth, its hidden
    /// names, the rules for each directory above it and for the file itself (size and age
    /// are checked by [`PathFilter::keeps_size_and_age`]).
    pub fn matches(&self, path: &str) -> bool {
        self.matches_in_kept_dir(path)
            && path
                .match_indices('/')
                .all(|(cut, _)| self.keeps_dir(&path[..cut]))
    }

    /// [`PathFilter::matches`] for a file whose directories were already let in by
    /// [`PathFilter::descend`].
    pub(crate) fn matches_in_kept_dir(&self, path: &str) -> bool {
        let c = &self.inner;
        if let Some(max) = c.max_depth
            && path.split('/').count() > max
        {
            return false;
        }
        if !c.include_hidden && path.split('/').any(|name| name.starts_with('.')) {
            return false;
        }
        match &c.files {
            Some(list) => list.keeps_file(path),
            None => c.rules.keeps_file(path),
        }
    }

    fn keeps_dir(&self, dir: &str) -> bool {
        match &self.inner.files {
            Some(list) => list.keeps_dir(dir),
            None => self.inner.rules.keeps_dir(dir),
        }
    }

    /// Whether a file of `size` bytes modified at `modified` (unknown: older than any
    /// limit) passes the size and age limits.
    pub fn keeps_size_and_age(&self, size: u64, modified: Option<DateTime<Utc>>) -> bool {
        let c = &self.inner;
        if let Some(from) = c.modified_from
            && modified.is_none_or(|m| m < from)
        {
            return false;
        }
        if let Some(to) = c.modified_to
            && modified.is_some_and(|m| m > to)
        {
            return false;
        }
        c.min_size.is_none_or(|min| size >= min) && c.max_size.is_none_or(|max| size <= max)
    }

    /// Whether `file` passes the size and age limits.
    pub fn keeps_file_info(&self, file: &FileInfo) -> bool {
        self.keeps_size_and_age(file.size, file.modified)
    }

    /// Whether a file's size or time is needed to decide whether it is kept.
    pub(crate) fn needs_metadata(&self) -> bool {
        let c = &self.inner;
        c.min_size.is_some()
            || c.max_size.is_some()
            || c.modified_from.is_some()
            || c.modified_to.is_some()
    }

    /// Whether hidden names are kept.
    pub(crate) fn include_hidden(&self) -> bool {
        self.inner.include_hidden
    }

    /// Whether the walk enters the directory at the relative path `dir`, `depth`
    /// components deep (its parent already entered).
    pub(crate) fn descend(&self, dir: &str, depth: usize) -> bool {
        let name = dir.rsplit('/').next().unwrap_or(dir);
        if !self.inner.include_hidden && name.starts_with('.') {
            return false;
        }
        self.inner.max_depth.is_none_or(|max| depth < max) && self.keeps_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikkatsu_core::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn rclone_semantics() {
        let f = WalkOptions::new()
            .include("*.txt")
            .exclude("skip/**")
            .compile()
            .unwrap();
        assert!(f.matches("a.txt"));
        assert!(
            f.matches("x/y/a.txt"),
            "a name pattern matches at any depth"
        );
        assert!(!f.matches("x/y/a.csv"));
        assert!(f.matches("skip/a.txt"), "includes come before excludes");
        assert!(!f.matches(".hidden/a.txt"));
        let top = WalkOptions::new().include("/*.txt").compile().unwrap();
        assert!(top.matches("a.txt"));
        assert!(!top.matches("d/a.txt"), "a leading / anchors at the root");
        let dir = WalkOptions::new().include("a/*.csv").compile().unwrap();
        assert!(dir.matches("a/x.csv"));
        assert!(
            !dir.matches("b/a/x.csv"),
            "b is not entered: no include rule names it"
        );
        assert!(!dir.descend("b", 1));
        let depth = WalkOptions::new()
            .max_depth(2)
            .include_hidden(true)
            .compile()
            .unwrap();
        assert!(depth.matches("a/b"));
        assert!(depth.matches(".a/b"));
        assert!(!depth.matches("a/b/c"));
        let err = WalkOptions::new().include("a[").compile().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("\"a[\""), "{}", err.message());
        let err = WalkOptions::new().filter("x").compile().unwrap_err();
        assert!(
            err.message().contains("malformed rule"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn files_from_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list");
        std::fs::write(&list, "# wanted\n\n a/b.txt \n;x\n/c.txt\n").unwrap();
        let f = WalkOptions {
            files_from: vec![list.clone()],
            ..WalkOptions::new()
        }
        .compile()
        .unwrap();
        assert!(f.matches("a/b.txt"));
        assert!(f.matches("c.txt"));
        assert!(!f.matches("a/c.txt"));
        assert!(!f.matches("x"));
        let err = WalkOptions {
            files_from: vec![list],
            min_size: Some(1),
            ..WalkOptions::new()
        }
        .compile()
        .unwrap_err();
        assert!(err.message().contains("files-from"), "{}", err.message());

        let rules = dir.path().join("rules");
        std::fs::write(&rules, "+ *.txt\n# c\n- {a\n").unwrap();
        let err = WalkOptions {
            filter_from: vec![rules.clone()],
            ..WalkOptions::new()
        }
        .compile()
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let at = format!("filter-from {}:3: ", rules.display());
        assert!(err.message().starts_with(&at), "{}", err.message());
        let missing = dir.path().join("missing");
        let err = WalkOptions {
            exclude_from: vec![missing.clone()],
            ..WalkOptions::new()
        }
        .compile()
        .unwrap_err();
        assert!(
            err.message().contains(&missing.display().to_string()),
            "{}",
            err.message()
        );

        let now = Utc::now();
        let f = WalkOptions {
            min_size: Some(10),
            max_size: Some(20),
            max_age: Some("1d".parse().unwrap()),
            ..WalkOptions::new()
        }
        .compile()
        .unwrap();
        assert!(f.needs_metadata());
        assert!(f.keeps_size_and_age(10, Some(now)));
        assert!(f.keeps_size_and_age(20, Some(now)));
        assert!(!f.keeps_size_and_age(9, Some(now)));
        assert!(!f.keeps_size_and_age(21, Some(now)));
        assert!(!f.keeps_size_and_age(15, Some(now - chrono::Duration::days(2))));
        assert!(!f.keeps_size_and_age(15, None));
        let err = WalkOptions {
            min_age: Some("2d".parse().unwrap()),
            max_age: Some("1d".parse().unwrap()),
            ..WalkOptions::new()
        }
        .compile()
        .unwrap_err();
        assert!(err.message().contains("min-age"), "{}", err.message());
    }

    proptest! {
        #[test]
        fn include_patterns_at_any_depth(dirs in proptest::collection::vec("[a-z]{1,5}", 0..5), name in "[a-z]{1,5}") {
            let mut path = dirs.join("/");
            if !path.is_empty() { path.push('/'); }
            path.push_str(&name);
            path.push_str(".dat");
            let f = WalkOptions::new().include("*.dat").compile().unwrap();
            prop_assert!(f.matches(&path));
            let ex = WalkOptions::new().exclude("**").compile().unwrap();
            prop_assert!(!ex.matches(&path));
            let top = WalkOptions::new().include("/*.dat").compile().unwrap();
            prop_assert_eq!(top.matches(&path), dirs.is_empty());
            let deep = WalkOptions::new().include("**/*.dat").compile().unwrap();
            prop_assert_eq!(deep.matches(&path), !dirs.is_empty());
        }
    }
}
