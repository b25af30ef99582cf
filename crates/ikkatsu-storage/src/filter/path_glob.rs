//! [`PathGlobs`]: shell-style globs on a whole relative path, for callers that name files
//! by a path pattern (an item reader's `path: in/*.csv`) rather than filter a walk.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ikkatsu_core::{Error, Result};

/// Include and exclude globs on the whole relative path: a path is kept when it matches
/// one of the include globs and none of the exclude globs. `*` and `?` do not cross `/`,
/// `**/` matches any number of directories (none included), `\` escapes. Unlike the
/// rclone-style rules of [`WalkOptions`](super::WalkOptions), a glob without `/` matches
/// top-level files only.
#[derive(Debug, Clone)]
pub struct PathGlobs {
    include: GlobSet,
    exclude: GlobSet,
}

impl PathGlobs {
    /// Compiles the globs; an invalid glob is a [`ikkatsu_core::ErrorKind::Config`] error
    /// naming it.
    pub fn new(include: &[String], exclude: &[String]) -> Result<PathGlobs> {
        Ok(PathGlobs {
            include: glob_set(include, "include")?,
            exclude: glob_set(exclude, "exclude")?,
        })
    }

    /// Whether the relative `path` is kept.
    pub fn matches(&self, path: &str) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ikkatsu_core::ErrorKind;

    #[test]
    fn whole_path_semantics() {
        let globs = PathGlobs::new(&["in/**/*.csv".into()], &["in/old/**".into()]).unwrap();
        assert!(globs.matches("in/a.csv"));
        assert!(globs.matches("in/x/a.csv"));
        assert!(!globs.matches("in/old/a.csv"));
        assert!(!globs.matches("x/in/a.csv"));
        let top = PathGlobs::new(&["*.csv".into()], &[]).unwrap();
        assert!(top.matches("a.csv"));
        assert!(!top.matches("d/a.csv"));
        let err = PathGlobs::new(&["a[".into()], &[]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("a["));
    }
}
