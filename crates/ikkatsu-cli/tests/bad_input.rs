//! A table of bad inputs given to the `ikkatsu` binary, each a real process: the exit code
//! (docs/cli.md), a message that names the file, key, line or URL at fault (with secrets
//! masked), and never a panic. Servers that are gone or refuse are runtime failures (1),
//! not empty results.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

struct Case {
    /// What it is, for the failure message.
    name: &'static str,
    /// Files written into the working directory first (`name`, contents).
    files: &'static [(&'static str, &'static str)],
    /// The arguments (`{dir}` is the working directory).
    args: &'static [&'static str],
    /// The exit code.
    code: i32,
    /// Text the message on standard error must hold (what is at fault).
    names: &'static [&'static str],
    /// Text that must not appear anywhere in the output (secrets).
    hidden: &'static [&'static str],
}

const GOOD_CSV: (&str, &str) = ("in.csv", "id,name\n1,a\n");

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "malformed YAML",
            files: &[("job.yaml", "id: [unclosed\n")],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml"],
            hidden: &[],
        },
        Case {
            name: "empty job file",
            files: &[("job.yaml", "")],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml"],
            hidden: &[],
        },
        Case {
            name: "unknown top-level key",
            files: &[("job.yaml", "id: x\nsteeps: []\n")],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml", "steeps"],
            hidden: &[],
        },
        Case {
            name: "job without id",
            files: &[(
                "job.yaml",
                "steps:\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml", "id"],
            hidden: &[],
        },
        Case {
            name: "unknown step key",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    taskle: { type: log }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml", "taskle"],
            hidden: &[],
        },
        Case {
            name: "unknown reader type",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    chunk:\n      reader: { type: nosuch }\n      writer: { type: log }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml", "nosuch"],
            hidden: &[],
        },
        Case {
            name: "chunk size not a number",
            files: &[
                (
                    "job.yaml",
                    "id: x\nsteps:\n  - name: a\n    chunk:\n      reader: { type: csv, properties: { path: in.csv } }\n      writer: { type: csv, properties: { path: out.csv } }\n      chunk-size: many\n",
                ),
                GOOD_CSV,
            ],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml", "chunk-size", "many"],
            hidden: &[],
        },
        Case {
            name: "unknown reader property",
            files: &[
                (
                    "job.yaml",
                    "id: x\nsteps:\n  - name: a\n    chunk:\n      reader: { type: csv, properties: { path: in.csv, delimeter: ';' } }\n      writer: { type: csv, properties: { path: out.csv } }\n",
                ),
                GOOD_CSV,
            ],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["delimeter"],
            hidden: &[],
        },
        Case {
            name: "duplicate step names",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml", "`a`"],
            hidden: &[],
        },
        Case {
            name: "transition to an unknown step",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n    transitions:\n      - { on: '*', to: nowhere }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["nowhere"],
            hidden: &[],
        },
        Case {
            name: "duration without a unit",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: shell, properties: { command: 'true', timeout: 500 } }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["job.yaml:4", "`timeout`", "`500`", "500ms"],
            hidden: &[],
        },
        Case {
            name: "missing job parameter",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: '${params.who}' } }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["who"],
            hidden: &[],
        },
        Case {
            name: "missing environment variable",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: '${IKKATSU_BAD_INPUT_UNSET}' } }\n",
            )],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["IKKATSU_BAD_INPUT_UNSET"],
            hidden: &[],
        },
        Case {
            name: "missing job file",
            files: &[],
            args: &["run", "missing.yaml"],
            code: 2,
            names: &["missing.yaml"],
            hidden: &[],
        },
        Case {
            name: "a directory as the job file",
            files: &[("adir/x", "")],
            args: &["run", "adir"],
            code: 2,
            names: &["adir"],
            hidden: &[],
        },
        Case {
            name: "parameter without =",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n",
            )],
            args: &["run", "job.yaml", "-p", "noequals"],
            code: 2,
            names: &["noequals"],
            hidden: &[],
        },
        Case {
            name: "parameter of an unknown type",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n",
            )],
            args: &["run", "job.yaml", "-p", "n=1,java.lang.Object"],
            code: 2,
            names: &["java.lang.Object"],
            hidden: &[],
        },
        Case {
            name: "parameter not of its type",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n",
            )],
            args: &["run", "job.yaml", "-p", "n=five,java.lang.Long"],
            code: 2,
            names: &["five", "integer"],
            hidden: &[],
        },
        Case {
            name: "missing input file",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    chunk:\n      reader: { type: csv, properties: { path: nosuch.csv } }\n      writer: { type: csv, properties: { path: out.csv } }\n",
            )],
            args: &["run", "job.yaml"],
            code: 1,
            names: &["nosuch.csv"],
            hidden: &[],
        },
        Case {
            name: "CSV row with too many fields",
            files: &[
                (
                    "job.yaml",
                    "id: x\nsteps:\n  - name: a\n    chunk:\n      reader: { type: csv, properties: { path: in.csv } }\n      writer: { type: csv, properties: { path: out.csv } }\n",
                ),
                ("in.csv", "id,name\n1,a\n2,b,extra\n"),
            ],
            args: &["run", "job.yaml"],
            code: 1,
            names: &["in.csv:3"],
            hidden: &[],
        },
        Case {
            name: "CSV row with too many fields after two committed chunks",
            files: &[
                (
                    "job.yaml",
                    "id: x\nsteps:\n  - name: a\n    chunk:\n      chunk-size: 2\n      reader: { type: csv, properties: { path: in.csv } }\n      writer: { type: csv, properties: { path: out.csv } }\n",
                ),
                ("in.csv", "id,name\n1,a\n2,b\n3,c\n4,d\n5,e,extra\n6,f\n"),
            ],
            args: &["run", "job.yaml"],
            code: 1,
            names: &["in.csv:6"],
            hidden: &[],
        },
        Case {
            name: "CSV row with too many fields after a committed chunk, to JSON Lines",
            files: &[
                (
                    "job.yaml",
                    "id: x\nsteps:\n  - name: a\n    chunk:\n      chunk-size: 2\n      reader: { type: csv, properties: { path: in.csv } }\n      writer: { type: jsonl, properties: { path: out.jsonl } }\n",
                ),
                ("in.csv", "id,name\n1,a\n2,b\n3,c,extra\n"),
            ],
            args: &["run", "job.yaml"],
            code: 1,
            names: &["in.csv:4"],
            hidden: &[],
        },
        Case {
            name: "a character the output encoding cannot represent, mid-chunk",
            files: &[
                (
                    "job.yaml",
                    "id: x\nsteps:\n  - name: a\n    chunk:\n      chunk-size: 2\n      reader: { type: csv, properties: { path: in.csv } }\n      writer: { type: csv, properties: { path: out.csv, encoding: ISO-8859-1 } }\n",
                ),
                ("in.csv", "id,name\n1,a\n2,b\n3,c\n4,日本\n"),
            ],
            args: &["run", "job.yaml"],
            code: 1,
            names: &["out.csv", "row 4", "`name`", "日"],
            hidden: &[],
        },
        Case {
            name: "unknown encoding",
            files: &[
                (
                    "job.yaml",
                    "id: x\nsteps:\n  - name: a\n    chunk:\n      reader: { type: csv, properties: { path: in.csv, encoding: klingon } }\n      writer: { type: csv, properties: { path: out.csv } }\n",
                ),
                GOOD_CSV,
            ],
            args: &["run", "job.yaml"],
            code: 2,
            names: &["klingon"],
            hidden: &[],
        },
        Case {
            name: "bad repository scheme",
            files: &[],
            args: &["executions", "--repository", "foo://x/y"],
            code: 2,
            names: &["foo://x/y"],
            hidden: &[],
        },
        Case {
            name: "repository on a closed port",
            files: &[],
            args: &[
                "migrate",
                "--repository",
                "postgres://ikk:pg-secret-1@127.0.0.1:1/test",
            ],
            code: 1,
            names: &["127.0.0.1:1"],
            hidden: &["pg-secret-1"],
        },
        Case {
            name: "wrong MariaDB password",
            files: &[],
            args: &[
                "migrate",
                "--repository",
                "mysql://root:maria-secret-2@127.0.0.1:3306/test",
            ],
            code: 1,
            names: &["127.0.0.1:3306"],
            hidden: &["maria-secret-2"],
        },
        Case {
            name: "missing PostgreSQL database",
            files: &[],
            args: &[
                "migrate",
                "--repository",
                "postgres://postgres@127.0.0.1:5432/ikkatsu_no_such_db",
            ],
            code: 2,
            names: &["ikkatsu_no_such_db", "createdb"],
            hidden: &[],
        },
        Case {
            name: "status without a repository",
            files: &[],
            args: &["status", "999"],
            code: 2,
            names: &["ikkatsu.db", "--repository"],
            hidden: &[],
        },
        Case {
            name: "execution id not a number",
            files: &[],
            args: &["stop", "abc"],
            code: 2,
            names: &["abc"],
            hidden: &[],
        },
        Case {
            name: "unknown command",
            files: &[],
            args: &["frobnicate"],
            code: 2,
            names: &["frobnicate"],
            hidden: &[],
        },
        Case {
            name: "unknown flag",
            files: &[],
            args: &["executions", "--colour"],
            code: 2,
            names: &["--colour"],
            hidden: &[],
        },
        Case {
            name: "validate a malformed job",
            files: &[("job.yaml", "id: x\nsteps: {\n")],
            args: &["validate", "job.yaml"],
            code: 2,
            names: &["job.yaml"],
            hidden: &[],
        },
        Case {
            name: "bad log filter",
            files: &[],
            args: &["version", "--log", "a=[["],
            code: 2,
            names: &["a=[["],
            hidden: &[],
        },
        Case {
            name: "log file in a missing folder",
            files: &[(
                "job.yaml",
                "id: x\nsteps:\n  - name: a\n    tasklet: { type: log, properties: { message: hi } }\n",
            )],
            args: &[
                "run",
                "job.yaml",
                "--log-file",
                "/nonexistent/ikkatsu/x.log",
            ],
            code: 2,
            names: &["/nonexistent/ikkatsu/x.log"],
            hidden: &[],
        },
        Case {
            name: "malformed application config",
            files: &[("app.yaml", "storages: [broken\n")],
            args: &["executions", "--config", "app.yaml"],
            code: 2,
            names: &["app.yaml"],
            hidden: &[],
        },
        Case {
            name: "missing application config",
            files: &[],
            args: &["executions", "--config", "nosuch-app.yaml"],
            code: 2,
            names: &["nosuch-app.yaml"],
            hidden: &[],
        },
        Case {
            name: "unknown application config key",
            files: &[("app.yaml", "storage:\n  a: \"memory:\"\n")],
            args: &["executions", "--config", "app.yaml"],
            code: 2,
            names: &["app.yaml", "storage"],
            hidden: &[],
        },
        Case {
            name: "unknown named storage",
            files: &[("data/a.txt", "a\n")],
            args: &[
                "overwrite",
                "@nosuch",
                "--exec",
                "cat {in} > {out}",
                "--shell",
            ],
            code: 2,
            names: &["nosuch"],
            hidden: &[],
        },
        Case {
            name: "unknown storage scheme",
            files: &[],
            args: &["overwrite", "zz://host/x", "--exec", "cp {in} {out}"],
            code: 2,
            names: &["zz://"],
            hidden: &[],
        },
        Case {
            name: "overwrite without --exec",
            files: &[("data/a.txt", "a\n")],
            args: &["overwrite", "data"],
            code: 2,
            names: &["--exec"],
            hidden: &[],
        },
        Case {
            name: "overwrite timeout without a unit",
            files: &[("data/a.txt", "a\n")],
            args: &[
                "overwrite",
                "data",
                "--exec",
                "cp {in} {out}",
                "--timeout",
                "5",
            ],
            code: 2,
            names: &["5"],
            hidden: &[],
        },
        Case {
            name: "bad status store URL",
            files: &[("data/a.txt", "a\n")],
            args: &[
                "overwrite",
                "data",
                "--exec",
                "cp {in} {out}",
                "--status-store",
                "foo://x",
            ],
            code: 2,
            names: &["foo://x"],
            hidden: &[],
        },
        Case {
            name: "unreachable Redis status store",
            files: &[("data/a.txt", "a\n")],
            args: &[
                "overwrite",
                "data",
                "--exec",
                "cp {in} {out}",
                "--status-store",
                "redis://:redis-secret-3@127.0.0.1:1/0",
            ],
            code: 1,
            names: &["127.0.0.1:1"],
            hidden: &["redis-secret-3"],
        },
        Case {
            name: "malformed filter glob",
            files: &[("data/a.txt", "a\n")],
            args: &[
                "overwrite",
                "data",
                "--exec",
                "cp {in} {out}",
                "--include",
                "[[",
            ],
            code: 2,
            names: &["[["],
            hidden: &[],
        },
        Case {
            name: "missing filter file",
            files: &[("data/a.txt", "a\n")],
            args: &[
                "overwrite",
                "data",
                "--exec",
                "cp {in} {out}",
                "--filter-from",
                "nosuch-rules.txt",
            ],
            code: 2,
            names: &["nosuch-rules.txt"],
            hidden: &[],
        },
        Case {
            name: "malformed filter rule",
            files: &[("data/a.txt", "a\n"), ("rules.txt", "+ *.txt\n* *.csv\n")],
            args: &[
                "overwrite",
                "data",
                "--exec",
                "cp {in} {out}",
                "--filter-from",
                "rules.txt",
            ],
            code: 2,
            names: &["rules.txt:2"],
            hidden: &[],
        },
        Case {
            name: "missing source folder",
            files: &[],
            args: &["overwrite", "nosuch-dir", "--exec", "cp {in} {out}"],
            code: 2,
            names: &["nosuch-dir", "does not exist"],
            hidden: &[],
        },
    ]
}

/// Cases of jobs that fail mid-way, the file each writes and exactly what it holds after the
/// failed run: the chunks committed before the failure, intact.
const COMMITTED_OUTPUT: &[(&str, &str, &str)] = &[
    ("CSV row with too many fields", "out.csv", ""),
    (
        "CSV row with too many fields after two committed chunks",
        "out.csv",
        "id,name\n1,a\n2,b\n3,c\n4,d\n",
    ),
    (
        "a character the output encoding cannot represent, mid-chunk",
        "out.csv",
        "id,name\n1,a\n2,b\n",
    ),
    (
        "CSV row with too many fields after a committed chunk, to JSON Lines",
        "out.jsonl",
        "{\"id\":\"1\",\"name\":\"a\"}\n{\"id\":\"2\",\"name\":\"b\"}\n",
    ),
];

#[test]
fn bad_inputs_get_their_exit_code_and_a_message_naming_the_fault() {
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (name, _, _) in COMMITTED_OUTPUT {
        assert!(cases.iter().any(|c| c.name == *name), "no case `{name}`");
    }
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in case.files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let out = Command::new(BIN)
            .args(case.args)
            .current_dir(dir.path())
            .env("IKKATSU_REPOSITORY", "sqlite://ikkatsu.db")
            .env("IKKATSU_LOG", "warn")
            .env_remove("IKKATSU_CONFIG")
            .env_remove("IKKATSU_STATUS_STORE")
            .env_remove("IKKATSU_BAD_INPUT_UNSET")
            .env("IKKATSU_STATUS_STORE", dir.path().join("status.redb"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let all = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        let mut wrong = Vec::new();
        if out.status.code() != Some(case.code) {
            wrong.push(format!("exit {:?}, not {}", out.status.code(), case.code));
        }
        if all.contains("panicked") || all.contains("RUST_BACKTRACE") {
            wrong.push("panicked".to_string());
        }
        for name in case.names {
            if !stderr.contains(name) {
                wrong.push(format!("no `{name}` in the message"));
            }
        }
        for secret in case.hidden {
            if all.contains(secret) {
                wrong.push(format!("the secret `{secret}` shows"));
            }
        }
        for (_, file, committed) in COMMITTED_OUTPUT.iter().filter(|c| c.0 == case.name) {
            match std::fs::read_to_string(dir.path().join(file)) {
                Ok(text) if text == *committed => {}
                Ok(text) => wrong.push(format!("{file} holds {text:?}, not {committed:?}")),
                Err(err) => wrong.push(format!("{file}: {err}")),
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n    stderr: {}",
                case.name,
                wrong.join("; "),
                stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
