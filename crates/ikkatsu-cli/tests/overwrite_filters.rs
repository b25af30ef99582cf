//! `ikkatsu overwrite`'s rclone-style file filters end to end: the flags, the `overwrite`
//! step's properties of the same names, and the errors of bad rules (file and line, exit 2).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// Appends a line: a processed file ends with it.
const APPEND: &str = "cat {in} > {out} && echo processed >> {out}";

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", dir.join("ikkatsu.db").display()),
        )
        .env_remove("IKKATSU_STATUS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("panicked"), "{all}");
    out
}

/// (path, size, age in days).
const TREE: &[(&str, usize, u64)] = &[
    ("top.csv", 10, 0),
    ("big.csv", 5000, 0),
    ("a/nested.csv", 20, 0),
    ("a/old/stale.csv", 30, 0),
    ("a/b/deep.csv", 40, 30),
    ("a/notes.txt", 50, 0),
    ("c d/space.csv", 60, 0),
];

fn make_tree(root: &Path) {
    let now = SystemTime::now();
    for (path, size, days) in TREE {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, vec![b'x'; *size]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&full)
            .unwrap()
            .set_modified(now - Duration::from_secs(days * 86_400 + 60))
            .unwrap();
    }
}

/// The files the run processed, sorted.
fn processed(root: &Path) -> Vec<String> {
    let mut done: Vec<String> = TREE
        .iter()
        .filter(|(path, _, _)| {
            std::fs::read_to_string(root.join(path))
                .unwrap()
                .ends_with("processed\n")
        })
        .map(|(path, _, _)| path.to_string())
        .collect();
    done.sort();
    done
}

#[test]
fn filter_flags_choose_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    make_tree(&root);
    std::fs::write(
        dir.path().join("rules.txt"),
        "# CSV files outside old directories\n- old/\n\n; small ones only below\n+ *.csv\n- *\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--filter-from",
            "rules.txt",
            "--max-size",
            "1k",
            "--max-age",
            "1w",
            "--exec",
            APPEND,
            "--shell",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        processed(&root),
        ["a/nested.csv", "c d/space.csv", "top.csv"]
    );
}

/// `--filter` values start with `-` or `+`; excludes are tried before filter rules,
/// whatever the order of the flags.
#[test]
fn filter_rules_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    make_tree(&root);
    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--filter",
            "- /a/old/",
            "--filter",
            "+ *.csv",
            "--filter",
            "- *",
            "--exclude",
            "/big.csv",
            "--exec",
            APPEND,
            "--shell",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        processed(&root),
        ["a/b/deep.csv", "a/nested.csv", "c d/space.csv", "top.csv"]
    );
}

#[test]
fn step_properties_and_files_from() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    make_tree(&root);
    std::fs::write(
        dir.path().join("list.txt"),
        "# wanted\na/b/deep.csv\n\n/top.csv\nmissing.csv\n",
    )
    .unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "id: filters\nsteps:\n  - name: o\n    tasklet:\n      type: overwrite\n      properties:\n        source: {}\n        files-from: [list.txt]\n        exec: \"{APPEND}\"\n        shell: true\n",
            root.display()
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["run", job.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(processed(&root), ["a/b/deep.csv", "top.csv"]);

    let root = dir.path().join("data2");
    make_tree(&root);
    let job = dir.path().join("job2.yaml");
    std::fs::write(
        &job,
        format!(
            "id: filters2\nsteps:\n  - name: o\n    tasklet:\n      type: overwrite\n      properties:\n        source: {}\n        include: [\"/a/*.csv\"]\n        filter: [\"+ /c d/**\"]\n        min-size: 20B\n        max-age: 1d\n        exec: \"{APPEND}\"\n        shell: true\n",
            root.display()
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["run", job.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `/a/*.csv` keeps a/nested.csv (20 bytes: the minimum is included), the filter rule
    // comes after it and before the exclusion the include implies; top.csv is too small
    // and matched by no rule, a/b/deep.csv is below `/a/` (and older than a day).
    assert_eq!(processed(&root), ["a/nested.csv", "c d/space.csv"]);
}

#[test]
fn bad_rules_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    make_tree(&root);
    std::fs::write(
        dir.path().join("rules.txt"),
        "# rules\n+ *.csv\n*.txt\n- *\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--filter-from",
            "rules.txt",
            "--exec",
            APPEND,
            "--shell",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("filter-from rules.txt:3: malformed rule \"*.txt\""),
        "{stderr}"
    );
    assert!(processed(&root).is_empty());

    std::fs::write(dir.path().join("bad-glob.txt"), "ok.csv\n\n{a,b\n").unwrap();
    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--exclude-from",
            "bad-glob.txt",
            "--exec",
            APPEND,
            "--shell",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exclude-from bad-glob.txt:3: mismatched '{' and '}'"),
        "{stderr}"
    );

    let out = run(
        dir.path(),
        &[
            "overwrite",
            "data",
            "--filter-from",
            "no-such-rules.txt",
            "--exec",
            APPEND,
            "--shell",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("filter-from no-such-rules.txt: cannot read the file"),
        "{stderr}"
    );

    for args in [
        ["--include", "a{b"],
        ["--min-size", "5x"],
        ["--max-age", "yesterday"],
    ] {
        let mut all = vec!["overwrite", "data"];
        all.extend(args);
        all.extend(["--exec", APPEND, "--shell"]);
        let out = run(dir.path(), &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(args[1]), "{args:?}: {stderr}");
    }
    assert!(processed(&root).is_empty());
}
