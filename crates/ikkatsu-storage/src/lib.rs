//! # ikkatsu-storage
//!
//! The storage port of ikkatsu: files on local disks, in memory, and (behind features) on
//! remote servers and object stores, all behind one interface built on OpenDAL.
#![deny(missing_docs)]

mod file_info;

pub use file_info::FileInfo;
