//! # ikkatsu-storage
//!
//! The storage port of ikkatsu: files on local disks, in memory, on servers (FTP, FTPS, SFTP,
//! WebDAV) and in object stores (S3 and compatibles, Google Cloud Storage, Azure Blob), all
//! behind one interface built on OpenDAL. Each remote backend is a cargo feature (`ftp`,
//! `sftp`, `s3`, `webdav`, `gcs`, `azblob`).
//!
//! * [`Storage`] is opened from a URL (`file:///data`, a plain path, `memory:`,
//!   `sftp://user@host/dir?key-file=…`, `s3://bucket/prefix?region=…`, ...) or a
//!   [`StorageConnection`] (a URL with options beside it, as in the application config) and
//!   offers stat, read (whole or streamed), write (bytes, a stream, or streamed from a local
//!   file), delete, exists and a conditional [`Storage::write_if_unchanged`] that refuses to
//!   clobber a file changed since it was read ([`ikkatsu_core::ErrorKind::Conflict`]).
//! * [`Storage::walk`] streams every file that [`WalkOptions`] keep (rclone's filter rules,
//!   size and age limits, depth, hidden names, symbolic links with loop detection) in flat
//!   memory. [`PathGlobs`] matches shell-style globs on whole paths.
//! * [`validate_relative_path`] is the rule every name from a listing passes before it is
//!   joined with a local path.
//! * [`StorageBackend`] is a backend of the program's own: [`Storage::from_backend`] serves
//!   it as a `Storage`, and [`register_scheme`] gives it a URL scheme that job files and
//!   the application config can name.
//!
//! Design decision: every backend is an OpenDAL operator wrapped in the same layer stack
//! (timeout, retry of temporary errors, concurrency limit, metrics, logging), built in one
//! place, so a new backend is one module under `backend/` and one line in its registry
//! (`BACKENDS`: its schemes, cargo feature, what the host part of its URLs names and how it
//! opens; the "not part of this build" message and the URL table of `docs/storage.md` follow
//! from it). The local file system gets its own walker because reading directories
//! directly is much faster than listing them through a generic interface.
//!
//! # Example
//!
//! ```
//! use futures::TryStreamExt;
//! use ikkatsu_storage::{Storage, WalkOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ikkatsu_core::Result<()> {
//! let storage = Storage::open("memory:")?;
//! storage.write("in/a.csv", "id\n1\n").await?;
//! storage.write("in/b.txt", "hello").await?;
//!
//! let csv: Vec<_> = storage
//!     .walk(WalkOptions::new().include("*.csv"))?
//!     .try_collect()
//!     .await?;
//! assert_eq!(csv.len(), 1);
//! assert_eq!(csv[0].path, "in/a.csv");
//! assert_eq!(storage.read("in/a.csv").await?.as_ref(), b"id\n1\n");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod backend;
mod connection;
mod error;
mod file_info;
mod filter;
mod layers;
mod local;
mod local_walk;
mod objects;
mod path;
mod settings;
mod storage;
mod tree;
mod url;
mod walk;

pub use backend::custom::StorageBackend;
pub use backend::register_scheme;
pub use connection::StorageConnection;
pub use file_info::{FileInfo, LocalStamp};
pub use filter::{ByteSize, FileAge, PathFilter, PathGlobs, WalkCounts, WalkOptions};
pub use layers::StorageOptions;
pub use local::{LinkTarget, LocalFiles, Replacement};
pub use path::{join_local, validate_relative_path};
pub use storage::{Capabilities, ConditionalWrite, Storage};
pub use url::mask_secrets;
