//! The run lease of [`SqlStatusStore`]: one row per namespace in `ikkatsu_status_lease`.
//!
//! Taking it: insert the row if there is none (one statement, atomic); otherwise lock the
//! row (`SELECT … FOR UPDATE`), decide, and replace it in the same transaction.

use chrono::Utc;
use ikkatsu_core::Result;

use super::{Pool, SqlStatusStore};
use crate::status_store::lease::{attempt, decide};
use crate::status_store::{Lease, LeaseAttempt};

/// Attempts when the row vanishes between the insert and the lock (released meanwhile) or
/// the database reports a temporary failure (a deadlock between two takers).
const ATTEMPTS: u32 = 5;

impl SqlStatusStore {
    pub(super) async fn sql_acquire_lease(
        &self,
        me: &Lease,
        take_over: Option<&str>,
    ) -> Result<LeaseAttempt> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_acquire_lease(me, take_over).await {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) if tries < ATTEMPTS => {}
                Err(err) if err.is_temporary() && tries < ATTEMPTS => {}
                Ok(None) => {
                    return Err(ikkatsu_core::Error::new(
                        ikkatsu_core::ErrorKind::Repository,
                        format!(
                            "status store {}: the run lease kept changing while it was being taken; try again",
                            self.describe
                        ),
                    ));
                }
                Err(err) => return Err(err),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(tries))).await;
        }
    }

    /// One attempt; `None` when the row vanished after the insert found it.
    async fn try_acquire_lease(
        &self,
        me: &Lease,
        take_over: Option<&str>,
    ) -> Result<Option<LeaseAttempt>> {
        let namespace = self.options.namespace.as_str();
        let json = me.to_json()?;
        let what = "taking the run lease";
        let fail = |err| self.error(what, err);
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let inserted = sqlx::query(
                    "INSERT INTO ikkatsu_status_lease (namespace, token, holder) VALUES ($1, $2, $3) \
                     ON CONFLICT (namespace) DO NOTHING",
                )
                .bind(namespace)
                .bind(&me.token)
                .bind(&json)
                .execute(pool)
                .await
                .map_err(fail)?
                .rows_affected();
                if inserted == 1 {
                    return Ok(Some(LeaseAttempt::Acquired { replaced: None }));
                }
                let mut tx = pool.begin().await.map_err(fail)?;
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT holder FROM ikkatsu_status_lease WHERE namespace = $1 FOR UPDATE",
                )
                .bind(namespace)
                .fetch_optional(&mut *tx)
                .await
                .map_err(fail)?;
                let Some(current) = current else {
                    tx.commit().await.map_err(fail)?;
                    return Ok(None);
                };
                let current = Lease::from_json(&self.describe, &current)?;
                let decision = decide(me, Some(current), take_over, Utc::now());
                if decision.is_ok() {
                    sqlx::query(
                        "UPDATE ikkatsu_status_lease SET token = $2, holder = $3 WHERE namespace = $1",
                    )
                    .bind(namespace)
                    .bind(&me.token)
                    .bind(&json)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
                Ok(Some(attempt(decision)))
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                // `INSERT IGNORE`: 0 rows when the row exists (sqlx asks MySQL for found
                // rows, so an `ON DUPLICATE KEY UPDATE` would count the existing row).
                let inserted = sqlx::query(
                    "INSERT IGNORE INTO ikkatsu_status_lease (namespace, token, holder) VALUES (?, ?, ?)",
                )
                .bind(namespace.as_bytes())
                .bind(&me.token)
                .bind(&json)
                .execute(pool)
                .await
                .map_err(fail)?
                .rows_affected();
                if inserted == 1 {
                    return Ok(Some(LeaseAttempt::Acquired { replaced: None }));
                }
                let mut tx = pool.begin().await.map_err(fail)?;
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT holder FROM ikkatsu_status_lease WHERE namespace = ? FOR UPDATE",
                )
                .bind(namespace.as_bytes())
                .fetch_optional(&mut *tx)
                .await
                .map_err(fail)?;
                let Some(current) = current else {
                    tx.commit().await.map_err(fail)?;
                    return Ok(None);
                };
                let current = Lease::from_json(&self.describe, &current)?;
                let decision = decide(me, Some(current), take_over, Utc::now());
                if decision.is_ok() {
                    sqlx::query(
                        "UPDATE ikkatsu_status_lease SET token = ?, holder = ? WHERE namespace = ?",
                    )
                    .bind(&me.token)
                    .bind(&json)
                    .bind(namespace.as_bytes())
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
                Ok(Some(attempt(decision)))
            }
        }
    }

    pub(super) async fn sql_renew_lease(&self, me: &Lease) -> Result<bool> {
        let namespace = self.options.namespace.as_str();
        let json = me.to_json()?;
        let fail = |err| self.error("renewing the run lease", err);
        let updated = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE ikkatsu_status_lease SET holder = $3 WHERE namespace = $1 AND token = $2",
            )
            .bind(namespace)
            .bind(&me.token)
            .bind(&json)
            .execute(pool)
            .await
            .map_err(fail)?
            .rows_affected(),
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => sqlx::query(
                "UPDATE ikkatsu_status_lease SET holder = ? WHERE namespace = ? AND token = ?",
            )
            .bind(&json)
            .bind(namespace.as_bytes())
            .bind(&me.token)
            .execute(pool)
            .await
            .map_err(fail)?
            .rows_affected(),
        };
        Ok(updated == 1)
    }

    pub(super) async fn sql_release_lease(&self, token: &str) -> Result<()> {
        let namespace = self.options.namespace.as_str();
        let fail = |err| self.error("releasing the run lease", err);
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM ikkatsu_status_lease WHERE namespace = $1 AND token = $2")
                    .bind(namespace)
                    .bind(token)
                    .execute(pool)
                    .await
                    .map_err(fail)?;
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                sqlx::query("DELETE FROM ikkatsu_status_lease WHERE namespace = ? AND token = ?")
                    .bind(namespace.as_bytes())
                    .bind(token)
                    .execute(pool)
                    .await
                    .map_err(fail)?;
            }
        }
        Ok(())
    }

    pub(super) async fn sql_lease(&self) -> Result<Option<Lease>> {
        let namespace = self.options.namespace.as_str();
        let fail = |err| self.error("reading the run lease", err);
        let holder: Option<String> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                sqlx::query_scalar("SELECT holder FROM ikkatsu_status_lease WHERE namespace = $1")
                    .bind(namespace)
                    .fetch_optional(pool)
                    .await
                    .map_err(fail)?
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                sqlx::query_scalar("SELECT holder FROM ikkatsu_status_lease WHERE namespace = ?")
                    .bind(namespace.as_bytes())
                    .fetch_optional(pool)
                    .await
                    .map_err(fail)?
            }
        };
        holder
            .map(|text| Lease::from_json(&self.describe, &text))
            .transpose()
    }
}
