//! What a walk keeps: [`WalkOptions`] (globs, depth, hidden names, symbolic links), their
//! compiled [`PathFilter`], and the [`WalkCounts`] a walk adds to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ikkatsu_core::{Error, Result};

/// What [`Storage::walk`] yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Globs on the whole relative path; a file is kept when it matches any of them. Empty:
    /// every file. `*` and `?` do not cross `/`; `**` matches any number of directories
    /// (`**/*.csv` is every CSV file at any depth, `*.csv` only those at the top).
    pub include: Vec<String>,
    /// Globs on the whole relative path; a file matching any of them is dropped.
    pub exclude: Vec<String>,
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

    /// Adds an include glob.
    pub fn include(mut self, glob: impl Into<String>) -> Self {
        self.include.push(glob.into());
        self
    }

    /// Adds an exclude glob.
    pub fn exclude(mut self, glob: impl Into<String>) -> Self {
        self.exclude.push(glob.into());
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

    /// Compiles the globs; an invalid glob is a [`ErrorKind::Config`] error naming it.
    pub fn compile(&self) -> Result<PathFilter> {
        Ok(PathFilter {
            include: (!self.include.is_empty())
                .then(|| glob_set(&self.include, "include"))
                .transpose()?,
            exclude: (!self.exclude.is_empty())
                .then(|| glob_set(&self.exclude, "exclude"))
                .transpose()?,
            max_depth: self.max_depth,
            include_hidden: self.include_hidden,
        })
    }
}

fn glob_set(globs: &[String], what: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| {
                Error::config(format!(
                    "invalid {what} glob {glob:?}: {e}; fix the pattern"
                ))
                .with_source(e)
            })?;
        builder.add(compiled);
    }
    builder
        .build()
        .map_err(|e| Error::config(format!("invalid {what} globs: {e}")).with_source(e))
}

/// The compiled filter of a walk: globs, depth and hidden names.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    max_depth: Option<usize>,
    include_hidden: bool,
}

impl PathFilter {
    /// Whether the file at the relative `path` is kept.
    pub fn matches(&self, path: &str) -> bool {
        if let Some(max) = self.max_depth
            && path.split('/').count() > max
        {
            return false;
        }
        if !self.include_hidden && path.split('/').any(|c| c.starts_with('.')) {
            return false;
        }
        if let Some(include) = &self.include
            && !include.is_match(path)
        {
            return false;
        }
        !self.exclude.as_ref().is_some_and(|e| e.is_match(path))
    }

    /// Whether hidden names are kept.
    pub(crate) fn include_hidden(&self) -> bool {
        self.include_hidden
    }

    /// Whether a directory with `depth` components (and the given name) may hold kept files.
    pub(crate) fn descend(&self, name: &str, depth: usize) -> bool {
        if !self.include_hidden && name.starts_with('.') {
            return false;
        }
        self.max_depth.is_none_or(|max| depth < max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikkatsu_core::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn glob_semantics() {
        let f = WalkOptions::new()
            .include("**/*.txt")
            .exclude("skip/**")
            .compile()
            .unwrap();
        assert!(f.matches("a.txt"));
        assert!(f.matches("x/y/a.txt"));
        assert!(!f.matches("x/y/a.csv"));
        assert!(!f.matches("skip/a.txt"));
        assert!(!f.matches(".hidden/a.txt"));
        let top = WalkOptions::new().include("*.txt").compile().unwrap();
        assert!(top.matches("a.txt"));
        assert!(!top.matches("d/a.txt"), "* does not cross /");
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
        assert!(err.message().contains("a["));
    }

    proptest! {
        #[test]
        fn double_star_matches_any_depth(dirs in proptest::collection::vec("[a-z]{1,5}", 0..5), name in "[a-z]{1,5}") {
            let mut path = dirs.join("/");
            if !path.is_empty() { path.push('/'); }
            path.push_str(&name);
            path.push_str(".dat");
            let f = WalkOptions::new().include("**/*.dat").compile().unwrap();
            prop_assert!(f.matches(&path));
            let ex = WalkOptions::new().exclude("**").compile().unwrap();
            prop_assert!(!ex.matches(&path));
            let top = WalkOptions::new().include("*.dat").compile().unwrap();
            prop_assert_eq!(top.matches(&path), dirs.is_empty());
        }
    }
}
