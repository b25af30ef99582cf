//! [`open_status_store_read_only`]: a status store opened to be read and never written, for
//! a dry run.

use std::sync::Arc;

use ikkatsu_core::{Error, Result};

use super::{MemoryStatusStore, StatusStore, StatusStoreOptions, StatusStoreUrl, mask_url};

/// Opens the status store at `url` (see [`StatusStoreUrl`]) to read only: nothing is
/// created or written. An embedded store whose file does not exist, or a SQL database
/// without the store's table, has no record, and reads as an empty [`MemoryStatusStore`];
/// an embedded file is opened read-only (its writes refused); SQL migrations are not
/// applied (a schema other than this binary's is refused); Redis is only read by the dry
/// run.
pub async fn open_status_store_read_only(
    url: &str,
    options: StatusStoreOptions,
) -> Result<Arc<dyn StatusStore>> {
    options.validate()?;
    let parsed = StatusStoreUrl::parse(url)?;
    let empty = || -> Arc<dyn StatusStore> { Arc::new(MemoryStatusStore::new(options.clone())) };
    #[allow(unreachable_patterns)]
    match parsed {
        StatusStoreUrl::Memory => Ok(empty()),
        #[cfg(feature = "embedded")]
        StatusStoreUrl::Embedded { path } => {
            match super::EmbeddedStatusStore::open_read_only(path, options.clone()).await? {
                Some(store) => Ok(Arc::new(store)),
                None => Ok(empty()),
            }
        }
        #[cfg(feature = "redis")]
        StatusStoreUrl::Redis { url } => Ok(Arc::new(
            super::RedisStatusStore::connect(&url, options.clone()).await?,
        )),
        #[cfg(feature = "postgres")]
        StatusStoreUrl::Postgres { url } => {
            match super::SqlStatusStore::connect_read_only(&url, options.clone()).await? {
                Some(store) => Ok(Arc::new(store)),
                None => Ok(empty()),
            }
        }
        #[cfg(feature = "mysql")]
        StatusStoreUrl::MySql { url } => {
            match super::SqlStatusStore::connect_read_only(&url, options.clone()).await? {
                Some(store) => Ok(Arc::new(store)),
                None => Ok(empty()),
            }
        }
        other => Err(Error::config(format!(
            "status store URL `{}` needs the `{}` feature of ikkatsu-overwrite, which this build lacks",
            mask_url(url),
            other.feature().unwrap_or("?")
        ))),
    }
}
