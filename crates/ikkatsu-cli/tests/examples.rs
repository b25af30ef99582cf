//! `examples/sftp-csv-to-s3-parquet.yaml` with `examples/ikkatsu-config.remote.yaml`, run by
//! the `ikkatsu` binary against the SFTP and S3 test servers of `scripts/test-servers`:
//! CSV uploaded to SFTP, the example job, and the Parquet read back from S3. A missing
//! `IKKATSU_TEST_*` variable fails the test, saying what to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: this test needs the SFTP and S3 test servers. Run \
             `scripts/test-servers start` and `eval \"$(scripts/test-servers env)\"`, then the \
             tests again"
        ),
    }
}

/// Creates `bucket` with an unsigned `PUT` (moto does not check signatures).
fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("IKKATSU_TEST_S3_ENDPOINT {endpoint} is not http://"))
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority)
        .unwrap_or_else(|e| panic!("S3 test server at {endpoint}: {e}"));
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "create bucket {bucket}: {response}"
    );
}

struct Env {
    dir: tempfile::TempDir,
    vars: Vec<(&'static str, String)>,
}

impl Env {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ikkatsu(&self, args: &[&str]) -> Output {
        let config = workspace_root().join("examples/ikkatsu-config.remote.yaml");
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(workspace_root())
            .env(
                "IKKATSU_REPOSITORY",
                format!("sqlite://{}", self.path("ikkatsu.db").display()),
            )
            .env("IKKATSU_LOG", "info")
            .env_remove("SFTP_KNOWN_HOSTS")
            .stdin(Stdio::null());
        for (name, value) in &self.vars {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "ikkatsu {args:?} exited with {:?}:\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn job(&self, name: &str, yaml: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    }
}

#[test]
fn the_sftp_csv_to_s3_parquet_example_runs_against_the_test_servers() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let unique = format!("ikk-example-{}-{nanos}", std::process::id());
    let endpoint = var("IKKATSU_TEST_S3_ENDPOINT");
    create_bucket(&endpoint, &unique);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::copy(
        var("IKKATSU_TEST_SFTP_KNOWN_HOSTS"),
        home.path().join(".ssh/known_hosts"),
    )
    .unwrap();
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        vars: vec![
            ("SFTP_USER", var("IKKATSU_TEST_SFTP_USER")),
            ("SFTP_HOST", var("IKKATSU_TEST_SFTP_HOST")),
            ("SFTP_PORT", var("IKKATSU_TEST_SFTP_PORT")),
            (
                "SFTP_DIR",
                format!("{}/{unique}", var("IKKATSU_TEST_SFTP_ROOT")),
            ),
            ("SFTP_KEY_FILE", var("IKKATSU_TEST_SFTP_KEY")),
            // No SFTP_KNOWN_HOSTS: the host key is found in ~/.ssh/known_hosts.
            ("HOME", home.path().display().to_string()),
            ("S3_BUCKET", unique.clone()),
            ("S3_ENDPOINT", endpoint),
            ("S3_REGION", var("IKKATSU_TEST_S3_REGION")),
            ("S3_ACCESS_KEY_ID", var("IKKATSU_TEST_S3_ACCESS_KEY")),
            ("S3_SECRET_ACCESS_KEY", var("IKKATSU_TEST_S3_SECRET_KEY")),
        ],
    };

    // The example is valid with its application config.
    let out = env.ikkatsu(&["validate", "examples/sftp-csv-to-s3-parquet.yaml"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    // Two CSV exports on the SFTP server, uploaded by a job of their own.
    for (batch, rows) in [
        (
            "b",
            "id,customer,amount,ordered_at\n3, Chloé ,30.25,2024-05-01T12:00:00Z\n",
        ),
        (
            "a",
            "id,customer,amount,ordered_at\n1,Aiko,10.5,2024-05-01T08:30:00+02:00\n2,Ben,,2024-05-01T09:00:00Z\n",
        ),
    ] {
        let input = env.path(&format!("{batch}.csv"));
        std::fs::write(&input, rows).unwrap();
        let upload = env.job(
            &format!("upload-{batch}.yaml"),
            &format!(
                "id: upload-{batch}\nsteps:\n  - name: upload\n    chunk:\n      reader: {{ type: csv, properties: {{ path: \"{}\" }} }}\n      writer: {{ type: csv, properties: {{ storage: \"@sftp-in\", path: \"exports/2024-05-01/{batch}\" }} }}\n",
                input.display()
            ),
        );
        env.ikkatsu(&["run", &upload, "--no-progress"]);
    }

    env.ikkatsu(&[
        "run",
        "examples/sftp-csv-to-s3-parquet.yaml",
        "-p",
        "day=2024-05-01",
        "--no-progress",
    ]);

    // Read the Parquet parts back from S3 into a local JSON Lines file.
    let output = env.path("orders.jsonl");
    let check = env.job(
        "check.yaml",
        &format!(
            "id: check\nsteps:\n  - name: check\n    chunk:\n      reader: {{ type: parquet, properties: {{ storage: \"@s3-out\", path: \"orders/day=2024-05-01/*.parquet\" }} }}\n      writer: {{ type: jsonl, properties: {{ path: \"{}\" }} }}\n",
            output.display()
        ),
    );
    env.ikkatsu(&["run", &check, "--no-progress"]);
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        concat!(
            "{\"order_id\":1,\"customer\":\"Aiko\",\"amount\":10.5,\"ordered_at\":\"2024-05-01T06:30:00Z\"}\n",
            "{\"order_id\":2,\"customer\":\"Ben\",\"amount\":null,\"ordered_at\":\"2024-05-01T09:00:00Z\"}\n",
            "{\"order_id\":3,\"customer\":\"Chloé\",\"amount\":30.25,\"ordered_at\":\"2024-05-01T12:00:00Z\"}\n",
        )
    );
}
