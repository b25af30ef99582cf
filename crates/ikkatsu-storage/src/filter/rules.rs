//! rclone's filter rules: an ordered list of include (`+`) and exclude (`-`) globs where
//! the first rule that matches decides, one list for files and one for directories, and
//! the `--files-from` list that replaces them.

use std::collections::HashSet;
use std::path::Path;

use ikkatsu_core::{Error, Result};
use regex::Regex;

use super::glob::{compile_glob, dir_globs};

/// One include or exclude rule.
#[derive(Debug, Clone)]
struct Rule {
    include: bool,
    regex: Regex,
}

/// Rules in order; the first that matches decides, a path no rule matches is kept.
#[derive(Debug, Clone, Default)]
struct RuleList(Vec<Rule>);

impl RuleList {
    fn keeps(&self, path: &str) -> bool {
        self.0
            .iter()
            .find(|rule| rule.regex.is_match(path))
            .is_none_or(|rule| rule.include)
    }
}

/// The file rules and the directory rules built from include and exclude globs as rclone
/// builds them: a glob ending in `/` is a directory rule (as an exclusion it drops the
/// whole directory), a glob with `**` is both, and an include glob also keeps the
/// directories that may hold what it matches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    files: RuleList,
    dirs: RuleList,
}

impl Rules {
    /// Adds an include or exclude glob; the error says what is wrong with it.
    pub(crate) fn add(&mut self, include: bool, glob: &str) -> std::result::Result<(), String> {
        let mut glob = glob.to_string();
        let mut dir_rule = glob.ends_with('/');
        let mut file_rule = !dir_rule;
        if dir_rule && !include {
            glob.push_str("**");
        }
        if glob.contains("**") {
            dir_rule = true;
            file_rule = true;
        }
        let regex = compile_glob(&glob)?;
        if file_rule {
            self.files.0.push(Rule {
                include,
                regex: regex.clone(),
            });
            if include || glob == "*" {
                for dir_glob in dir_globs(&glob) {
                    if dir_glob != "/" {
                        let regex = compile_glob(&dir_glob)?;
                        self.dirs.0.push(Rule { include, regex });
                    }
                }
            }
        }
        if dir_rule {
            self.dirs.0.push(Rule { include, regex });
        }
        Ok(())
    }

    /// Adds a `--filter` rule: `+ GLOB`, `- GLOB`, or `!` (which clears the rules so far).
    pub(crate) fn add_rule(&mut self, rule: &str) -> std::result::Result<(), String> {
        if rule == "!" {
            *self = Rules::default();
            return Ok(());
        }
        if let Some(glob) = rule.strip_prefix("+ ") {
            return self.add(true, glob);
        }
        if let Some(glob) = rule.strip_prefix("- ") {
            return self.add(false, glob);
        }
        Err(format!(
            "malformed rule {rule:?}: write `+ GLOB` to include, `- GLOB` to exclude, or `!` to clear the rules so far"
        ))
    }

    /// Whether there is no rule.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.files.0.is_empty() && self.dirs.0.is_empty()
    }

    /// Whether the rules keep the file at the relative `path`.
    pub(crate) fn keeps_file(&self, path: &str) -> bool {
        self.files.keeps(path)
    }

    /// Whether the rules let the walk enter the directory at the relative `dir` (no
    /// trailing `/`).
    pub(crate) fn keeps_dir(&self, dir: &str) -> bool {
        if self.dirs.0.is_empty() {
            return true;
        }
        self.dirs.keeps(&format!("{dir}/"))
    }
}

/// The lines of a rule or list file that count: trimmed, without blank lines and comments
/// (`#` or `;` first), each with its line number. `what` names the option in messages.
pub(crate) fn read_lines(path: &Path, what: &str) -> Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(format!(
            "{what} {}: cannot read the file ({e}); check the path",
            path.display()
        ))
        .with_source(e)
    })?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with(['#', ';']))
        .map(|(n, line)| (n, line.to_string()))
        .collect())
}

/// The `--files-from` list: the files it names and the directories above them.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileList {
    files: HashSet<String>,
    dirs: HashSet<String>,
}

impl FileList {
    /// Adds a path relative to the root (leading and trailing `/` ignored).
    pub(crate) fn add(&mut self, path: &str) {
        let path = path.trim_matches('/');
        let mut dir = path;
        while let Some(cut) = dir.rfind('/') {
            dir = &dir[..cut];
            if !self.dirs.insert(dir.to_string()) {
                break;
            }
        }
        self.files.insert(path.to_string());
    }

    pub(crate) fn keeps_file(&self, path: &str) -> bool {
        self.files.contains(path)
    }

    pub(crate) fn keeps_dir(&self, dir: &str) -> bool {
        self.dirs.contains(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Rules {
        let mut rules = Rules::default();
        for rule in list {
            rules.add_rule(rule).unwrap();
        }
        rules
    }

    #[test]
    fn first_match_wins_and_directories_follow() {
        let r = rules(&["- secret*.jpg", "+ *.jpg", "- *"]);
        assert!(r.keeps_file("a/b.jpg"));
        assert!(!r.keeps_file("a/secret1.jpg"));
        assert!(!r.keeps_file("a/b.png"));
        assert!(
            r.keeps_dir("a"),
            "`+ *.jpg` keeps every directory before `- *` is tried"
        );
        let r = rules(&["+ /a/*.csv", "- /**"]);
        assert!(r.keeps_dir("a"));
        assert!(!r.keeps_dir("b"));
        assert!(!r.keeps_dir("a/b"));
        let r = rules(&["- tmp/"]);
        assert!(!r.keeps_dir("x/tmp"));
        assert!(!r.keeps_file("x/tmp/f"));
        assert!(r.keeps_file("x/tmp"));
        let r = rules(&["+ a", "!", "- a"]);
        assert!(!r.keeps_file("a"));
        assert!(Rules::default().is_empty());
        assert!(rules(&["!"]).is_empty());
        let err = Rules::default().add_rule("*.csv").unwrap_err();
        assert!(err.contains("malformed rule \"*.csv\""), "{err}");
    }

    #[test]
    fn file_lists_keep_their_directories() {
        let mut list = FileList::default();
        list.add("/a/b/c.txt");
        list.add("d.txt");
        assert!(list.keeps_file("a/b/c.txt"));
        assert!(list.keeps_file("d.txt"));
        assert!(!list.keeps_file("a/b"));
        assert!(list.keeps_dir("a"));
        assert!(list.keeps_dir("a/b"));
        assert!(!list.keeps_dir("d.txt"));
    }
}
