//! # ikkatsu-testkit
//!
//! Conformance suites written once and run against every backend of a port: the suite is
//! the specification of the port.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use ikkatsu_core::{JobRepository, MemoryJobRepository};
//!
//! ikkatsu_testkit::repository::run_all(|| async {
//!     Arc::new(MemoryJobRepository::new()) as Arc<dyn JobRepository>
//! })
//! .await;
//! # }
//! ```
#![deny(missing_docs)]

pub mod broker;
pub mod repository;
pub mod status_store;
pub mod storage;
