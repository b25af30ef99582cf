//! Secrets never show: marker secrets are fed to the `ikkatsu` binary through every route (a
//! job parameter given in clear, `${ENV}` and `${file:…}` references, a storage of the
//! application config, status store and repository URLs, failing commands, wrong
//! credentials), with `--log trace` in text and JSON, and must appear nowhere: not on
//! standard output or error, not in any table of the job repository (SQLite, PostgreSQL,
//! MySQL) or of the status store (PostgreSQL, MySQL), not in any file of the overwrite
//! flow's state directories (backlog, failures, journal, lock). Real servers: the S3 (moto)
//! and FTP test servers (`eval "$(scripts/test-servers env)"`), PostgreSQL, MariaDB (a user
//! whose password is a marker, made by the test) and Redis on 127.0.0.1.
//!
//! And secret references are read again at restart, while a secret given in clear must be
//! given again.

mod databases;
mod one_secret;
mod overwrite;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use databases::{Database, MysqlDatabase};
use overwrite::{overwrite, overwrite_in_flight, state_without_marker};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// Every marker starts with this; it must never show.
const PREFIX: &str = "ikkMARK";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the storage test servers and load their settings with \
             `scripts/test-servers start && eval \"$(scripts/test-servers env)\"`"
        )
    })
}

/// A marker secret for one route.
fn marker(route: &str) -> String {
    format!("{PREFIX}{route}{}Zq", std::process::id())
}

struct Env {
    dir: tempfile::TempDir,
    repository: String,
    /// Everything the commands printed, for the final check.
    printed: String,
}

impl Env {
    fn new(repository: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repository = repository
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("ikkatsu.db").display()));
        Env {
            dir,
            repository,
            printed: String::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `ikkatsu ARGS` with the environment `vars`.
    fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("IKKATSU_REPOSITORY", &self.repository)
            .env("IKKATSU_HEARTBEAT_INTERVAL", "200ms")
            .env_remove("IKKATSU_LOG")
            .env_remove("IKKATSU_CONFIG")
            .envs(vars.iter().copied())
            .stdin(Stdio::null());
        command
    }

    /// Runs `ikkatsu ARGS` with the environment `vars`; records what it printed.
    fn run(&mut self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let out = self.command(args, vars).output().unwrap();
        self.record(&text(&out));
        out
    }

    /// Records what a command printed. (The arguments themselves hold markers: they are not
    /// part of the output.)
    fn record(&mut self, printed: &str) {
        assert!(!printed.contains("panicked"), "{printed}");
        self.printed.push_str(printed);
    }

    fn json(&mut self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that `what` holds no marker.
fn assert_no_marker(what: &str, text: &str) {
    if let Some(at) = text.find(PREFIX) {
        let start = text[..at]
            .char_indices()
            .rev()
            .nth(300)
            .map_or(0, |(i, _)| i);
        let end = (at + 300).min(text.len());
        let end = (end..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        panic!("a secret shows in {what}:\n…{}…", &text[start..end]);
    }
}

/// A fresh S3 bucket on the test server holding `in/in.csv`; returns (endpoint, bucket).
fn s3_bucket_with_input(csv: &str) -> (String, String) {
    let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
    let bucket = format!("secrets-{}", std::process::id());
    // The S3 test server does not check signatures when creating a bucket.
    let out = Command::new("curl")
        .args(["-sf", "-X", "PUT", &format!("{endpoint}/{bucket}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "creating bucket {bucket}: {}",
        text(&out)
    );
    let storage = ikkatsu_storage::Storage::open(&format!(
        "s3://{bucket}/in?endpoint={endpoint}&region={}&access-key-id={}&secret-access-key={}",
        var("IKKATSU_TEST_S3_REGION"),
        var("IKKATSU_TEST_S3_ACCESS_KEY"),
        var("IKKATSU_TEST_S3_SECRET_KEY"),
    ))
    .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(storage.write("in.csv", csv.as_bytes().to_vec()))
        .unwrap();
    (endpoint, bucket)
}

/// Feeds the markers through every route, with the repository of `env`; `status` is the URL
/// of a PostgreSQL or MySQL status store with a marker password, which works.
fn feed_markers(env: &mut Env, status: &str) {
    let param = marker("param");
    let from_env = marker("env");
    let from_file = marker("file");
    let s3 = marker("s3");
    let ftp = marker("ftp");
    let redis = marker("redis");
    let shell = marker("shell");

    let secret_file = env.write("secret.txt", &format!("{from_file}\n"));
    let (endpoint, bucket) = s3_bucket_with_input("id,name\n1,Aiko\n2,Ben\n");
    let config = env.write(
        "app.yaml",
        &format!(
            "storages:\n  lake:\n    url: s3://{bucket}/in?endpoint={endpoint}&region={}\n    access-key-id: {}\n    secret-access-key: ${{IKK_LAKE_SECRET}}\n",
            var("IKKATSU_TEST_S3_REGION"),
            var("IKKATSU_TEST_S3_ACCESS_KEY"),
        ),
    );
    let config = config.display().to_string();
    let out_csv = env.path("out.csv");
    let job = env.write(
        "job.yaml",
        &format!(
            r#"id: secrets
params:
  key-pass: ${{file:{secret}}}
  conn: "postgres://batch:${{IKK_DB_PASSWORD}}@db.example/jobs"
steps:
  - name: announce
    tasklet:
      type: log
      properties:
        message: "using ${{params.db-password}}, ${{params.key-pass}} and ${{params.conn}}"
  - name: copy
    chunk:
      chunk-size: 10
      reader: {{ type: csv, properties: {{ storage: "@lake", path: in.csv }} }}
      writer: {{ type: csv, properties: {{ path: "{out}" }} }}
"#,
            secret = secret_file.display(),
            out = out_csv.display(),
        ),
    );
    let job = job.display().to_string();
    let vars = [
        ("IKK_DB_PASSWORD", from_env.as_str()),
        ("IKK_LAKE_SECRET", s3.as_str()),
    ];
    let db_password = format!("db-password={param}");

    // A run that completes, with every debug and trace line, in text then JSON.
    for (run, format) in [("1", "text"), ("2", "json")] {
        let out = env.run(
            &[
                "--config",
                &config,
                "--log",
                "trace",
                "--log-format",
                format,
                "run",
                &job,
                "-p",
                &db_password,
                "-p",
                &format!("run={run}"),
            ],
            &vars,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let printed = text(&out);
        // The log shows the references and masks the clear secret.
        assert!(
            printed.contains("db-password=string:***;"),
            "the job started line masks the parameter:\n{printed}"
        );
        assert!(
            printed.contains("using ***, ***"),
            "the log tasklet's message is redacted:\n{printed}"
        );
        assert!(
            printed.contains("${IKK_DB_PASSWORD}"),
            "the reference is shown:\n{printed}"
        );
        assert!(
            printed.contains("storage opened") && !printed.contains("credential provider"),
            "the S3 storage is opened, and the signing library's credential logs are capped at info:\n{printed}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&out_csv).unwrap(),
        "id,name\n1,Aiko\n2,Ben\n",
        "the S3 storage was read with the marker secret key"
    );

    // A failing command whose line holds a secret: the message is stored and shown.
    let failing = env.write(
        "failing.yaml",
        r#"id: failing
steps:
  - name: fail
    tasklet:
      type: shell
      properties:
        command: "echo ${params.api-token} >&2; exit 3"
        shell: true
"#,
    );
    let failing = failing.display().to_string();
    let token = format!("api-token={shell}");
    let out = env.run(&["--log", "trace", "run", &failing, "-p", &token], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let id = env.json(&["executions", "--json", "--job", "failing"])[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    env.run(&["--log", "trace", "restart", &id], &[]);

    // Wrong credentials on a remote storage, and status store URLs with passwords.
    let tree = env.path("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.txt"), "a\n").unwrap();
    let tree = tree.display().to_string();
    let ftp_url = format!(
        "ftp://{}:{ftp}@{}:{}/secrets",
        var("IKKATSU_TEST_FTP_USER"),
        var("IKKATSU_TEST_FTP_HOST"),
        var("IKKATSU_TEST_FTP_PORT"),
    );
    let redis_url = format!("redis://:{redis}@127.0.0.1:6379/0");
    // (Wrong FTP credentials and a Redis that wants no password fail; the SQL status store
    // works.) Every file each run leaves in its state directory is searched at once.
    let mut state_files = Vec::new();
    for (run, (source, status, succeeds)) in [
        (ftp_url.as_str(), "memory:", None),
        (tree.as_str(), redis_url.as_str(), Some(false)),
        (tree.as_str(), status, Some(true)),
    ]
    .into_iter()
    .enumerate()
    {
        let state = env.path(&format!("state-{run}"));
        let out = overwrite(env, source, None, status, &state);
        state_files.extend(state_without_marker(&state));
        if let Some(succeeds) = succeeds {
            assert_eq!(out.status.success(), succeeds, "{}", text(&out));
        }
    }

    // The overwrite flow's own files: the backlog's header names the source, failures.jsonl
    // (and the status store) hold each file's error, which names the storage. An S3 source
    // whose secret key is a marker (the S3 test server does not check signatures) with a
    // target bucket that does not exist, then a local tree with an FTP target whose password
    // is a marker (wrong credentials): every file fails with its storage's URL.
    let s3_url = |bucket: &str, secret: &str| {
        format!(
            "s3://{bucket}/in?endpoint={endpoint}&region={}&access-key-id={}&secret-access-key={secret}",
            var("IKKATSU_TEST_S3_REGION"),
            var("IKKATSU_TEST_S3_ACCESS_KEY"),
        )
    };
    let s3_source = s3_url(&bucket, &marker("s3source"));
    let s3_target = s3_url(&format!("{bucket}-missing"), &marker("s3target"));
    let ftp_target = format!(
        "ftp://{}:{}@{}:{}/secrets",
        var("IKKATSU_TEST_FTP_USER"),
        marker("ftptarget"),
        var("IKKATSU_TEST_FTP_HOST"),
        var("IKKATSU_TEST_FTP_PORT"),
    );
    for (run, (source, target, masked)) in [
        (
            s3_source.as_str(),
            s3_target.as_str(),
            "secret-access-key=***",
        ),
        (tree.as_str(), ftp_target.as_str(), "ftp://ikkatsu:***@"),
    ]
    .into_iter()
    .enumerate()
    {
        let state = env.path(&format!("state-target-{run}"));
        let out = overwrite(env, source, Some(target), status, &state);
        let files = state_without_marker(&state);
        assert_ne!(out.status.code(), Some(0), "{}", text(&out));
        let file = |name: &str| {
            files
                .iter()
                .find(|(path, _)| path.ends_with(name))
                .map(|(_, content)| content.clone())
                .unwrap_or_else(|| panic!("no {name} in {files:?}"))
        };
        let failures = file("/failures.jsonl");
        assert_eq!(failures.lines().count(), 1, "{failures}");
        assert!(
            failures.contains(masked),
            "the file's error names the target storage:\n{failures}"
        );
        if run == 0 {
            let backlog = file("/backlog.jsonl.gz");
            assert!(
                backlog.contains(&format!("\"source\":\"s3://{bucket}/in?"))
                    && backlog.contains("secret-access-key=***"),
                "the backlog's header names the masked source:\n{backlog}"
            );
        }
        state_files.extend(files);
    }
    state_files.extend(overwrite_in_flight(env, &tree, status));
    for name in ["/lock", "/backlog.jsonl.gz", "/failures.jsonl"] {
        assert!(
            state_files
                .iter()
                .filter(|(path, _)| path.ends_with(name))
                .count()
                >= 3,
            "{name} searched in three state directories: {state_files:?}"
        );
    }
    let out = env.run(&["--log-format", "json", "executions", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let executions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secrets = executions
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job"] == "secrets")
        .unwrap();
    assert_eq!(
        secrets["parameters"]["db-password"],
        serde_json::json!({"type": "string", "value": "***", "identifying": true, "secret": true})
    );
    assert_eq!(
        secrets["parameters"]["conn"]["value"],
        "postgres://batch:${IKK_DB_PASSWORD}@db.example/jobs"
    );
    assert_eq!(
        secrets["parameters"]["key-pass"]["value"],
        format!("${{file:{}}}", secret_file.display())
    );
    for execution in executions.as_array().unwrap() {
        let id = execution["id"].to_string();
        env.run(&["status", &id, "--json"], &[]);
        env.run(&["status", &id], &[]);
    }
    env.run(&["executions"], &[]);
}

#[test]
fn marker_secrets_show_nowhere_with_a_sqlite_repository() {
    let status = Database::create("status");
    let mut env = Env::new(None);
    feed_markers(&mut env, &status.status_url());
    // An unknown repository scheme with a password in the URL.
    let bad = format!("nosuchdb://root:{}@127.0.0.1/x", marker("badrepo"));
    let out = env.run(&["--repository", &bad, "executions"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("nosuchdb://root:***@127.0.0.1/x"),
        "{}",
        text(&out)
    );

    assert_no_marker("the output", &env.printed);
    let dump = Command::new("sqlite3")
        .arg(env.path("ikkatsu.db"))
        .arg(".dump")
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", text(&dump));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("ikkatsu_job_execution"), "{dump}");
    assert_no_marker("the SQLite repository", &dump);
    let dump = status.dump();
    assert!(
        dump.contains("COPY public.") && dump.contains("secret-access-key=***"),
        "the files' errors are in the status store: {dump}"
    );
    assert_no_marker("the PostgreSQL status store", &dump);
}

#[test]
fn marker_secrets_show_nowhere_with_a_postgres_repository() {
    let database = Database::create("repository");
    // Trust authentication ignores the password; it must show nowhere all the same.
    let url = format!(
        "postgres://root:{}@127.0.0.1:5432/{}",
        marker("repo"),
        database.0
    );
    let mut env = Env::new(Some(url));
    feed_markers(&mut env, &database.status_url());
    // A database that does not exist, with a password in the URL.
    let missing = format!(
        "postgres://root:{}@127.0.0.1:5432/{}_missing",
        marker("missingdb"),
        database.0
    );
    let out = env.run(&["--repository", &missing, "executions"], &[]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));

    assert_no_marker("the output", &env.printed);
    let dump = database.dump();
    assert!(
        dump.contains("ikkatsu_job_execution") && dump.contains("secret-access-key=***"),
        "{dump}"
    );
    assert_no_marker("the PostgreSQL repository and status store", &dump);
}

#[test]
fn marker_secrets_show_nowhere_with_a_mysql_repository() {
    let database = MysqlDatabase::create();
    // The user's password is a marker, and MariaDB checks it: the repository and the status
    // store of the overwrite runs connect with it.
    let url = database.url(&marker("mysqlpw"));
    let mut env = Env::new(Some(url.clone()));
    feed_markers(&mut env, &url);
    // A wrong password, and a database the user may not use.
    let wrong = database.url(&marker("mysqlwrong"));
    let out = env.run(&["--repository", &wrong, "executions"], &[]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "mysql://{}:***@127.0.0.1:3306/{}",
            database.user, database.name
        )) && text(&out).contains("Access denied"),
        "{}",
        text(&out)
    );
    let missing = format!(
        "mysql://{}:{}@127.0.0.1:3306/{}_missing",
        database.user,
        marker("mysqlpw"),
        database.name
    );
    let out = env.run(&["--repository", &missing, "executions"], &[]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));

    assert_no_marker("the output", &env.printed);
    let dump = database.dump();
    assert!(
        dump.contains("INSERT INTO `ikkatsu_job_execution`")
            && dump.contains("INSERT INTO `ikkatsu_file_status`")
            && dump.contains("secret-access-key=***"),
        "{dump}"
    );
    assert_no_marker("the MySQL repository and status store", &dump);
}

#[test]
fn secret_references_are_read_again_at_restart_and_clear_secrets_are_asked_again() {
    let mut env = Env::new(None);
    let gate = env.path("gate");
    let output = env.path("token.txt");
    let job = env.write(
        "job.yaml",
        &format!(
            r#"id: token
steps:
  - name: write
    tasklet:
      type: shell
      properties:
        command: 'test -f "{gate}" && printf %s "$TOKEN" > "{output}"'
        shell: true
        env: {{ TOKEN: "${{params.api-token}}" }}
"#,
            gate = gate.display(),
            output = output.display(),
        ),
    );
    let job = job.display().to_string();

    // Given as a reference: stored as the reference, read again by `restart`.
    let out = env.run(
        &["run", &job, "-p", "api-token=${IKK_API_TOKEN}", "-p", "n=1"],
        &[("IKK_API_TOKEN", "first-token-1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let first = env.json(&["executions", "--json"])[0].clone();
    assert_eq!(
        first["parameters"]["api-token"],
        serde_json::json!({"type": "string", "value": "${IKK_API_TOKEN}", "identifying": true})
    );
    std::fs::write(&gate, "").unwrap();
    let id = first["id"].to_string();
    let out = env.run(&["restart", &id], &[("IKK_API_TOKEN", "second-token-2")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "second-token-2");

    // Given in clear: stored as `***`; `restart` asks for it, `run` with it restarts.
    std::fs::remove_file(&gate).unwrap();
    let out = env.run(
        &["run", &job, "-p", "api-token=clear-token-1", "-p", "n=2"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = env.json(&["executions", "--json"])[0].clone();
    assert_eq!(
        failed["parameters"]["api-token"],
        serde_json::json!({"type": "string", "value": "***", "identifying": true, "secret": true})
    );
    std::fs::write(&gate, "").unwrap();
    let id = failed["id"].to_string();
    let out = env.run(&["restart", &id], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "job parameter `api-token` is a secret given in clear at launch, and secrets are never stored"
        ),
        "{}",
        text(&out)
    );
    let out = env.run(
        &["run", &job, "-p", "api-token=clear-token-2", "-p", "n=2"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "clear-token-2");
    let last = env.json(&["executions", "--json"])[0].clone();
    assert_eq!(
        last["instance_id"], failed["instance_id"],
        "the same job instance, restarted"
    );
    assert!(!env.printed.contains("clear-token"), "{}", env.printed);
}
