//! A job whose output runs into a full disk: a small tmpfs mounted for the test (this needs
//! root, as CI has; without it the test fails, it does not skip). The run fails with exit
//! code 1 and a message naming the output file and the full device, without a panic; the
//! output holds exactly the chunks committed before the disk filled; once space is freed,
//! `ikkatsu restart` completes the output byte for byte.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ikkatsu");

/// Rows of the input; their output is several times the space left on the tmpfs, and fits
/// in the whole tmpfs.
const ROWS: usize = 2_000;
const CHUNK: usize = 25;
/// The size of the tmpfs, and the space left free once the filler file has filled it.
const TMPFS_SIZE: u64 = 256 * 1024;
const FREE: u64 = 8 * 1024;

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed ({}): this test needs root (CI runs it as root)",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process of a failed test): detach it, it goes when released.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Fills the file system of `path` with the file `path`, then gives back `free` bytes (a
/// multiple of the page size, the unit a tmpfs counts in).
fn fill_leaving(path: &Path, free: u64) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    let block = vec![b'x'; 4096];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let len = file.metadata().unwrap().len();
    assert!(len > free, "the filler holds {len} bytes");
    file.set_len(len - free).unwrap();
}

fn ikkatsu(work: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(work)
        .env(
            "IKKATSU_REPOSITORY",
            format!("sqlite://{}", work.join("ikkatsu.db").display()),
        )
        .env("IKKATSU_LOG", "warn")
        .env_remove("IKKATSU_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("panicked") && !all.contains("RUST_BACKTRACE"),
        "ikkatsu {args:?} panicked:\n{all}"
    );
    out
}

fn executions(work: &Path) -> serde_json::Value {
    let out = ikkatsu(work, &["executions", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The cities of the rows: a multi-byte character, and a field that CSV quotes.
const CITIES: [&str; 4] = ["Tokyo", "Berlin", "São Paulo", "New York, NY"];

/// The input: a header and `ROWS` rows.
fn input_text() -> String {
    let mut text = String::from("id,name,city\n");
    for i in 1..=ROWS {
        let city = CITIES[i % 4];
        let city = if city.contains(',') {
            format!("\"{city}\"")
        } else {
            city.to_string()
        };
        text.push_str(&format!("{i},name {i},{city}\n"));
    }
    text
}

/// What the copy job writes with the writer type `writer`: the output's first line (the
/// CSV header, nothing in JSON Lines) and one line per row.
fn output_lines(writer: &str) -> (String, Vec<String>) {
    match writer {
        "csv" => {
            let mut lines: Vec<String> = input_text().lines().map(|l| format!("{l}\n")).collect();
            let rows = lines.split_off(1);
            (lines.concat(), rows)
        }
        "jsonl" => {
            let rows = (1..=ROWS)
                .map(|i| {
                    format!(
                        "{{\"id\":\"{i}\",\"name\":\"name {i}\",\"city\":\"{}\"}}\n",
                        CITIES[i % 4]
                    )
                })
                .collect();
            (String::new(), rows)
        }
        other => panic!("no expected output for the writer type {other}"),
    }
}

fn copy_job(work: &Path, input: &Path, writer: &str, output: &Path) -> PathBuf {
    let job = work.join("copy.yaml");
    std::fs::write(
        &job,
        format!(
            "id: copy\nsteps:\n  - name: copy\n    chunk:\n      chunk-size: {CHUNK}\n      \
             reader: {{ type: csv, properties: {{ path: \"{}\" }} }}\n      \
             writer: {{ type: {writer}, properties: {{ path: \"{}\" }} }}\n",
            input.display(),
            output.display()
        ),
    )
    .unwrap();
    job
}

/// The CSV input copied by the writer type `writer` onto a tmpfs with `FREE` bytes left:
/// the run fails on the full disk naming the output file, the output holds exactly the
/// chunks committed before (each chunk is flushed at its commit), and once the space is
/// freed the restart completes the output byte for byte.
fn full_disk(writer: &str, file: &str) {
    let (head, rows) = output_lines(writer);
    let expected = format!("{head}{}", rows.concat());
    let mut fits = 0;
    let mut size = head.len() as u64;
    for chunk in rows.chunks(CHUNK) {
        size += chunk.iter().map(|l| l.len() as u64).sum::<u64>();
        if size > FREE {
            break;
        }
        fits += chunk.len();
    }
    assert!(fits > 0 && fits < ROWS, "some chunks fit, not all ({fits})");
    assert!(
        (expected.len() as u64) < TMPFS_SIZE,
        "the whole output fits the tmpfs"
    );

    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in.csv");
    std::fs::write(&input, input_text()).unwrap();
    let tmpfs = Tmpfs::mount(TMPFS_SIZE);
    let filler = tmpfs.path().join("filler");
    fill_leaving(&filler, FREE);
    let output = tmpfs.path().join(file);
    let job = copy_job(work.path(), &input, writer, &output);

    let first = ikkatsu(work.path(), &["run", job.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&output.display().to_string()),
        "the message names the output file: {stderr}"
    );
    assert!(
        stderr.contains("No space left on device")
            && stderr.contains("free space on its device, then restart the job"),
        "the message says the device is full and what to do: {stderr}"
    );

    let json = executions(work.path());
    assert_eq!(json[0]["status"], "FAILED", "{json}");
    let step = &json[0]["steps"][0];
    assert_eq!(step["write_count"], fits as u64, "{json}");
    assert_eq!(step["commit_count"], (fits / CHUNK) as u64, "{json}");
    // Earlier committed output is intact: exactly the committed rows, no part of the chunk
    // that did not fit.
    let committed = format!("{head}{}", rows[..fits].concat());
    let written = std::fs::read(&output).unwrap();
    assert!(
        written == committed.as_bytes(),
        "the output holds the {fits} committed rows ({} bytes), not {} bytes ending {:?}",
        committed.len(),
        written.len(),
        String::from_utf8_lossy(&written[written.len().saturating_sub(40)..])
    );

    // Space freed, the restart continues after the last committed chunk.
    std::fs::remove_file(&filler).unwrap();
    let id = json[0]["id"].as_i64().unwrap().to_string();
    let restart = ikkatsu(work.path(), &["restart", &id]);
    assert_eq!(
        restart.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&restart.stderr)
    );
    let written = std::fs::read(&output).unwrap();
    assert!(
        written == expected.as_bytes(),
        "the restarted output differs from the expected one ({} bytes, not {})",
        written.len(),
        expected.len()
    );
    let json = executions(work.path());
    assert_eq!(json[0]["status"], "COMPLETED", "{json}");
    assert_eq!(
        json[0]["steps"][0]["write_count"],
        (ROWS - fits) as u64,
        "{json}"
    );
    drop(tmpfs);
}

#[test]
fn a_full_disk_under_a_csv_writer_keeps_the_committed_rows_and_a_restart_completes_it() {
    full_disk("csv", "out.csv");
}

#[test]
fn a_full_disk_under_a_json_lines_writer_keeps_the_committed_lines_and_a_restart_completes_it() {
    full_disk("jsonl", "out.jsonl");
}
