//! Every file of `examples/` run as its comment and the README say it is run, by the
//! `ikkatsu` binary, in a copy of the repository's `examples/` (relative paths as written,
//! the default `./ikkatsu.db` repository), with exact outcomes. A file this test does not
//! know fails it: an example added to `examples/` is added to the match below.
//!
//! `sftp-csv-to-s3-parquet.yaml` (with its application config
//! `ikkatsu-config.remote.yaml`) runs against the SFTP and S3 test servers of
//! `scripts/test-servers`; a missing `IKKATSU_TEST_*` variable fails the test, saying what
//! to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_example_runs_as_written() {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| !entry.file_type().unwrap().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "examples found: {names:?}");
    for name in &names {
        match name.as_str() {
            "quickstart.yaml" => quickstart(),
            "overwrite.yaml" => overwrite(),
            "partitioned.yaml" => partitioned(),
            "sftp-csv-to-s3-parquet.yaml" => sftp_csv_to_s3_parquet(),
            // The application config of sftp-csv-to-s3-parquet.yaml, which runs with it.
            "ikkatsu-config.remote.yaml" => assert!(
                names.iter().any(|n| n == "sftp-csv-to-s3-parquet.yaml"),
                "{name} is run with sftp-csv-to-s3-parquet.yaml"
            ),
            other => panic!(
                "examples/{other} is not run by this test: add it to the match in \
                 crates/ikkatsu-cli/tests/examples.rs, run as its comment says"
            ),
        }
    }
}

/// `partitioned.yaml` as its comment runs it: a fresh PostgreSQL database shared by
/// `ikkatsu migrate`, two `ikkatsu worker` processes on the RabbitMQ of the machine
/// (`IKKATSU_TEST_AMQP_URL`, default amqp://guest:guest@127.0.0.1:5672/%2f) and `ikkatsu run`;
/// 200,000 numbers (`-p count=200000`) keep it short.
fn partitioned() {
    let checkout = Checkout::new();
    let server = std::env::var("IKKATSU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string());
    let name = format!("ikk_example_{}", std::process::id());
    let admin = |sql: String| {
        let output = Command::new("psql")
            .args([server.split('?').next().unwrap(), "-qc", &sql])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    admin(format!("DROP DATABASE IF EXISTS {name}"));
    admin(format!("CREATE DATABASE {name}"));
    let base = server.split('?').next().unwrap();
    let repository = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
    let broker = std::env::var("IKKATSU_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let queue = format!("ikkatsu.example.{}", std::process::id());
    let vars = [
        ("IKKATSU_REPOSITORY", repository.clone()),
        ("IKKATSU_BROKER", broker.clone()),
    ];
    checkout.run(&["migrate"], &vars);
    let workers: Vec<std::process::Child> = (0..2)
        .map(|_| {
            Command::new(BIN)
                .args(["worker", "--queue", &queue])
                .current_dir(checkout.dir.path())
                .env("IKKATSU_REPOSITORY", &repository)
                .env("IKKATSU_BROKER", &broker)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // The example's queue is the default one; this run uses its own (a `params` override is
    // not possible for `queue`), so it goes through a copy of the job with that queue.
    let job = checkout.read("examples/partitioned.yaml").replace(
        "        timeout: 30m",
        &format!("        timeout: 30m\n        queue: {queue}"),
    );
    std::fs::write(checkout.path("examples/partitioned-test.yaml"), job).unwrap();
    let out = checkout.run(
        &[
            "run",
            "examples/partitioned-test.yaml",
            "-p",
            "count=200000",
        ],
        &vars,
    );
    for mut worker in workers {
        worker.kill().ok();
        worker.wait().ok();
    }
    assert!(stdout(&out).contains("COMPLETED"), "{}", stdout(&out));
    let mut total = 0u64;
    let mut sum = 0u128;
    for i in 0..8 {
        for line in checkout
            .read(&format!("target/partitioned/partition{i}.jsonl"))
            .lines()
        {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let n = row["n"].as_u64().unwrap();
            assert_eq!(row["square"].as_u64(), Some(n * n));
            total += 1;
            sum += u128::from(n);
        }
    }
    assert_eq!(total, 200_000);
    assert_eq!(sum, 200_000u128 * 200_001 / 2, "every number once");
}

/// A copy of the repository's `examples/` in a fresh directory, the working directory of
/// the commands: `ikkatsu run examples/X.yaml` as written, its relative paths and the
/// default repository `./ikkatsu.db` inside the copy.
struct Checkout {
    dir: tempfile::TempDir,
}

impl Checkout {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &workspace_root().join("examples"),
            &dir.path().join("examples"),
        );
        Checkout { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `ikkatsu ARGS` with the variables `vars` (and none of the ikkatsu variables of
    /// the caller's environment); fails the test unless it exits 0 without a panic.
    fn run(&self, args: &[&str], vars: &[(&str, String)]) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("IKKATSU_REPOSITORY")
            .env_remove("IKKATSU_CONFIG")
            .env_remove("IKKATSU_STATUS_STORE")
            .env("IKKATSU_LOG", "info")
            .stdin(Stdio::null());
        for (name, value) in vars {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !all.contains("panicked"),
            "ikkatsu {args:?} exited with {:?}:\n{all}",
            out.status.code()
        );
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args, &[]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ikkatsu {args:?}: {e}: {}", stdout(&out)))
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ikkatsu run examples/quickstart.yaml` (README, *Set-up*): the adults of
/// `examples/data/people.csv` with upper-cased names and cities in
/// `target/quickstart/adults.csv`, then the line count; a second run is a new instance.
fn quickstart() {
    let checkout = Checkout::new();
    let out = checkout.run(&["run", "examples/quickstart.yaml"], &[]);
    assert!(stdout(&out).contains("COMPLETED"), "{}", stdout(&out));

    let input = checkout.read("examples/data/people.csv");
    let mut reader = csv::Reader::from_reader(input.as_bytes());
    let mut expected = csv::Writer::from_writer(Vec::new());
    expected.write_record(reader.headers().unwrap()).unwrap();
    let mut adults = 0u64;
    for record in reader.records() {
        let record = record.unwrap();
        if record[2].parse::<i64>().unwrap() < 18 {
            continue;
        }
        adults += 1;
        let mut row: Vec<String> = record.iter().map(str::to_string).collect();
        row[1] = row[1].to_uppercase();
        row[3] = row[3].to_uppercase();
        expected.write_record(&row).unwrap();
    }
    let expected = String::from_utf8(expected.into_inner().unwrap()).unwrap();
    assert!(adults > 0 && adults < 1000, "{adults} adults");
    assert!(
        checkout.read("target/quickstart/adults.csv") == expected,
        "target/quickstart/adults.csv differs from the adults of people.csv"
    );

    let json = checkout.json(&["executions", "--json"]);
    let steps = &json[0]["steps"];
    assert_eq!(steps[0]["read_count"], 1000, "{json}");
    assert_eq!(steps[0]["write_count"], adults, "{json}");
    assert_eq!(steps[0]["filter_count"], 1000 - adults, "{json}");
    assert_eq!(steps[1]["name"], "report", "{json}");
    assert_eq!(steps[1]["status"], "COMPLETED", "{json}");

    // "Each run is a new job instance": the same command again writes the same file.
    checkout.run(&["run", "examples/quickstart.yaml"], &[]);
    assert_eq!(
        checkout
            .json(&["executions", "--json"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(checkout.read("target/quickstart/adults.csv") == expected);
}

/// `ikkatsu run examples/overwrite.yaml` as its comment says, with no folder of one's own:
/// its first step makes the demo folder, the second normalises it; a second run creates
/// nothing and finds nothing left to do; a changed file, and only it, is processed again.
fn overwrite() {
    let checkout = Checkout::new();
    let args = ["run", "examples/overwrite.yaml", "--json"];
    let json = checkout.json(&args);
    assert_eq!(json["steps"][0]["name"], "demo-data", "{json}");
    assert_eq!(json["steps"][1]["write_count"], 2, "{json}");
    assert_eq!(json["steps"][2]["name"], "report", "{json}");
    let demo = "target/overwrite-demo";
    assert_eq!(checkout.read(&format!("{demo}/a.csv")), "id,name\n1,Aiko\n");
    assert_eq!(
        checkout.read(&format!("{demo}/sub/b.csv")),
        "id,name\n2,Ben\n"
    );
    assert_eq!(
        checkout.read(&format!("{demo}/archive/old.csv")),
        "kept as it is\r\n"
    );

    let json = checkout.json(&args);
    assert_eq!(json["steps"][1]["read_count"], 0, "{json}");
    assert_eq!(
        checkout.read(&format!("{demo}/a.csv")),
        "id,name\n1,Aiko\n",
        "an existing folder is left as it is"
    );

    std::fs::write(
        checkout.path(&format!("{demo}/a.csv")),
        "id,name\r\n1,Aiko\r\n3,Chloé\r\n",
    )
    .unwrap();
    let json = checkout.json(&args);
    assert_eq!(json["steps"][1]["read_count"], 1, "{json}");
    assert_eq!(json["steps"][1]["write_count"], 1, "{json}");
    assert_eq!(
        checkout.read(&format!("{demo}/a.csv")),
        "id,name\n1,Aiko\n3,Chloé\n"
    );
    assert_eq!(
        checkout.read(&format!("{demo}/sub/b.csv")),
        "id,name\n2,Ben\n"
    );
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

/// `ikkatsu --config examples/ikkatsu-config.remote.yaml run
/// examples/sftp-csv-to-s3-parquet.yaml -p day=2024-05-01` against the SFTP and S3 test
/// servers: CSV uploaded to SFTP, the example job, and the Parquet read back from S3.
fn sftp_csv_to_s3_parquet() {
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
    let vars = [
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
    ];
    let checkout = Checkout::new();
    let ikkatsu = |args: &[&str]| {
        let mut all = vec!["--config", "examples/ikkatsu-config.remote.yaml"];
        all.extend_from_slice(args);
        checkout.run(&all, &vars)
    };
    let job = |name: &str, yaml: String| {
        std::fs::write(checkout.path(name), yaml).unwrap();
        name.to_string()
    };

    // The example is valid with its application config.
    let out = ikkatsu(&["validate", "examples/sftp-csv-to-s3-parquet.yaml"]);
    assert!(stdout(&out).contains("valid"), "{}", stdout(&out));

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
        std::fs::write(checkout.path(&format!("{batch}.csv")), rows).unwrap();
        let upload = job(
            &format!("upload-{batch}.yaml"),
            format!(
                "id: upload-{batch}\nsteps:\n  - name: upload\n    chunk:\n      reader: {{ type: csv, properties: {{ path: \"{batch}.csv\" }} }}\n      writer: {{ type: csv, properties: {{ storage: \"@sftp-in\", path: \"exports/2024-05-01/{batch}\" }} }}\n",
            ),
        );
        ikkatsu(&["run", &upload, "--no-progress"]);
    }

    ikkatsu(&[
        "run",
        "examples/sftp-csv-to-s3-parquet.yaml",
        "-p",
        "day=2024-05-01",
    ]);

    // Read the Parquet parts back from S3 into a local JSON Lines file.
    let check = job(
        "check.yaml",
        "id: check\nsteps:\n  - name: check\n    chunk:\n      reader: { type: parquet, properties: { storage: \"@s3-out\", path: \"orders/day=2024-05-01/*.parquet\" } }\n      writer: { type: jsonl, properties: { path: \"orders.jsonl\" } }\n".to_string(),
    );
    ikkatsu(&["run", &check, "--no-progress"]);
    assert_eq!(
        checkout.read("orders.jsonl"),
        concat!(
            "{\"order_id\":1,\"customer\":\"Aiko\",\"amount\":10.5,\"ordered_at\":\"2024-05-01T06:30:00Z\"}\n",
            "{\"order_id\":2,\"customer\":\"Ben\",\"amount\":null,\"ordered_at\":\"2024-05-01T09:00:00Z\"}\n",
            "{\"order_id\":3,\"customer\":\"Chloé\",\"amount\":30.25,\"ordered_at\":\"2024-05-01T12:00:00Z\"}\n",
        )
    );
}
