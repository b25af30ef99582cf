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
        "**/*.txt",
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
        .env_remove("IKKATSU_STATUS")
        .env_remove("RUST_LOG")
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
             properties:\n        source: {}\n        include: [\"**/*.txt\"]\n        \
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
        .env_remove("IKKATSU_STATUS")
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
