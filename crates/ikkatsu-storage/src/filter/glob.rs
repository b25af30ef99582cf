//! rclone's glob grammar (<https://rclone.org/filtering/>), translated to regular
//! expressions: the translation rclone itself makes, so that a pattern keeps the files
//! rclone keeps.
//!
//! * A pattern without a leading `/` matches the end of the path on a `/` boundary
//!   (`*.csv` is every CSV file at any depth, `a/*.csv` those in any directory named `a`);
//!   a leading `/` anchors it at the root.
//! * `*` and `?` stay within one path component, `**` matches anything, `/` included.
//! * `[...]` is a character class (`[^...]` negated, `[[:alpha:]]` named), `{a,b}` an
//!   alternation (not nested), `{{regexp}}` a regular expression, `\` escapes the next
//!   character.

use regex::Regex;

/// The regular expression (as text) of a path glob, anchored as rclone anchors it.
pub(crate) fn glob_to_regex(glob: &str) -> Result<String, String> {
    let mut re = String::with_capacity(glob.len() * 2 + 8);
    let body = match glob.strip_prefix('/') {
        Some(rest) => {
            re.push('^');
            rest
        }
        None => {
            re.push_str("(^|/)");
            glob
        }
    };
    let mut stars = 0usize;
    let mut in_braces = false;
    let mut in_brackets = 0usize;
    let mut slashed = false;
    let mut in_regexp = false;
    let mut in_regexp_end = false;
    let mut previous: Option<char> = None;
    for c in body.chars() {
        let last = previous.replace(c);
        if slashed {
            re.push(c);
            slashed = false;
            continue;
        }
        if in_regexp_end {
            if c == '}' {
                // The regexp ends in `}`: `}}}` closes after the last one.
                re.pop();
                re.push('}');
                re.push(')');
                continue;
            }
            in_regexp_end = false;
        }
        if in_regexp {
            if c == '}' && last == Some('}') {
                in_regexp = false;
                in_regexp_end = true;
                re.pop();
                re.push(')');
            } else {
                re.push(c);
            }
            continue;
        }
        if c != '*' {
            push_stars(&mut re, &mut stars, glob)?;
        }
        if in_brackets > 0 {
            re.push(c);
            match c {
                '[' => in_brackets += 1,
                ']' => in_brackets -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '\\' => {
                re.push(c);
                slashed = true;
            }
            '*' => stars += 1,
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push(c);
                in_brackets += 1;
            }
            ']' => return Err(format!("mismatched ']' in glob {glob:?}")),
            '{' => {
                if in_braces {
                    if last == Some('{') {
                        in_regexp = true;
                        in_braces = false;
                    } else {
                        return Err(format!("can't nest '{{' '}}' in glob {glob:?}"));
                    }
                } else {
                    in_braces = true;
                    re.push('(');
                }
            }
            '}' => {
                if !in_braces {
                    return Err(format!("mismatched '{{' and '}}' in glob {glob:?}"));
                }
                in_braces = false;
                re.push(')');
            }
            ',' if in_braces => re.push('|'),
            '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                re.push('\\');
                re.push(c);
            }
            _ => re.push(c),
        }
    }
    push_stars(&mut re, &mut stars, glob)?;
    if in_brackets > 0 {
        return Err(format!("mismatched '[' and ']' in glob {glob:?}"));
    }
    if in_braces {
        return Err(format!("mismatched '{{' and '}}' in glob {glob:?}"));
    }
    if in_regexp {
        return Err(format!("mismatched '{{{{' and '}}}}' in glob {glob:?}"));
    }
    re.push('$');
    Ok(re)
}

fn push_stars(re: &mut String, stars: &mut usize, glob: &str) -> Result<(), String> {
    match std::mem::take(stars) {
        0 => {}
        1 => re.push_str("[^/]*"),
        2 => re.push_str(".*"),
        _ => return Err(format!("too many stars in {glob:?}")),
    }
    Ok(())
}

/// The compiled regular expression of a path glob.
pub(crate) fn compile_glob(glob: &str) -> Result<Regex, String> {
    let text = glob_to_regex(glob)?;
    Regex::new(&text).map_err(|e| format!("bad glob pattern {glob:?} (regexp {text:?}): {e}"))
}

/// The directory globs of a file glob: matched against a directory's path with a trailing
/// `/`, they tell whether the directory may hold a file the glob matches (rclone's
/// `globToDirGlobs`). A glob too hard to split gives `/**` (every directory).
pub(crate) fn dir_globs(glob: &str) -> Vec<String> {
    if too_hard(glob) {
        return vec!["/**".to_string()];
    }
    let mut glob = squash_slashes(glob);
    let mut out: Vec<String> = Vec::new();
    loop {
        let slash = glob.rfind('/');
        let stars = glob.rfind("**");
        let cut = match (slash, stars) {
            (s, Some(j)) if s.is_none_or(|i| j > i) => Some((j, "**")),
            (Some(i), _) => Some((i, "")),
            _ => None,
        };
        let Some((cut, what)) = cut else {
            if out.is_empty() {
                out.push("/**".to_string());
            }
            break;
        };
        glob.truncate(cut);
        let new_glob = format!("{glob}{what}/");
        if out.last() != Some(&new_glob) {
            out.push(new_glob);
        }
    }
    out
}

/// `{...}` holding `/` or `**`, or a `{{`/`}}` regexp: rclone does not split these.
fn too_hard(glob: &str) -> bool {
    if glob.contains("{{") || glob.contains("}}") {
        return true;
    }
    let bytes = glob.as_bytes();
    for (start, _) in glob.match_indices('{') {
        let rest = &bytes[start + 1..];
        if let Some(end) = rest.iter().position(|&b| b == b'{' || b == b'}')
            && rest[end] == b'}'
        {
            let inner = &glob[start + 1..start + 1 + end];
            if inner.contains('/') || inner.contains("**") {
                return true;
            }
        }
    }
    false
}

fn squash_slashes(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    for c in glob.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn translations_are_rclones() {
        for (glob, regex) in [
            ("*.csv", r"(^|/)[^/]*\.csv$"),
            ("/*.csv", r"^[^/]*\.csv$"),
            ("a/b?.txt", r"(^|/)a/b[^/]\.txt$"),
            ("**/x", r"(^|/).*/x$"),
            ("/dir/**", r"^dir/.*$"),
            ("*.{png,jpg}", r"(^|/)[^/]*\.(png|jpg)$"),
            ("[a-c]x", r"(^|/)[a-c]x$"),
            ("*.\\?", r"(^|/)[^/]*\.\?$"),
            ("a+b(c)|^$", r"(^|/)a\+b\(c\)\|\^\$$"),
            ("*.{{jpe?g}}", r"(^|/)[^/]*\.(jpe?g)$"),
            ("/{{.*\\.a{2}}}", r"^(.*\.a{2})$"),
        ] {
            assert_eq!(glob_to_regex(glob).unwrap(), regex, "{glob}");
        }
        for bad in ["a]", "[a", "{a", "a}", "{a{b}}", "***", "{{x"] {
            assert!(glob_to_regex(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            glob_to_regex("/x/{a").unwrap_err(),
            r#"mismatched '{' and '}' in glob "/x/{a""#
        );
        assert!(compile_glob("{{(}}").is_err());
    }

    #[test]
    fn directory_globs_are_rclones() {
        assert_eq!(dir_globs("*.csv"), ["/**"]);
        assert_eq!(dir_globs("/a/b/*.csv"), ["/a/b/", "/a/", "/"]);
        assert_eq!(dir_globs("a/*.csv"), ["a/"]);
        assert_eq!(dir_globs("a//b/c"), ["a/b/", "a/"]);
        assert_eq!(dir_globs("a/**/c"), ["a/**/", "a/"]);
        assert_eq!(dir_globs("x/**"), ["x/**/", "x/"]);
        assert_eq!(dir_globs("{a/b,c}/*"), ["/**"]);
        assert_eq!(dir_globs("{a,b}/*"), ["{a,b}/"]);
        assert_eq!(dir_globs("{{a/b}}"), ["/**"]);
    }

    fn matches(glob: &str, path: &str) -> bool {
        compile_glob(glob).unwrap().is_match(path)
    }

    proptest! {
        #[test]
        fn a_name_pattern_matches_at_any_depth(
            dirs in proptest::collection::vec("[a-z ]{1,5}", 0..5),
            name in "[a-z .]{1,6}",
        ) {
            let mut path = dirs.join("/");
            if !path.is_empty() { path.push('/'); }
            path.push_str(&name);
            prop_assert!(matches("*", &path));
            prop_assert!(matches(&name, &path));
            prop_assert_eq!(matches("/*", &path), dirs.is_empty());
            prop_assert!(matches("/**", &path));
            prop_assert_eq!(matches("**/*", &path), !dirs.is_empty());
            prop_assert_eq!(matches("/?*/**", &path), !dirs.is_empty());
            if let Some(first) = dirs.first() {
                let anchored = format!("/{first}/**");
                prop_assert!(matches(&anchored, &path));
                let below = format!("{}/*", dirs[dirs.len() - 1]);
                prop_assert!(matches(&below, &path));
            }
        }

        #[test]
        fn star_and_question_mark_stay_in_one_component(a in "[a-z]{1,4}", b in "[a-z]{1,4}") {
            let path = format!("{a}/{b}");
            let one_star = format!("/{a}*");
            let two_stars = format!("/{a}**");
            let question = format!("/{a}?{b}");
            let braces = format!("/{{{a},zzzzz}}/{b}");
            prop_assert!(!matches(&one_star, &path));
            prop_assert!(matches(&two_stars, &path));
            prop_assert!(!matches(&question, &path));
            prop_assert!(matches(&braces, &path));
        }
    }
}
