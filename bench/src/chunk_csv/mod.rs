//! `chunk-csv`: read a CSV file, uppercase the `city` field of every row, write a CSV file,
//! in chunks of [`CHUNK_SIZE`].
//!
//! The input (columns `id,first_name,last_name,email,city,amount`, about 100 bytes a row) is
//! generated once in a temporary directory; every contender reads that same file and writes
//! its own output file, which is then checked row by row against the input (outside the
//! timed section) so a fast-but-wrong contender cannot win.

mod ikkatsu;
mod limit;
mod peer;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use crate::report;

/// Name of the bench in the JSON output.
pub const BENCH: &str = "chunk-csv";
/// Items per chunk (per transaction) for the framework contenders.
pub const CHUNK_SIZE: usize = 1000;
/// Column names of the input and output files.
pub const HEADER: [&str; 6] = ["id", "first_name", "last_name", "email", "city", "amount"];
/// Index of the `city` column.
pub const CITY: usize = 4;

/// The contenders, in the order they run.
const CONTENDERS: [&str; 3] = ["limit", "peer", "ikkatsu"];

/// Command-line options of `chunk-csv`.
pub struct Options {
    rows: u64,
    runs: u32,
    only: Vec<String>,
    ikkatsu_items: ItemsKind,
    keep_dir: bool,
}

/// Which of ikkatsu's CSV item types the ikkatsu contender uses.
#[derive(Clone, Copy, Debug)]
pub enum ItemsKind {
    /// `CsvItemReader`/`CsvItemWriter` over `Record`s (what YAML jobs run on).
    Record,
    /// `TypedCsvItemReader`/`TypedCsvItemWriter` over a serde struct.
    Typed,
    /// `CsvRowItemReader`/`CsvRowItemWriter` over `CsvRow`s (fields by column name).
    Row,
}

impl Options {
    /// Parses `[--rows N] [--only LIST] [--keep-dir]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            rows: 1_000_000,
            runs: 3,
            ikkatsu_items: ItemsKind::Record,
            only: CONTENDERS.iter().map(|c| c.to_string()).collect(),
            keep_dir: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag {
                "--rows" => {
                    let v = value()?;
                    opts.rows = v
                        .replace('_', "")
                        .parse()
                        .map_err(|e| format!("--rows `{v}`: {e}"))?;
                    if opts.rows == 0 {
                        return Err("--rows must be at least 1".into());
                    }
                }
                "--only" => {
                    let v = value()?;
                    opts.only = v.split(',').map(|s| s.trim().to_string()).collect();
                    if let Some(bad) = opts.only.iter().find(|c| !CONTENDERS.contains(&c.as_str()))
                    {
                        return Err(format!(
                            "--only: unknown contender `{bad}` (known: {})",
                            CONTENDERS.join(", ")
                        ));
                    }
                }
                "--runs" => {
                    let v = value()?;
                    opts.runs = v.parse().map_err(|e| format!("--runs `{v}`: {e}"))?;
                    if opts.runs == 0 {
                        return Err("--runs must be at least 1".into());
                    }
                }
                "--ikkatsu-items" => {
                    opts.ikkatsu_items = match value()?.as_str() {
                        "record" => ItemsKind::Record,
                        "typed" => ItemsKind::Typed,
                        "row" => ItemsKind::Row,
                        other => {
                            return Err(format!(
                                "--ikkatsu-items `{other}`: expected `record`, `typed` or `row`"
                            ));
                        }
                    }
                }
                "--keep-dir" => opts.keep_dir = true,
                other => return Err(format!("chunk-csv: unknown option `{other}`")),
            }
        }
        Ok(opts)
    }
}

/// Runs the bench: generate the input, run each selected contender, print JSON lines.
pub fn run(opts: &Options) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("ikkatsu-bench-chunk-csv-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let input = dir.path().join("input.csv");
    let started = Instant::now();
    let bytes = generate_input(&input, opts.rows)?;
    eprintln!(
        "chunk-csv: generated {} rows, {} bytes ({:.1} bytes/row) in {:.2}s at {}",
        opts.rows,
        bytes,
        bytes as f64 / opts.rows as f64,
        started.elapsed().as_secs_f64(),
        input.display()
    );

    let mut seconds = std::collections::HashMap::new();
    let mut failures = Vec::new();
    for name in CONTENDERS {
        if !opts.only.iter().any(|c| c == name) {
            continue;
        }
        let output = dir.path().join(format!("output-{name}.csv"));
        let mut best: Result<f64, String> = Err(String::new());
        for run in 1..=opts.runs {
            let _ = std::fs::remove_file(&output);
            let started = Instant::now();
            let result = match name {
                "limit" => limit::run(&input, &output),
                "peer" => peer::run(&input, &output),
                "ikkatsu" => ikkatsu::run(&input, &output, opts.ikkatsu_items),
                _ => unreachable!("contender names come from CONTENDERS"),
            };
            let elapsed = started.elapsed().as_secs_f64();
            if let Err(message) = result.and_then(|()| verify(&input, &output, opts.rows)) {
                best = Err(message);
                break;
            }
            if opts.runs > 1 {
                eprintln!("chunk-csv: {name} run {run}/{}: {elapsed:.3}s", opts.runs);
            }
            best = Ok(match best {
                Ok(b) => elapsed.min(b),
                Err(_) => elapsed,
            });
        }
        match best {
            Ok(elapsed) => {
                report::contender(BENCH, name, elapsed, opts.rows);
                seconds.insert(name, elapsed);
            }
            Err(message) => {
                eprintln!("chunk-csv: contender `{name}` failed: {message}");
                failures.push(name);
            }
        }
        // Free the disk space early: outputs are as large as the input.
        if !opts.keep_dir {
            let _ = std::fs::remove_file(&output);
        }
    }

    if let Some(&ikkatsu) = seconds.get("ikkatsu") {
        report::ratios(
            BENCH,
            seconds.get("limit").map(|s| ikkatsu / s),
            seconds.get("peer").map(|s| ikkatsu / s),
        );
    } else if opts.only.iter().any(|c| c == "ikkatsu") {
        report::ratios(BENCH, None, None);
    }

    if opts.keep_dir {
        let kept = dir.keep();
        eprintln!("chunk-csv: kept {}", kept.display());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("contender(s) failed: {}", failures.join(", ")))
    }
}

/// Deterministic xorshift64* generator: the same `--rows` always gives the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const FIRST_NAMES: [&str; 16] = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Charlotte",
    "Oliver",
    "Amelia",
    "Elijah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
    "Theodore",
    "Evelyn",
    "Sebastian",
];
const LAST_NAMES: [&str; 16] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thompson",
];
/// Lower-case city names (two non-ASCII ones, so uppercasing is not only ASCII).
const CITIES: [&str; 16] = [
    "new york",
    "los angeles",
    "chicago",
    "houston",
    "phoenix",
    "philadelphia",
    "san antonio",
    "san diego",
    "dallas",
    "amsterdam",
    "rotterdam",
    "zürich",
    "são paulo",
    "osaka",
    "lyon",
    "manchester",
];

/// Writes the input file; returns its size in bytes.
fn generate_input(path: &Path, rows: u64) -> Result<u64, String> {
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "{}", HEADER.join(","))?;
        for id in 1..=rows {
            let first = rng.pick(&FIRST_NAMES);
            let last = rng.pick(&LAST_NAMES);
            let city = rng.pick(&CITIES);
            // Never a whole number of units: every writer prints such amounts identically.
            let cents = rng.next() % 99_999_999 + 1;
            let cents = if cents.is_multiple_of(100) {
                cents + 1
            } else {
                cents
            };
            writeln!(
                out,
                "{id},{first},{last},{}.{}.{id}@customers.mail.example-company.org,{city},{}.{:02}",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                cents / 100,
                cents % 100
            )?;
        }
        out.flush()
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))
}

/// Checks that `output` holds the header and exactly the input's rows with `city`
/// uppercased (numbers compared by value, so `12.50` and `12.5` are equal).
fn verify(input: &Path, output: &Path, rows: u64) -> Result<(), String> {
    let open = |p: &Path| {
        csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(p)
            .map_err(|e| format!("cannot open {}: {e}", p.display()))
    };
    let mut expected = open(input)?;
    let mut actual = open(output)?;
    let header = actual
        .headers()
        .map_err(|e| format!("{}: bad header: {e}", output.display()))?
        .clone();
    if header.iter().ne(HEADER) {
        return Err(format!(
            "{}: header is {:?}, expected {:?}",
            output.display(),
            header.iter().collect::<Vec<_>>(),
            HEADER
        ));
    }
    let (mut want, mut got) = (csv::StringRecord::new(), csv::StringRecord::new());
    let mut n = 0u64;
    loop {
        let more_want = expected.read_record(&mut want).map_err(|e| e.to_string())?;
        let more_got = actual
            .read_record(&mut got)
            .map_err(|e| format!("{}: {e}", output.display()))?;
        match (more_want, more_got) {
            (false, false) => break,
            (true, true) => {}
            _ => {
                return Err(format!(
                    "{}: row count differs from the input's {rows} (after {n} rows)",
                    output.display()
                ));
            }
        }
        n += 1;
        let same = |i: usize| -> bool {
            match i {
                0 | 5 => want[i].parse::<f64>().ok() == got.get(i).and_then(|v| v.parse().ok()),
                CITY => got.get(i) == Some(want[i].to_uppercase().as_str()),
                _ => got.get(i) == Some(&want[i]),
            }
        };
        if got.len() != HEADER.len() || !(0..HEADER.len()).all(same) {
            return Err(format!(
                "{}: data row {n} is {:?}, expected {:?} with city uppercased",
                output.display(),
                got.iter().collect::<Vec<_>>(),
                want.iter().collect::<Vec<_>>()
            ));
        }
    }
    if n != rows {
        return Err(format!("{}: {n} rows, expected {rows}", output.display()));
    }
    Ok(())
}
