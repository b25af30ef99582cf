//! Rough throughput of a status store: `cargo run --release --example status_throughput
//! --all-features -- URL [FILES]`. Prints one JSON line.

use std::time::Instant;

use ikkatsu_overwrite::{StatusStoreOptions, open_status_store};
use ikkatsu_storage::FileInfo;

#[tokio::main]
async fn main() -> ikkatsu_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "memory:".to_string());
    let files: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let namespace = format!("bench-{}", std::process::id());
    let store = open_status_store(&url, StatusStoreOptions::new(namespace)).await?;

    let started = Instant::now();
    let mut needed = 0;
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..files {
        batch.push(FileInfo::new(format!("dir{}/file-{i}.dat", i % 100), i));
        if batch.len() == 1_000 || i + 1 == files {
            needed += store
                .needs_processing(std::mem::take(&mut batch))
                .await?
                .len();
        }
    }
    let lookup = started.elapsed().as_secs_f64();

    let reports = files.min(2_000);
    let started = Instant::now();
    for i in 0..reports {
        let f = FileInfo::new(format!("dir{}/file-{i}.dat", i % 100), i);
        store.report_done(&f, &f).await?;
    }
    let report = started.elapsed().as_secs_f64();
    store.clear().await?;
    store.close().await?;
    println!(
        "{{\"store\":\"{}\",\"files\":{files},\"needed\":{needed},\"lookup_keys_per_s\":{:.0},\"reports\":{reports},\"reports_per_s\":{:.0}}}",
        store.describe(),
        files as f64 / lookup,
        reports as f64 / report
    );
    Ok(())
}
