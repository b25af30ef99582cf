//! The walk's filters against rclone's: one tree (nested directories, hidden names, names
//! with spaces, sizes from bytes to megabytes, modification times from an hour to a year
//! old), and for each case the same flags given to `rclone lsf -R --files-only` and to
//! [`WalkOptions`]; the two sorted file lists must be equal. rclone is installed by
//! `scripts/test-servers start`; without it the test fails.
//!
//! rclone hides nothing, a walk leaves hidden names out unless `include_hidden`: cases
//! without `--hidden` (an ikkatsu-only flag, not passed to rclone) compare with rclone's
//! list less its hidden names; cases with it compare with rclone's whole list.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use chrono::Local;
use futures::TryStreamExt;
use ikkatsu_storage::{ByteSize, FileAge, Storage, WalkOptions};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// (path, size in bytes, age in seconds).
const TREE: &[(&str, usize, u64)] = &[
    ("a.csv", 10, HOUR),
    ("b.txt", 2000, 3 * DAY),
    ("CAPS.CSV", 5, 10 * DAY),
    ("name with space.csv", 100, 40 * DAY),
    (".hidden.csv", 7, HOUR),
    (".git/config", 30, 400 * DAY),
    (".cache/tmp.csv", 1024, 3 * DAY),
    ("data/x.csv", 5000, 10 * DAY),
    ("data/y.json", 1023, 40 * DAY),
    ("data/.env", 12, 3 * DAY),
    ("data/2024/jan.csv", 150_000, 400 * DAY),
    ("data/2024/feb.csv", 1_572_864, 40 * DAY),
    ("data/2024/notes.txt", 0, HOUR),
    ("data/old/archive.csv", 3 * 1024 * 1024, 400 * DAY),
    ("data/old/keep.txt", 100, 10 * DAY),
    ("logs/app.log", 2048, HOUR),
    ("logs/app.log.1", 4096, 3 * DAY),
    ("logs/sub dir/trace.log", 50, 10 * DAY),
    ("docs/readme.md", 300, 40 * DAY),
    ("docs/a/deep/er/file.csv", 60, 3 * DAY),
    ("x/a/y.csv", 70, 10 * DAY),
    ("a/y.csv", 80, HOUR),
    ("a/b", 1, HOUR),
    ("dir.with.dot/f.txt", 90, 3 * DAY),
    ("old/old.txt", 101, 400 * DAY),
];

fn build_tree(root: &Path) {
    let now = SystemTime::now();
    for (path, size, age) in TREE {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(&full, vec![b'x'; *size]).expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(&full)
            .expect("open");
        file.set_modified(now - Duration::from_secs(*age))
            .expect("set mtime");
    }
}

/// The rule and list files the cases name by `{key}`.
fn write_files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let files = [
        (
            "rules",
            "# keep CSV files outside old directories\n\n- old/\n; a comment\n  + *.csv  \n- *\n",
        ),
        (
            "rules2",
            "- /data/2024/*.csv\n+ /data/**\n!\n+ *.txt\n- **\n",
        ),
        ("includes", "# two patterns\n*.md\n/logs/**\n"),
        ("excludes", "*.csv\n\n;x\nlogs/\n"),
        (
            "list",
            "# wanted\na.csv\n/data/x.csv\ndata/2024/notes.txt\n  docs/readme.md  \nmissing.txt\n.hidden.csv\n",
        ),
    ];
    files
        .into_iter()
        .map(|(key, text)| {
            let path = dir.join(key);
            std::fs::write(&path, text).expect("write rule file");
            (key, path)
        })
        .collect()
}

fn cases(now_days_ago: impl Fn(u64) -> String) -> Vec<Vec<String>> {
    let date_20 = now_days_ago(20);
    let datetime_7 = format!("{} 12:00:00", now_days_ago(7));
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--include", "*.csv"],
        vec!["--include", "/*.csv"],
        vec!["--include", "data/*.csv"],
        vec!["--include", "**/*.csv"],
        vec!["--include", "/data/**"],
        vec!["--include", "a/*.csv"],
        vec!["--include", "/docs/a/deep/**"],
        vec!["--include", "*.{csv,txt}"],
        vec!["--include", "{a,x}/*.csv"],
        vec!["--include", "[a-c]*"],
        vec!["--include", "?.csv"],
        vec!["--include", "name with space.csv"],
        vec!["--include", "*.CSV"],
        vec!["--include", "*.{{cs[v]}}"],
        vec!["--include", "*.log*"],
        vec!["--include", "*.md", "--include", "/a/*"],
        vec!["--exclude", "*.csv"],
        vec!["--exclude", "old/"],
        vec!["--exclude", "/data/2024/**"],
        vec!["--exclude", "dir.with.dot/**", "--exclude", "*.log"],
        vec!["--exclude", "a/"],
        vec!["--include", "*.csv", "--exclude", "data/**"],
        vec!["--exclude", "*.txt", "--include", "data/**"],
        vec![
            "--filter", "- old/", "--filter", "+ *.csv", "--filter", "- *",
        ],
        vec!["--filter", "+ /docs/**", "--filter", "- **"],
        vec![
            "--filter", "- *.log", "--filter", "!", "--filter", "- *.csv",
        ],
        vec!["--filter", "+ a/", "--filter", "- *"],
        vec!["--filter-from", "{rules}"],
        vec!["--filter-from", "{rules2}"],
        vec!["--include-from", "{includes}"],
        vec!["--exclude-from", "{excludes}"],
        vec!["--filter-from", "{rules}", "--include", "*.md"],
        vec!["--exclude-from", "{excludes}", "--filter", "+ *.csv"],
        vec!["--files-from", "{list}"],
        vec!["--min-size", "1k"],
        vec!["--max-size", "100B"],
        vec!["--min-size", "100", "--max-size", "1.5M"],
        vec![
            "--min-size",
            "1Ki",
            "--max-size",
            "3M",
            "--include",
            "*.csv",
        ],
        vec!["--max-age", "2d"],
        vec!["--min-age", "5d"],
        vec!["--min-age", "1d", "--max-age", "30d"],
        vec!["--max-age", "1w", "--exclude", "logs/"],
        vec!["--max-age", date_20.as_str()],
        vec!["--min-age", datetime_7.as_str()],
        vec!["--max-depth", "2"],
        vec!["--max-depth", "1", "--include", "*.csv"],
        vec!["--hidden"],
        vec!["--hidden", "--include", ".*"],
        vec!["--hidden", "--exclude", ".*/"],
        vec!["--hidden", "--files-from", "{list}"],
        vec!["--hidden", "--include", "*.csv", "--max-age", "2d"],
    ];
    cases
        .into_iter()
        .map(|case| case.into_iter().map(str::to_string).collect())
        .collect()
}

/// The walk options of the same flags, and whether hidden names are walked.
fn walk_options(args: &[String]) -> WalkOptions {
    let mut options = WalkOptions::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--hidden" {
            options.include_hidden = true;
            continue;
        }
        let value = it.next().expect("a value").clone();
        match flag.as_str() {
            "--include" => options.include.push(value),
            "--exclude" => options.exclude.push(value),
            "--filter" => options.filter.push(value),
            "--include-from" => options.include_from.push(value.into()),
            "--exclude-from" => options.exclude_from.push(value.into()),
            "--filter-from" => options.filter_from.push(value.into()),
            "--files-from" => options.files_from.push(value.into()),
            "--min-size" => options.min_size = Some(value.parse::<ByteSize>().unwrap().bytes()),
            "--max-size" => options.max_size = Some(value.parse::<ByteSize>().unwrap().bytes()),
            "--min-age" => options.min_age = Some(value.parse::<FileAge>().unwrap()),
            "--max-age" => options.max_age = Some(value.parse::<FileAge>().unwrap()),
            "--max-depth" => options.max_depth = Some(value.parse().unwrap()),
            other => panic!("unknown flag {other}"),
        }
    }
    options
}

fn rclone_list(root: &Path, args: &[String]) -> Vec<String> {
    let mut command = Command::new("rclone");
    command
        .args(["lsf", "-R", "--files-only", "--config", "/dev/null"])
        .args(args.iter().filter(|a| *a != "--hidden"))
        .arg(root);
    let output = command.output().unwrap_or_else(|e| {
        panic!("rclone cannot be run ({e}): install it with `scripts/test-servers start`")
    });
    assert!(
        output.status.success(),
        "rclone {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hidden = args.iter().any(|a| a == "--hidden");
    let mut files: Vec<String> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .filter(|path| hidden || !path.split('/').any(|name| name.starts_with('.')))
        .map(str::to_string)
        .collect();
    files.sort();
    files
}

async fn walk_list(storage: &Storage, options: WalkOptions) -> Vec<String> {
    let mut files: Vec<String> = storage
        .walk(options)
        .expect("walk")
        .map_ok(|info| info.path)
        .try_collect()
        .await
        .expect("walk succeeds");
    files.sort();
    files
}

fn uses_metadata(args: &[String]) -> bool {
    args.iter()
        .any(|a| a.ends_with("-size") || a.ends_with("-age"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_filters_list_what_rclone_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("tree");
    build_tree(&root);
    let files = write_files(dir.path());
    let local = Storage::open(&root.display().to_string()).expect("open");
    // The same tree in memory: the walk of listing backends (object stores, FTP, SFTP,
    // WebDAV) applies the same filter to a flat listing. Memory keeps no times of its own,
    // so only cases on paths are compared there.
    let memory = Storage::open("memory:").expect("memory");
    for (path, size, _) in TREE {
        memory
            .write(path, vec![b'x'; *size])
            .await
            .expect("memory write");
    }
    let days_ago = |days: u64| {
        (Local::now() - chrono::Duration::days(days as i64))
            .format("%Y-%m-%d")
            .to_string()
    };
    let cases = cases(days_ago);
    assert_eq!(
        cases.len(),
        52,
        "docs/overwrite.md names the number of cases"
    );
    let mut distinct = std::collections::HashSet::new();
    for case in cases {
        let args: Vec<String> = case
            .iter()
            .map(|arg| {
                files.iter().fold(arg.clone(), |arg, (key, path)| {
                    arg.replace(&format!("{{{key}}}"), &path.display().to_string())
                })
            })
            .collect();
        let expected = rclone_list(&root, &args);
        let options = walk_options(&args);
        assert_eq!(
            walk_list(&local, options.clone()).await,
            expected,
            "local walk with {case:?}"
        );
        if !uses_metadata(&args) {
            assert_eq!(
                walk_list(&memory, options).await,
                expected,
                "memory walk with {case:?}"
            );
        }
        distinct.insert(expected);
    }
    assert!(
        distinct.len() >= 30,
        "the cases keep at least 30 different file lists, not {}",
        distinct.len()
    );
}
