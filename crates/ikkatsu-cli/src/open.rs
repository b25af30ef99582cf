//! Opening what the commands act on: the job repository (created, existing or read-only)
//! and job files.

use std::path::Path;
use std::sync::Arc;

use ikkatsu_config::JobDefinition;
use ikkatsu_core::{Error, ErrorKind, JobRepository};

/// The job repository for a command that writes (`run`, `migrate`): created when missing,
/// its migrations applied.
pub(crate) async fn repository(url: &str) -> Result<Arc<dyn JobRepository>, Error> {
    ikkatsu_repository_sql::connect(url).await
}

/// The job repository for a command that acts on recorded executions (`restart`, `stop`,
/// `abandon`, `recover`): it must exist (a SQLite file or the tables of a database are never
/// created for them); its pending migrations are applied.
pub(crate) async fn existing_repository(url: &str) -> Result<Arc<dyn JobRepository>, Error> {
    require_sqlite_file(url)?;
    match ikkatsu_repository_sql::connect_existing(url).await {
        Ok(repository) => Ok(repository),
        // A schema older than the binary is upgraded (one newer is refused by `connect`).
        Err(err) if err.kind() == ErrorKind::Config => ikkatsu_repository_sql::connect(url).await,
        Err(err) => Err(err),
    }
}

/// The job repository for a command that only reads (`executions`, `status`): nothing is
/// created or migrated, and a schema other than this binary's is refused.
pub(crate) async fn read_only_repository(url: &str) -> Result<Arc<dyn JobRepository>, Error> {
    require_sqlite_file(url)?;
    ikkatsu_repository_sql::connect_existing(url).await
}

/// Refuses a SQLite repository whose file does not exist, saying how to get one.
pub(crate) fn require_sqlite_file(url: &str) -> Result<(), Error> {
    let path = match ikkatsu_repository_sql::url::parse(url)? {
        ikkatsu_repository_sql::RepositoryUrl::Sqlite { path: Some(path) } => path,
        _ => return Ok(()),
    };
    let file = Path::new(&path);
    if file.exists() {
        return Ok(());
    }
    let (shown, hint) = if file.is_absolute() {
        (path.clone(), "run a job with it first")
    } else if path.starts_with("./") || path.starts_with("../") {
        (path.clone(), "run a job here")
    } else {
        (format!("./{path}"), "run a job here")
    };
    Err(Error::new(
        ErrorKind::NotFound,
        format!("no job repository at {shown} ({hint}, or pass --repository / IKKATSU_REPOSITORY)"),
    ))
}

/// Reads and parses a job file.
pub(crate) fn load_definition(path: &Path) -> Result<JobDefinition, Error> {
    JobDefinition::from_path(path).map_err(Error::from)
}
