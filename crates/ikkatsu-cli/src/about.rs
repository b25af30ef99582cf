//! The commands about the command itself: `version`, `completions` and `man`, all made from
//! the one clap definition in [`crate::args`]; none reads a config or a repository.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use serde::Serialize;

use crate::args::{Cli, CompletionsArgs, ManArgs, VersionArgs};
use crate::exit::{EXIT_COMPLETED, EXIT_FAILED};

/// What `ikkatsu version --json` prints.
#[derive(Debug, Serialize)]
pub struct VersionJson {
    /// `ikkatsu`.
    pub name: &'static str,
    /// The package version.
    pub version: &'static str,
    /// The commit built from (`unknown` outside a git checkout).
    pub commit: &'static str,
    /// The cargo features this binary was built with.
    pub features: Vec<&'static str>,
    /// The storage URL schemes it opens.
    pub storage: Vec<&'static str>,
    /// The job repositories it connects to.
    pub repositories: Vec<&'static str>,
    /// The status stores of `overwrite`.
    pub status_stores: Vec<&'static str>,
}

/// The version, commit and compiled-in backends.
pub fn version_info() -> VersionJson {
    let features: Vec<&'static str> = [
        ("parquet", cfg!(feature = "parquet")),
        ("postgres", cfg!(feature = "postgres")),
        ("mysql", cfg!(feature = "mysql")),
        ("redis", cfg!(feature = "redis")),
        ("ftp", cfg!(feature = "ftp")),
        ("sftp", cfg!(feature = "sftp")),
        ("s3", cfg!(feature = "s3")),
        ("webdav", cfg!(feature = "webdav")),
        ("gcs", cfg!(feature = "gcs")),
        ("azblob", cfg!(feature = "azblob")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let has = |feature: &str| features.contains(&feature);
    let mut storage = vec!["file", "memory"];
    for (feature, schemes) in [
        ("ftp", &["ftp", "ftps"][..]),
        ("sftp", &["sftp"][..]),
        ("s3", &["s3"][..]),
        ("webdav", &["webdav+http", "webdav+https"][..]),
        ("gcs", &["gcs"][..]),
        ("azblob", &["azblob"][..]),
    ] {
        if has(feature) {
            storage.extend_from_slice(schemes);
        }
    }
    let mut repositories = vec!["sqlite"];
    let mut status_stores = vec!["memory", "redb"];
    for (feature, name) in [("postgres", "postgres"), ("mysql", "mysql")] {
        if has(feature) {
            repositories.push(name);
            status_stores.push(name);
        }
    }
    if has("redis") {
        status_stores.extend_from_slice(&["redis", "redis+cluster"]);
    }
    VersionJson {
        name: "ikkatsu",
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("IKKATSU_COMMIT"),
        features,
        storage,
        repositories,
        status_stores,
    }
}

/// `ikkatsu version`.
pub fn version(args: &VersionArgs) -> u8 {
    let info = version_info();
    if args.json {
        match serde_json::to_string_pretty(&info) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                crate::redact::print_error(&format!("cannot print the version: {err}"));
                return EXIT_FAILED;
            }
        }
    } else {
        println!("ikkatsu {} (commit {})", info.version, info.commit);
        println!("features: {}", info.features.join(", "));
        println!("storage: {}", info.storage.join(", "));
        println!("job repositories: {}", info.repositories.join(", "));
        println!("status stores: {}", info.status_stores.join(", "));
    }
    EXIT_COMPLETED
}

/// `ikkatsu completions SHELL`: the completion script on standard output.
pub fn completions(args: &CompletionsArgs) -> u8 {
    let shell: Shell = args.shell;
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "ikkatsu", &mut std::io::stdout());
    EXIT_COMPLETED
}

/// `ikkatsu man [--out-dir DIR]`: `ikkatsu.1` on standard output, or it and one page per
/// command (`ikkatsu-run.1`, ...) written into DIR.
pub fn man(args: &ManArgs) -> u8 {
    let command = Cli::command();
    let result = match &args.out_dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout()),
        Some(dir) => write_pages(command, dir),
    };
    match result {
        Ok(()) => EXIT_COMPLETED,
        Err(err) => {
            let place = args
                .out_dir
                .as_ref()
                .map_or("standard output".to_string(), |d| d.display().to_string());
            crate::redact::print_error(&format!("cannot write the man pages to {place}: {err}"));
            EXIT_FAILED
        }
    }
}

fn write_pages(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut pages = vec![(String::from("ikkatsu"), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("ikkatsu-{}", sub.get_name());
        pages.push((
            name,
            sub.clone().bin_name(format!("ikkatsu {}", sub.get_name())),
        ));
    }
    for (name, page) in pages {
        let mut file = std::fs::File::create(dir.join(format!("{name}.1")))?;
        clap_mangen::Man::new(page).title(name).render(&mut file)?;
    }
    Ok(())
}
