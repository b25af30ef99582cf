//! `ikkatsu version`, `completions` and `man`, and the "Examples:" of every command's
//! `--help`: all from the one clap definition, none needing a config or a repository.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// The commands `ikkatsu --help` lists.
const COMMANDS: &[&str] = &[
    "run",
    "executions",
    "status",
    "restart",
    "stop",
    "abandon",
    "recover",
    "validate",
    "migrate",
    "overwrite",
    "version",
    "completions",
    "man",
];

/// `ikkatsu ARGS` in an empty folder whose `ikkatsu-config.yaml` is broken: these commands
/// must not read it.
fn ikkatsu(args: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ikkatsu-config.yaml"),
        "storages: [broken\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env_remove("IKKATSU_REPOSITORY")
        .env_remove("IKKATSU_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, dir)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_names_the_commit_and_the_compiled_in_backends() {
    let (out, dir) = ikkatsu(&["version", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["name"], "ikkatsu");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let commit = json["commit"].as_str().unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    if head.status.success() {
        assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim());
    }
    let names = |key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    // This test runs with --all-features: every backend is in.
    for feature in [
        "parquet", "postgres", "mysql", "redis", "ftp", "sftp", "s3", "webdav", "gcs", "azblob",
    ] {
        assert!(names("features").contains(&feature.to_string()), "{json}");
    }
    for scheme in [
        "file",
        "memory",
        "ftps",
        "sftp",
        "s3",
        "webdav+https",
        "gcs",
        "azblob",
    ] {
        assert!(names("storage").contains(&scheme.to_string()), "{json}");
    }
    assert_eq!(names("repositories"), ["sqlite", "postgres", "mysql"]);
    assert!(names("status_stores").contains(&"redis+cluster".to_string()));
    assert!(
        !dir.path().join("ikkatsu.db").exists(),
        "version creates nothing"
    );

    let (out, _dir) = ikkatsu(&["version"]);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "ikkatsu {} (commit {commit})\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("storage: file, memory, ftp, ftps"), "{text}");
    let (out, _dir) = ikkatsu(&["--version"]);
    assert_eq!(
        stdout(&out),
        format!("ikkatsu {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "_ikkatsu()"),
        ("zsh", "#compdef ikkatsu"),
        ("fish", "complete -c ikkatsu"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[ikkatsu]"),
    ] {
        let (out, _dir) = ikkatsu(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: no `{command}`");
        }
    }
    let (out, _dir) = ikkatsu(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The bash script loads in bash and completes the commands.
#[test]
fn bash_completion_completes_commands() {
    let (out, dir) = ikkatsu(&["completions", "bash"]);
    let script = dir.path().join("ikkatsu.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(ikkatsu ex); COMP_CWORD=1; COMP_LINE='ikkatsu ex'; \
         COMP_POINT=10; _ikkatsu ikkatsu ex ikkatsu; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert_eq!(
        stdout(&out).trim(),
        "executions",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_pages_for_the_command_and_each_subcommand() {
    let (out, dir) = ikkatsu(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = stdout(&out);
    assert!(page.contains(".TH ikkatsu 1"), "{page}");
    let pages = dir.path().join("man1");
    let (out, _) = ikkatsu(&["man", "--out-dir", pages.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pages.join("ikkatsu.1").exists());
    for command in COMMANDS {
        let page = std::fs::read_to_string(pages.join(format!("ikkatsu-{command}.1")))
            .unwrap_or_else(|err| panic!("ikkatsu-{command}.1: {err}"));
        assert!(page.contains(&format!(".TH ikkatsu-{command} 1")), "{page}");
        assert!(
            page.contains("Examples:"),
            "ikkatsu-{command}.1 has no examples"
        );
    }
    let run = std::fs::read_to_string(pages.join("ikkatsu-run.1")).unwrap();
    assert!(run.contains("\\-\\-param"), "{run}");
    // `man` renders the pages when it is installed.
    if let Ok(rendered) = Command::new("man")
        .arg("-l")
        .arg(pages.join("ikkatsu-run.1"))
        .env("MANPAGER", "cat")
        .output()
        && rendered.status.success()
    {
        assert!(stdout(&rendered).contains("ikkatsu run"));
    }
}

#[test]
fn every_command_help_has_examples() {
    for command in COMMANDS {
        let (out, _dir) = ikkatsu(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{command}");
        let help = stdout(&out);
        let examples = help
            .split_once("Examples:\n")
            .unwrap_or_else(|| panic!("`ikkatsu {command} --help` has no Examples:\n{help}"))
            .1;
        assert!(
            examples
                .lines()
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with("ikkatsu "),
            "{command}: {examples}"
        );
    }
}
