//! One secret value fed through every layer at once — a job parameter, a storage of the
//! application config, a storage URL, a status store URL, a repository URL, and the error
//! messages of wrong credentials and refused connections — must show nowhere: not on
//! standard output or error (text and JSON logs at `trace`, `--json` listings), not in the
//! job repository or the status store, not in the overwrite flow's state directories.

use super::databases::Database;
use super::overwrite::{overwrite, state_without_marker};
use super::{Env, assert_no_marker, marker, text, var};

#[test]
fn one_secret_through_every_layer_shows_nowhere() {
    let secret = marker("same");
    let database = Database::create("same");
    // Trust authentication ignores the password; it must show nowhere all the same.
    let url = format!("postgres://root:{secret}@127.0.0.1:5432/{}", database.0);
    let mut env = Env::new(Some(url.clone()));
    let ftp = |user: &str| {
        format!(
            "{user}@{}:{}/secrets",
            var("IKKATSU_TEST_FTP_HOST"),
            var("IKKATSU_TEST_FTP_PORT"),
        )
    };
    let ftp_user = var("IKKATSU_TEST_FTP_USER");

    // The application config: an FTP storage whose password is the secret (wrong: reading
    // fails, with a message naming the storage).
    let config = env.write(
        "app.yaml",
        &format!(
            "storages:\n  lake:\n    url: ftp://{}\n    password: {secret}\n",
            ftp(&ftp_user)
        ),
    );
    let config = config.display().to_string();
    let job = env.write(
        "job.yaml",
        r#"id: same
steps:
  - name: announce
    tasklet:
      type: log
      properties:
        message: "connecting with ${params.db-password}"
  - name: copy
    chunk:
      chunk-size: 10
      reader: { type: csv, properties: { storage: "@lake", path: in.csv } }
      writer: { type: csv, properties: { path: out.csv } }
"#,
    );
    let job = job.display().to_string();
    let param = format!("db-password={secret}");
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
                &param,
                "-p",
                &format!("run={run}"),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("connecting with ***"),
            "the parameter is redacted from the log tasklet's message:\n{}",
            text(&out)
        );
    }

    // A storage URL with the secret as its password (wrong credentials), then a local tree
    // with the status store URL holding the secret (which works).
    let tree = env.path("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.txt"), "a\n").unwrap();
    let tree = tree.display().to_string();
    let ftp_source = format!("ftp://{}", ftp(&format!("{ftp_user}:{secret}")));
    let mut state_files = Vec::new();
    for (run, (source, succeeds)) in [(ftp_source.as_str(), false), (tree.as_str(), true)]
        .into_iter()
        .enumerate()
    {
        let state = env.path(&format!("state-{run}"));
        let out = overwrite(&mut env, source, None, &url, &state);
        assert_eq!(out.status.success(), succeeds, "{}", text(&out));
        state_files.extend(state_without_marker(&state));
    }
    assert!(
        env.printed.contains(&format!("ftp://{ftp_user}:***@")),
        "the FTP error names the masked URL:\n{}",
        env.printed
    );

    // Refused connections: a repository and a status store on a port nobody listens on.
    let refused = format!("postgres://root:{secret}@127.0.0.1:1/{}", database.0);
    let out = env.run(
        &["--log", "trace", "--repository", &refused, "executions"],
        &[],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("postgres://root:***@127.0.0.1:1/"),
        "{}",
        text(&out)
    );
    let refused_status = format!("mysql://root:{secret}@127.0.0.1:1/x");
    let state = env.path("state-refused");
    let out = overwrite(&mut env, &tree, None, &refused_status, &state);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("mysql://root:***@127.0.0.1:1/x"),
        "{}",
        text(&out)
    );
    state_files.extend(state_without_marker(&state));

    // What the repository shows of it all, as JSON and as tables.
    let out = env.run(&["--log-format", "json", "executions", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let executions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for execution in executions.as_array().unwrap() {
        let id = execution["id"].to_string();
        env.run(&["status", &id, "--json"], &[]);
        env.run(&["status", &id], &[]);
    }
    env.run(&["executions"], &[]);

    assert!(
        !state_files.is_empty(),
        "the state directories were searched"
    );
    assert_no_marker("the output", &env.printed);
    let dump = database.dump();
    assert!(
        dump.contains("ikkatsu_job_execution") && dump.contains("ikkatsu_file_status"),
        "{dump}"
    );
    assert_no_marker("the PostgreSQL repository and status store", &dump);
}
