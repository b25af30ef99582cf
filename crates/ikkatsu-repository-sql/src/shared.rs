//! The part of the [`JobRepository`](ikkatsu_core::JobRepository) implementation that is the
//! same for every backend, written once as a macro expanded in each backend module.
//!
//! A backend module provides: `type Db`, a `sql` module with the statements (same bind
//! order everywhere), its repository type through `repository_type!` (given the bodies of
//! `begin_create`, the transaction that serializes launches of one instance, and
//! `insert_id`, which runs an `INSERT` and returns the new id), a constructor that connects
//! with `ikkatsu-sql` and three inherent methods on the repository type —
//! `store_job_execution`, `store_heartbeat` and `store_step_execution` — for the statements
//! whose results the dialects return differently (`returning_stores!` writes them for the
//! dialects with `RETURNING`).

/// The repository type of a backend (`$repo`, documented by the attributes given): its
/// pool, masked URL and statement counter; the migrator of its embedded migrations
/// (`$migrations`, history in [`crate::MIGRATIONS_TABLE`]); `with_pool`, which makes one
/// from a connected pool and applies the pending migrations; and the two functions whose
/// bodies are the dialect's: `begin_create($pool)`, the transaction that serializes launches
/// of one instance (documented by the attributes before it), and `insert_id($executor,
/// $query)`, which runs an `INSERT` and returns the new id.
macro_rules! repository_type {
    (
        $(#[$attr:meta])* $repo:ident, $migrations:literal,
        $(#[$begin_attr:meta])* begin_create($pool:ident) $begin:block,
        insert_id($executor:ident, $query:ident) $insert:block $(,)?
    ) => {
        $(#[$begin_attr])*
        async fn begin_create(
            $pool: &::sqlx::Pool<Db>,
        ) -> ::std::result::Result<::sqlx::Transaction<'static, Db>, ::sqlx::Error> $begin

        async fn insert_id<'c, E>(
            $executor: E,
            $query: ::sqlx::query::Query<'_, Db, <Db as ::sqlx::Database>::Arguments>,
        ) -> ::std::result::Result<i64, ::sqlx::Error>
        where
            E: ::sqlx::Executor<'c, Database = Db>,
        $insert

        $(#[$attr])*
        pub struct $repo {
            pool: ::sqlx::Pool<Db>,
            describe: String,
            statements: ::std::sync::atomic::AtomicU64,
        }

        fn migrator() -> ::sqlx::migrate::Migrator {
            let mut migrator = ::sqlx::migrate!($migrations);
            migrator.dangerous_set_table_name($crate::MIGRATIONS_TABLE);
            migrator
        }

        impl $repo {
            /// The repository in the database of `pool`, shown as `describe`, with its
            /// migrations applied.
            async fn with_pool(
                pool: ::sqlx::Pool<Db>,
                describe: String,
            ) -> ::ikkatsu_core::Result<Self> {
                let repository = $repo {
                    pool,
                    describe,
                    statements: ::std::sync::atomic::AtomicU64::new(0),
                };
                repository.migrate().await?;
                Ok(repository)
            }

            /// The repository in the database of `pool`, shown as `describe`, for reading
            /// only: nothing is created or migrated. Its schema must be the binary's: a
            /// database without the tables is [`ErrorKind::NotFound`](::ikkatsu_core::ErrorKind::NotFound),
            /// one with migrations pending or a newer one is [`ErrorKind::Config`](::ikkatsu_core::ErrorKind::Config).
            async fn existing_with_pool(
                pool: ::sqlx::Pool<Db>,
                describe: String,
            ) -> ::ikkatsu_core::Result<Self> {
                let site = $crate::error::site(&describe);
                let state = ::ikkatsu_sql::schema_state(
                    &site,
                    &migrator(),
                    $crate::MIGRATIONS_TABLE,
                    &pool,
                )
                .await;
                let state = match state {
                    Ok(state) => state,
                    Err(err) => {
                        pool.close().await;
                        return Err(err);
                    }
                };
                let refusal = match state {
                    ::ikkatsu_sql::SchemaState::Current => None,
                    ::ikkatsu_sql::SchemaState::Missing => Some(site.fault(
                        ::ikkatsu_core::ErrorKind::NotFound,
                        "has no job repository tables (no job was ever run with it): run a job with it, or create them with `ikkatsu migrate`",
                    )),
                    ::ikkatsu_sql::SchemaState::Behind { applied, latest } => Some(site.fault(
                        ::ikkatsu_core::ErrorKind::Config,
                        format!(
                            "its schema is older than this ikkatsu: migration {} is the latest applied there, this binary needs migrations up to {latest}; upgrade it with `ikkatsu migrate`",
                            applied.map_or_else(|| "none".to_string(), |v| v.to_string())
                        ),
                    )),
                };
                if let Some(err) = refusal {
                    pool.close().await;
                    return Err(err);
                }
                Ok($repo {
                    pool,
                    describe,
                    statements: ::std::sync::atomic::AtomicU64::new(0),
                })
            }
        }
    };
}

pub(crate) use repository_type;

/// Attempts of a launch transaction that lost a deadlock or serialization conflict.
pub(crate) const CREATE_ATTEMPTS: u32 = 8;

macro_rules! job_repository_impl {
    ($repo:ident) => {
        impl $repo {
            /// The number of SQL statements this repository has executed (transaction
            /// control included; connection setup and migrations excluded).
            pub fn statements_executed(&self) -> u64 {
                self.statements.load(::std::sync::atomic::Ordering::Relaxed)
            }

            /// The connection pool.
            pub fn pool(&self) -> &::sqlx::Pool<Db> {
                &self.pool
            }

            /// Applies the embedded migrations that are not applied yet.
            ///
            /// Several processes may start on a fresh database at once (SQLite has no
            /// migration lock): a failed attempt is retried, and finds the migrations applied
            /// by the other process.
            pub async fn migrate(&self) -> ::ikkatsu_core::Result<()> {
                let site = $crate::error::site(&self.describe);
                ::ikkatsu_sql::migrate(&site, &migrator(), &self.pool).await
            }

            /// Closes the pool; waits for checked-out connections to be returned.
            pub async fn close(&self) {
                self.pool.close().await;
            }

            fn counted(&self, statements: u64) {
                self.statements
                    .fetch_add(statements, ::std::sync::atomic::Ordering::Relaxed);
            }

            fn sql_error(&self, what: &str, err: ::sqlx::Error) -> ::ikkatsu_core::Error {
                $crate::error::map_sqlx(&self.describe, what, err)
            }

            fn not_found(&self, what: &str, id: i64) -> ::ikkatsu_core::Error {
                $crate::error::repository_error(
                    &self.describe,
                    ::ikkatsu_core::ErrorKind::NotFound,
                    format!("{what} {id} does not exist"),
                )
            }

            /// One attempt of [`JobRepository::create_job_execution`]: the outer error is a
            /// database failure (retried when it is a conflict), the inner one a refusal.
            async fn try_create(
                &self,
                new: &::ikkatsu_core::repository::NewJobExecution<'_>,
                key: &str,
                parameters_json: &str,
            ) -> ::std::result::Result<
                ::ikkatsu_core::Result<::ikkatsu_core::JobExecution>,
                ::sqlx::Error,
            > {
                self.counted(1);
                let mut tx = begin_create(&self.pool).await?;
                self.counted(1);
                ::sqlx::query(sql::INSERT_INSTANCE)
                    .bind(new.job_name)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                self.counted(1);
                let row = ::sqlx::query(sql::LOCK_INSTANCE)
                    .bind(new.job_name)
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                let instance = match $crate::rows::job_instance(&self.describe, &row) {
                    Ok(instance) => instance,
                    Err(err) => return Ok(Err(err)),
                };
                self.counted(1);
                let rows = ::sqlx::query(sql::LAST_AND_RUNNING_EXECUTIONS)
                    .bind(instance.id)
                    .bind(instance.id)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut executions = Vec::with_capacity(rows.len());
                for row in &rows {
                    match $crate::rows::job_execution(&self.describe, row) {
                        Ok(execution) => executions.push(execution),
                        Err(err) => return Ok(Err(err)),
                    }
                }
                let last = executions.iter().max_by_key(|e| e.id);
                let running = executions.iter().find(|e| e.status.is_running());
                if let Err(refusal) = ::ikkatsu_core::repository::check_can_create(
                    new.job_name,
                    !new.parameters.identifying().is_empty(),
                    last,
                    running,
                ) {
                    self.counted(1);
                    tx.rollback().await?;
                    return Ok(Err(refusal));
                }
                let mut execution =
                    ::ikkatsu_core::JobExecution::new(&instance, new.parameters.clone());
                let now = $crate::rows::now();
                execution.create_time = now;
                execution.last_updated = now;
                execution.owner = Some(new.owner.to_string());
                execution.job_configuration_location =
                    new.job_configuration_location.map(str::to_string);
                if let Some(last) = last {
                    execution.execution_context = last.execution_context.clone();
                }
                self.counted(1);
                execution.id = insert_id(
                    &mut *tx,
                    ::sqlx::query(sql::INSERT_EXECUTION)
                        .bind(instance.id)
                        .bind(parameters_json)
                        .bind(execution.status.as_str())
                        .bind(&execution.exit_status.exit_code)
                        .bind(&execution.exit_status.description)
                        .bind(execution.create_time)
                        .bind(execution.start_time)
                        .bind(execution.end_time)
                        .bind(execution.last_updated)
                        .bind(&execution.owner)
                        .bind(&execution.job_configuration_location)
                        .bind(execution.execution_context.to_json())
                        .bind(execution.version),
                )
                .await?;
                self.counted(1);
                tx.commit().await?;
                Ok(Ok(execution))
            }

            async fn fetch_executions(
                &self,
                what: &str,
                query: ::sqlx::query::Query<'_, Db, <Db as ::sqlx::Database>::Arguments>,
            ) -> ::ikkatsu_core::Result<Vec<::ikkatsu_core::JobExecution>> {
                self.counted(1);
                let rows = query
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|err| self.sql_error(what, err))?;
                rows.iter()
                    .map(|row| $crate::rows::job_execution(&self.describe, row))
                    .collect()
            }
        }

        #[::async_trait::async_trait]
        impl ::ikkatsu_core::JobRepository for $repo {
            fn describe(&self) -> String {
                self.describe.clone()
            }

            async fn create_job_execution(
                &self,
                new: ::ikkatsu_core::repository::NewJobExecution<'_>,
            ) -> ::ikkatsu_core::Result<::ikkatsu_core::JobExecution> {
                let key = new.parameters.job_key();
                let parameters_json = ::serde_json::to_string(new.parameters)?;
                let mut attempt = 1;
                loop {
                    match self.try_create(&new, &key, &parameters_json).await {
                        Ok(outcome) => return outcome,
                        Err(err)
                            if attempt < $crate::shared::CREATE_ATTEMPTS
                                && $crate::error::is_conflict(&err) =>
                        {
                            ::tracing::debug!(attempt, error = %err, "launch transaction conflicted; retrying");
                            ::tokio::time::sleep(::std::time::Duration::from_millis(
                                5 * u64::from(attempt),
                            ))
                            .await;
                            attempt += 1;
                        }
                        Err(err) => {
                            return Err(self.sql_error(
                                &format!("creating an execution of job `{}`", new.job_name),
                                err,
                            ));
                        }
                    }
                }
            }

            async fn update_job_execution(
                &self,
                execution: &mut ::ikkatsu_core::JobExecution,
            ) -> ::ikkatsu_core::Result<()> {
                let last_updated = $crate::rows::now();
                let (status, version) = self.store_job_execution(execution, last_updated).await?;
                execution.status = status;
                execution.version = version;
                execution.last_updated = last_updated;
                Ok(())
            }

            async fn heartbeat(
                &self,
                job_execution_id: i64,
            ) -> ::ikkatsu_core::Result<::ikkatsu_core::BatchStatus> {
                self.store_heartbeat(job_execution_id, $crate::rows::now()).await
            }

            async fn heartbeat_step_execution(
                &self,
                step_execution_id: i64,
            ) -> ::ikkatsu_core::Result<()> {
                self.counted(1);
                ::sqlx::query(sql::STEP_HEARTBEAT)
                    .bind($crate::rows::now())
                    .bind(step_execution_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|err| {
                        self.sql_error(
                            &format!("heartbeat of step execution {step_execution_id}"),
                            err,
                        )
                    })?;
                Ok(())
            }

            async fn add_step_execution(
                &self,
                execution: &mut ::ikkatsu_core::StepExecution,
            ) -> ::ikkatsu_core::Result<()> {
                let last_updated = $crate::rows::now();
                let counts = execution.counts;
                self.counted(1);
                let id = insert_id(
                    &self.pool,
                    ::sqlx::query(sql::INSERT_STEP)
                        .bind(execution.job_execution_id)
                        .bind(&execution.step_name)
                        .bind(execution.status.as_str())
                        .bind(&execution.exit_status.exit_code)
                        .bind(&execution.exit_status.description)
                        .bind($crate::rows::stored_count(counts.read_count))
                        .bind($crate::rows::stored_count(counts.write_count))
                        .bind($crate::rows::stored_count(counts.filter_count))
                        .bind($crate::rows::stored_count(counts.read_skip_count))
                        .bind($crate::rows::stored_count(counts.process_skip_count))
                        .bind($crate::rows::stored_count(counts.write_skip_count))
                        .bind($crate::rows::stored_count(counts.commit_count))
                        .bind($crate::rows::stored_count(counts.rollback_count))
                        .bind(execution.start_time)
                        .bind(execution.end_time)
                        .bind(last_updated)
                        .bind(execution.execution_context.to_json())
                        .bind(execution.version),
                )
                .await
                .map_err(|err| {
                    self.sql_error(
                        &format!(
                            "adding step `{}` to job execution {}",
                            execution.step_name, execution.job_execution_id
                        ),
                        err,
                    )
                })?;
                execution.id = id;
                execution.last_updated = last_updated;
                Ok(())
            }

            async fn update_step_execution(
                &self,
                execution: &mut ::ikkatsu_core::StepExecution,
            ) -> ::ikkatsu_core::Result<()> {
                let last_updated = $crate::rows::now();
                execution.version = self.store_step_execution(execution, last_updated).await?;
                execution.last_updated = last_updated;
                Ok(())
            }

            async fn job_instance(
                &self,
                instance_id: i64,
            ) -> ::ikkatsu_core::Result<Option<::ikkatsu_core::JobInstance>> {
                self.counted(1);
                let row = ::sqlx::query(sql::JOB_INSTANCE)
                    .bind(instance_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|err| self.sql_error(&format!("reading job instance {instance_id}"), err))?;
                row.map(|row| $crate::rows::job_instance(&self.describe, &row))
                    .transpose()
            }

            async fn find_job_instance(
                &self,
                job_name: &str,
                job_key: &str,
            ) -> ::ikkatsu_core::Result<Option<::ikkatsu_core::JobInstance>> {
                self.counted(1);
                let row = ::sqlx::query(sql::FIND_JOB_INSTANCE)
                    .bind(job_name)
                    .bind(job_key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|err| {
                        self.sql_error(&format!("finding the instance of job `{job_name}`"), err)
                    })?;
                row.map(|row| $crate::rows::job_instance(&self.describe, &row))
                    .transpose()
            }

            async fn job_execution(
                &self,
                job_execution_id: i64,
            ) -> ::ikkatsu_core::Result<Option<::ikkatsu_core::JobExecution>> {
                let mut found = self
                    .fetch_executions(
                        &format!("reading job execution {job_execution_id}"),
                        ::sqlx::query(sql::JOB_EXECUTION).bind(job_execution_id),
                    )
                    .await?;
                Ok(found.pop())
            }

            async fn job_executions(
                &self,
                instance_id: i64,
            ) -> ::ikkatsu_core::Result<Vec<::ikkatsu_core::JobExecution>> {
                self.fetch_executions(
                    &format!("reading the executions of job instance {instance_id}"),
                    ::sqlx::query(sql::JOB_EXECUTIONS).bind(instance_id),
                )
                .await
            }

            async fn find_job_executions(
                &self,
                query: &::ikkatsu_core::repository::ExecutionQuery,
            ) -> ::ikkatsu_core::Result<Vec<::ikkatsu_core::JobExecution>> {
                let status = query.status.map(|s| s.as_str());
                let limit = query
                    .limit
                    .map_or(i64::MAX, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
                self.fetch_executions(
                    "searching job executions",
                    ::sqlx::query(sql::FIND_JOB_EXECUTIONS)
                        .bind(query.job_name.as_deref())
                        .bind(query.job_name.as_deref())
                        .bind(status)
                        .bind(status)
                        .bind(limit),
                )
                .await
            }

            async fn step_executions(
                &self,
                job_execution_id: i64,
            ) -> ::ikkatsu_core::Result<Vec<::ikkatsu_core::StepExecution>> {
                self.counted(1);
                let rows = ::sqlx::query(sql::STEP_EXECUTIONS)
                    .bind(job_execution_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|err| {
                        self.sql_error(
                            &format!("reading the steps of job execution {job_execution_id}"),
                            err,
                        )
                    })?;
                rows.iter()
                    .map(|row| $crate::rows::step_execution(&self.describe, row))
                    .collect()
            }

            async fn last_step_execution(
                &self,
                instance_id: i64,
                step_name: &str,
            ) -> ::ikkatsu_core::Result<Option<::ikkatsu_core::StepExecution>> {
                self.counted(1);
                let row = ::sqlx::query(sql::LAST_STEP_EXECUTION)
                    .bind(instance_id)
                    .bind(step_name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|err| {
                        self.sql_error(
                            &format!(
                                "reading the last execution of step `{step_name}` of job instance {instance_id}"
                            ),
                            err,
                        )
                    })?;
                row.map(|row| $crate::rows::step_execution(&self.describe, &row))
                    .transpose()
            }

            async fn step_execution_count(
                &self,
                instance_id: i64,
                step_name: &str,
            ) -> ::ikkatsu_core::Result<u64> {
                self.counted(1);
                let count: i64 = ::sqlx::query_scalar(sql::STEP_EXECUTION_COUNT)
                    .bind(instance_id)
                    .bind(step_name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|err| {
                        self.sql_error(
                            &format!(
                                "counting the executions of step `{step_name}` of job instance {instance_id}"
                            ),
                            err,
                        )
                    })?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn job_names(&self) -> ::ikkatsu_core::Result<Vec<String>> {
                self.counted(1);
                let mut names: Vec<String> = ::sqlx::query_scalar(sql::JOB_NAMES)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|err| self.sql_error("listing job names", err))?;
                // Sorted here, not by the database's collation, so that all backends agree.
                names.sort();
                Ok(names)
            }
        }
    };
}

pub(crate) use job_repository_impl;

/// The three `store_*` methods for dialects whose `UPDATE … RETURNING` gives back the stored
/// status and version in the same statement (SQLite and PostgreSQL).
macro_rules! returning_stores {
    () => {
        async fn store_job_execution(
            &self,
            execution: &JobExecution,
            last_updated: DateTime<Utc>,
        ) -> Result<(BatchStatus, i64)> {
            self.counted(1);
            let row = $crate::shared::bind_job_update!(
                sqlx::query(sql::UPDATE_EXECUTION),
                execution,
                last_updated
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(|err| {
                self.sql_error(&format!("updating job execution {}", execution.id), err)
            })?
            .ok_or_else(|| self.not_found("job execution", execution.id))?;
            let status: String = row
                .try_get("status")
                .map_err(|err| self.sql_error("reading the stored status", err))?;
            let version: i64 = row
                .try_get("version")
                .map_err(|err| self.sql_error("reading the stored version", err))?;
            Ok((status.parse()?, version))
        }

        async fn store_heartbeat(
            &self,
            job_execution_id: i64,
            now: DateTime<Utc>,
        ) -> Result<BatchStatus> {
            self.counted(1);
            let status: Option<String> = sqlx::query_scalar(sql::HEARTBEAT)
                .bind(now)
                .bind(job_execution_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|err| {
                    self.sql_error(
                        &format!("heartbeat of job execution {job_execution_id}"),
                        err,
                    )
                })?;
            status
                .ok_or_else(|| self.not_found("job execution", job_execution_id))?
                .parse()
        }

        async fn store_step_execution(
            &self,
            execution: &StepExecution,
            last_updated: DateTime<Utc>,
        ) -> Result<i64> {
            self.counted(1);
            let update = $crate::shared::bind_step_update!(
                sqlx::query_scalar(sql::UPDATE_STEP),
                execution,
                last_updated
            )
            .fetch_optional(&self.pool);
            let version: Option<i64> = ::ikkatsu_sql::observed(
                <Db as ::sqlx::Database>::NAME,
                sql::UPDATE_STEP,
                update,
                |found: &Option<i64>| u64::from(found.is_some()),
            )
            .await
            .map_err(|err| {
                self.sql_error(&format!("updating step execution {}", execution.id), err)
            })?;
            version.ok_or_else(|| self.not_found("step execution", execution.id))
        }
    };
}

pub(crate) use returning_stores;

/// Binds the values of a job execution update (see `update_execution_set`), then the id.
macro_rules! bind_job_update {
    ($query:expr, $execution:expr, $last_updated:expr) => {
        $query
            .bind($execution.status.as_str())
            .bind($execution.status.as_str())
            .bind(&$execution.exit_status.exit_code)
            .bind(&$execution.exit_status.description)
            .bind($execution.start_time)
            .bind($execution.end_time)
            .bind($last_updated)
            .bind(&$execution.owner)
            .bind(&$execution.job_configuration_location)
            .bind($execution.execution_context.to_json())
            .bind($execution.id)
    };
}

/// Binds the values of a step execution update (see `update_step_set`), then the id.
macro_rules! bind_step_update {
    ($query:expr, $execution:expr, $last_updated:expr) => {
        $query
            .bind($execution.status.as_str())
            .bind(&$execution.exit_status.exit_code)
            .bind(&$execution.exit_status.description)
            .bind($crate::rows::stored_count($execution.counts.read_count))
            .bind($crate::rows::stored_count($execution.counts.write_count))
            .bind($crate::rows::stored_count($execution.counts.filter_count))
            .bind($crate::rows::stored_count(
                $execution.counts.read_skip_count,
            ))
            .bind($crate::rows::stored_count(
                $execution.counts.process_skip_count,
            ))
            .bind($crate::rows::stored_count(
                $execution.counts.write_skip_count,
            ))
            .bind($crate::rows::stored_count($execution.counts.commit_count))
            .bind($crate::rows::stored_count($execution.counts.rollback_count))
            .bind($execution.start_time)
            .bind($execution.end_time)
            .bind($last_updated)
            .bind($execution.execution_context.to_json())
            .bind($execution.id)
    };
}

pub(crate) use {bind_job_update, bind_step_update};
