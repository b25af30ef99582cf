//! `ikkatsu overwrite` on a tree with symbolic links (docs/adr/0012-symbolic-links.md): a
//! warning per link, the summary counts them, links stay links and nothing outside the
//! source root changes, with and without `--follow-symlinks`.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

const APPEND: &str = "cat {in} > {out} && echo processed >> {out}";

fn run(dir: &Path, extra: &[&str]) -> (Output, String, String) {
    let mut args = vec![
        "overwrite",
        "data",
        "--include",
        "*.txt",
        "--exec",
        APPEND,
        "--shell",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(BIN)
        .args(&args)
        .current_dir(dir)
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", dir.join("ikkatsu.db").display()),
        )
        .env_remove("IKKATSU_STATUS_STORE")
        .env_remove("RUST_LOG")
        // Log fields as plain `name=value`.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out, stdout, stderr)
}

fn tree(base: &Path) {
    let data = base.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/o.txt"), "outside\n").unwrap();
    std::fs::write(data.join("real.txt"), "real\n").unwrap();
    std::fs::write(data.join("sub/plain.txt"), "plain\n").unwrap();
    symlink("real.txt", data.join("link-in.txt")).unwrap();
    symlink("../outside/o.txt", data.join("link-out.txt")).unwrap();
    symlink(base.join("outside"), data.join("dir-out")).unwrap();
}

fn assert_untouched_links(base: &Path) {
    for link in ["link-in.txt", "link-out.txt", "dir-out"] {
        let meta = std::fs::symlink_metadata(base.join("data").join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} is still a link");
    }
    assert_eq!(
        std::fs::read_to_string(base.join("outside/o.txt")).unwrap(),
        "outside\n"
    );
    assert_eq!(std::fs::read_dir(base.join("outside")).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_to_string(base.join("data/real.txt")).unwrap(),
        "real\nprocessed\n"
    );
}

#[test]
fn links_are_skipped_with_a_warning_each_without_follow_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (out, stdout, stderr) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("2 files match, 2 need processing, 3 symbolic links skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("finished: 2 done, 0 skipped"), "{stdout}");
    for link in ["link-in.txt", "link-out.txt", "dir-out"] {
        let warned = stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("symbolic link skipped"))
            .filter(|l| l.contains(link))
            .count();
        assert_eq!(warned, 1, "one warning for {link}: {stderr}");
    }
    assert!(stderr.contains("--follow-symlinks"), "{stderr}");
    assert_untouched_links(dir.path());
}

#[test]
fn followed_links_are_read_but_not_written_in_place_with_a_warning_each() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (out, stdout, stderr) = run(dir.path(), &["--follow-symlinks"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("5 files match, 5 need processing (backlog"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "finished: 2 done, 0 skipped, 0 conflicts, 0 failed, 3 not overwritten through \
             symbolic links of 5"
        ),
        "{stdout}"
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("reached through a symbolic link"))
        .collect();
    assert_eq!(warnings.len(), 3, "{stderr}");
    for path in ["link-in.txt", "link-out.txt", "dir-out/o.txt"] {
        assert!(
            warnings.iter().any(|l| l.contains(&format!("`{path}`"))),
            "a warning for {path}: {stderr}"
        );
    }
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("`link-in.txt`") && l.contains("inside the source")),
        "{stderr}"
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("`link-out.txt`") && l.contains("outside the source")),
        "{stderr}"
    );
    assert_untouched_links(dir.path());

    // A second run writes nothing.
    let (out, stdout, _) = run(dir.path(), &["--follow-symlinks"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("finished: 0 done"), "{stdout}");
    assert_untouched_links(dir.path());
}

#[test]
fn json_summary_and_job_step_count_the_links() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (out, stdout, stderr) = run(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["scan"]["links_skipped"], 3);
    assert_eq!(json["process"]["progress"]["done"], 2);
    assert_untouched_links(dir.path());

    // The same tree, links followed, as a step of a job: the files reached through links
    // are counted as filtered.
    let job_dir = tempfile::tempdir().unwrap();
    tree(job_dir.path());
    let job = job_dir.path().join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "id: links\nsteps:\n  - name: append\n    tasklet:\n      type: overwrite\n      \
             properties:\n        source: {}\n        include: [\"*.txt\"]\n        \
             follow-symlinks: true\n        exec: \"{APPEND}\"\n        shell: true\n",
            job_dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", job.to_str().unwrap(), "--json"])
        .current_dir(job_dir.path())
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", job_dir.path().join("ikkatsu.db").display()),
        )
        .env_remove("IKKATSU_STATUS_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let step = &json["steps"][0];
    assert_eq!(step["read_count"], 5, "{step}");
    assert_eq!(step["write_count"], 2, "{step}");
    assert_eq!(step["filter_count"], 3, "{step}");
    assert_untouched_links(job_dir.path());
}

/// The files a run reports as `reached through a symbolic link` (a WARN line each).
fn links_reported(stderr: &str) -> Vec<String> {
    let paths = |marker: &str, level: &str| -> Vec<String> {
        let mut paths: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains(level) && l.contains(marker))
            .map(|l| {
                [
                    "real.txt",
                    "sub/plain.txt",
                    "link-in.txt",
                    "link-out.txt",
                    "dir-out/o.txt",
                ]
                .into_iter()
                .find(|p| {
                    l.split_whitespace()
                        .any(|field| field == format!("path={p}"))
                })
                .unwrap_or_else(|| panic!("no known path in {l}"))
                .to_string()
            })
            .collect();
        paths.sort();
        paths
    };
    paths("reached through a symbolic link", "WARN")
}

/// The lines of `stdout`, sorted (the walk's order is not the tree's).
fn sorted_lines(stdout: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    lines
}

#[test]
fn a_dry_run_reports_the_files_a_real_run_would_not_write_through_links() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (out, stdout, stderr) = run(dir.path(), &["--follow-symlinks", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "dry run: 2 of 5 matching files would be processed, 3 not overwritten through \
             symbolic links; nothing was written"
        ),
        "{stderr}"
    );
    assert_eq!(
        sorted_lines(&stdout),
        ["real.txt", "sub/plain.txt"],
        "{stdout}"
    );
    let links = links_reported(&stderr);
    assert_eq!(
        links,
        ["dir-out/o.txt", "link-in.txt", "link-out.txt"],
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/real.txt")).unwrap(),
        "real\n"
    );

    let (out, stdout, stderr) = run(dir.path(), &["--follow-symlinks", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["dry_run"], true, "{json}");
    let mut would: Vec<&str> = json["would_process"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    would.sort();
    assert_eq!(would, ["real.txt", "sub/plain.txt"], "{json}");
    assert_eq!(
        (
            &json["count"],
            &json["matched"],
            &json["symlinks"],
            &json["failed"]
        ),
        (&2.into(), &5.into(), &3.into(), &0.into()),
        "{json}"
    );
    assert_eq!(links_reported(&stderr).len(), 3, "{stderr}");

    // The real run does what the dry run said.
    let (out, stdout, stderr) = run(dir.path(), &["--follow-symlinks", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["dry_run"], false, "{json}");
    let real = &json["process"]["progress"];
    assert_eq!(real["done"], 2, "{json}");
    assert_eq!(real["symlinks"], 3, "{json}");
    assert_eq!(links_reported(&stderr), links, "{stderr}");
    assert_untouched_links(dir.path());
}

#[test]
fn a_dry_run_with_a_target_reports_links_in_the_target() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(dir.path().join("elsewhere.txt"), "elsewhere\n").unwrap();
    symlink(dir.path().join("elsewhere.txt"), out_dir.join("real.txt")).unwrap();
    let target = out_dir.display().to_string();
    let (out, stdout, stderr) = run(dir.path(), &["--target", &target, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "dry run: 1 of 2 matching files would be processed, 1 not overwritten through \
             symbolic links; nothing was written"
        ),
        "{stderr}"
    );
    assert_eq!(stdout, "sub/plain.txt\n");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("in the target is reached through"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(warned[0].contains("`real.txt`"), "{stderr}");

    let (out, stdout, stderr) = run(dir.path(), &["--target", &target]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("finished: 1 done, 0 skipped, 0 conflicts, 0 failed, 1 not overwritten"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("elsewhere.txt")).unwrap(),
        "elsewhere\n"
    );
}
