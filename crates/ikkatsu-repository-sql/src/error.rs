//! The job repository's errors: [`ikkatsu_sql::SqlSite`]'s mapping of sqlx errors, naming the
//! repository.

use ikkatsu_core::{Error, ErrorKind};
use ikkatsu_sql::SqlSite;

pub(crate) use ikkatsu_sql::is_conflict;

/// The repository `describe` (a masked URL) as errors name it.
pub(crate) fn site(describe: &str) -> SqlSite {
    SqlSite::new("job repository", "repository URL", "").described(describe)
}

/// Maps `err`, raised while doing `what` on the repository `repository` (a masked URL), to an
/// [`ErrorKind::Repository`] error (a unique-key violation to [`ErrorKind::AlreadyExists`]),
/// temporary when a retry may succeed.
pub(crate) fn map_sqlx(repository: &str, what: &str, err: sqlx::Error) -> Error {
    site(repository).error(what, err)
}

/// A repository error that is not from the driver (bad stored data, missing row).
pub(crate) fn repository_error(repository: &str, kind: ErrorKind, message: String) -> Error {
    site(repository).fault(kind, message)
}
