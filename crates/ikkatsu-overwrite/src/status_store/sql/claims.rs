//! Cooperating runs on [`SqlStatusStore`]: `ikkatsu_status_run` (one row per run, with its
//! expiry) and `ikkatsu_status_claim` (one row per claimed file).
//!
//! A batch is claimed in one transaction: the existing claims of its paths are locked
//! (`SELECT … FOR UPDATE`, with their runs' expiry), those of expired runs are taken over,
//! and the unclaimed paths are inserted (`ON CONFLICT DO NOTHING` / `INSERT IGNORE`: a run
//! inserting the same path at the same moment wins it). Recording done files deletes their
//! claims where the token is still this run's and records only those, in one transaction.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use ikkatsu_core::Result;
use ikkatsu_storage::FileInfo;
use sqlx::Row;

use super::done::DONE_ROWS_PER_STATEMENT;
use super::rows::{decode_info, encode_info};
use super::{Pool, SqlStatusStore};
use crate::status_store::{Claimed, Lease};

/// Attempts of a claim that fails on a temporary error (a deadlock between claimers).
const ATTEMPTS: u32 = 5;

/// An existing claim: its run's token, the file as claimed, its run's expiry (none: the
/// run is not registered any more).
type Existing = HashMap<String, (String, String, Option<i64>)>;

impl SqlStatusStore {
    pub(super) async fn sql_join_run(&self, me: &Lease, renew: bool) -> Result<bool> {
        let namespace = self.options.namespace.as_str();
        let holder = me.to_json()?;
        let expires = me.expires().timestamp_millis();
        let fail = |err| self.error("registering the run", err);
        let changed = match (&self.pool, renew) {
            #[cfg(feature = "postgres")]
            (Pool::Postgres(pool), false) => sqlx::query(
                "INSERT INTO ikkatsu_status_run (namespace, token, holder, expires_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (namespace, token) DO UPDATE SET holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms",
            )
            .bind(namespace)
            .bind(&me.token)
            .bind(&holder)
            .bind(expires)
            .execute(pool)
            .await
            .map_err(fail)?
            .rows_affected(),
            #[cfg(feature = "postgres")]
            (Pool::Postgres(pool), true) => sqlx::query(
                "UPDATE ikkatsu_status_run SET holder = $3, expires_ms = $4 WHERE namespace = $1 AND token = $2",
            )
            .bind(namespace)
            .bind(&me.token)
            .bind(&holder)
            .bind(expires)
            .execute(pool)
            .await
            .map_err(fail)?
            .rows_affected(),
            #[cfg(feature = "mysql")]
            (Pool::MySql(pool), false) => sqlx::query(
                "INSERT INTO ikkatsu_status_run (namespace, token, holder, expires_ms) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE holder = VALUES(holder), expires_ms = VALUES(expires_ms)",
            )
            .bind(namespace.as_bytes())
            .bind(me.token.as_bytes())
            .bind(&holder)
            .bind(expires)
            .execute(pool)
            .await
            .map_err(fail)?
            .rows_affected(),
            #[cfg(feature = "mysql")]
            (Pool::MySql(pool), true) => sqlx::query(
                "UPDATE ikkatsu_status_run SET holder = ?, expires_ms = ? WHERE namespace = ? AND token = ?",
            )
            .bind(&holder)
            .bind(expires)
            .bind(namespace.as_bytes())
            .bind(me.token.as_bytes())
            .execute(pool)
            .await
            .map_err(fail)?
            .rows_affected(),
        };
        Ok(changed > 0)
    }

    pub(super) async fn sql_runs(&self) -> Result<Vec<Lease>> {
        let namespace = self.options.namespace.as_str();
        let fail = |err| self.error("listing the runs", err);
        let holders: Vec<String> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                sqlx::query_scalar("SELECT holder FROM ikkatsu_status_run WHERE namespace = $1")
                    .bind(namespace)
                    .fetch_all(pool)
                    .await
                    .map_err(fail)?
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                sqlx::query_scalar("SELECT holder FROM ikkatsu_status_run WHERE namespace = ?")
                    .bind(namespace.as_bytes())
                    .fetch_all(pool)
                    .await
                    .map_err(fail)?
            }
        };
        holders
            .iter()
            .map(|text| Lease::from_json(&self.describe, text))
            .collect()
    }

    pub(super) async fn sql_leave_run(&self, token: &str) -> Result<()> {
        let namespace = self.options.namespace.as_str();
        let fail = |err| self.error("unregistering the run", err);
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(fail)?;
                for table in ["ikkatsu_status_claim", "ikkatsu_status_run"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE namespace = $1 AND token = $2"
                    )))
                    .bind(namespace)
                    .bind(token)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let mut tx = pool.begin().await.map_err(fail)?;
                for table in ["ikkatsu_status_claim", "ikkatsu_status_run"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE namespace = ? AND token = ?"
                    )))
                    .bind(namespace.as_bytes())
                    .bind(token.as_bytes())
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
            }
        }
        Ok(())
    }

    pub(super) async fn sql_claim(&self, me: &Lease, files: Vec<FileInfo>) -> Result<Vec<Claimed>> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_claim(me, &files).await {
                Err(err) if err.is_temporary() && tries < ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(tries)))
                        .await;
                }
                other => return other,
            }
        }
    }

    async fn try_claim(&self, me: &Lease, files: &[FileInfo]) -> Result<Vec<Claimed>> {
        let namespace = self.options.namespace.as_str();
        let now = Utc::now().timestamp_millis();
        let fail = |err| self.error("claiming files", err);
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let mut claimed_json = HashMap::new();
        for file in files {
            claimed_json.insert(file.path.as_str(), encode_info(file)?);
        }
        // Decides from the existing claims: the paths to insert, those taken over.
        let decide = |existing: &Existing| {
            let mut insert = Vec::new();
            let mut take = Vec::new();
            let mut mine = HashSet::new();
            for file in files {
                match existing.get(&file.path) {
                    None => insert.push(file.path.clone()),
                    Some((token, _, _)) if *token == me.token => {
                        mine.insert(file.path.clone());
                    }
                    Some((_, _, expires)) if expires.is_none_or(|e| e < now) => {
                        take.push(file.path.clone())
                    }
                    Some(_) => {}
                }
            }
            (insert, take, mine)
        };
        let (existing, granted_new, taken): (Existing, HashSet<String>, Vec<String>) = match &self
            .pool
        {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(fail)?;
                let rows = sqlx::query(
                        "SELECT c.path, c.token, c.claimed, r.expires_ms FROM ikkatsu_status_claim c \
                         LEFT JOIN ikkatsu_status_run r ON r.namespace = c.namespace AND r.token = c.token \
                         WHERE c.namespace = $1 AND c.path = ANY($2) FOR UPDATE OF c",
                    )
                    .bind(namespace)
                    .bind(&paths)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(fail)?;
                let mut existing = Existing::new();
                for row in &rows {
                    existing.insert(
                        row.try_get(0).map_err(fail)?,
                        (
                            row.try_get(1).map_err(fail)?,
                            row.try_get(2).map_err(fail)?,
                            row.try_get(3).map_err(fail)?,
                        ),
                    );
                }
                let (insert, take, mut granted) = decide(&existing);
                if !take.is_empty() {
                    let jsons: Vec<&str> = take
                        .iter()
                        .map(|p| claimed_json[p.as_str()].as_str())
                        .collect();
                    sqlx::query(
                        "UPDATE ikkatsu_status_claim c SET token = $3, claimed = t.c \
                             FROM UNNEST($2::text[], $4::text[]) AS t(p, c) \
                             WHERE c.namespace = $1 AND c.path = t.p",
                    )
                    .bind(namespace)
                    .bind(&take)
                    .bind(&me.token)
                    .bind(&jsons)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                }
                if !insert.is_empty() {
                    let jsons: Vec<&str> = insert
                        .iter()
                        .map(|p| claimed_json[p.as_str()].as_str())
                        .collect();
                    let inserted: Vec<String> = sqlx::query_scalar(
                            "INSERT INTO ikkatsu_status_claim (namespace, path, token, claimed) \
                             SELECT $1, t.p, $3, t.c FROM UNNEST($2::text[], $4::text[]) AS t(p, c) \
                             ON CONFLICT (namespace, path) DO NOTHING RETURNING path",
                        )
                        .bind(namespace)
                        .bind(&insert)
                        .bind(&me.token)
                        .bind(&jsons)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(fail)?;
                    granted.extend(inserted);
                }
                tx.commit().await.map_err(fail)?;
                (existing, granted, take)
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let mut tx = pool.begin().await.map_err(fail)?;
                let marks = vec!["?"; paths.len()].join(", ");
                let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT c.path, c.token, c.claimed, r.expires_ms FROM ikkatsu_status_claim c \
                         LEFT JOIN ikkatsu_status_run r ON r.namespace = c.namespace AND r.token = c.token \
                         WHERE c.namespace = ? AND c.path IN ({marks}) FOR UPDATE"
                    )))
                    .bind(namespace.as_bytes());
                for path in &paths {
                    query = query.bind(path.as_bytes());
                }
                let rows = query.fetch_all(&mut *tx).await.map_err(fail)?;
                let mut existing = Existing::new();
                for row in &rows {
                    let path: Vec<u8> = row.try_get(0).map_err(fail)?;
                    let token: Vec<u8> = row.try_get(1).map_err(fail)?;
                    existing.insert(
                        String::from_utf8_lossy(&path).into_owned(),
                        (
                            String::from_utf8_lossy(&token).into_owned(),
                            row.try_get(2).map_err(fail)?,
                            row.try_get(3).map_err(fail)?,
                        ),
                    );
                }
                let (insert, take, mut granted) = decide(&existing);
                for path in &take {
                    sqlx::query(
                            "UPDATE ikkatsu_status_claim SET token = ?, claimed = ? WHERE namespace = ? AND path = ?",
                        )
                        .bind(me.token.as_bytes())
                        .bind(claimed_json[path.as_str()].as_str())
                        .bind(namespace.as_bytes())
                        .bind(path.as_bytes())
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
                if !insert.is_empty() {
                    let mut query = sqlx::QueryBuilder::<sqlx::MySql>::new(
                        "INSERT IGNORE INTO ikkatsu_status_claim (namespace, path, token, claimed) ",
                    );
                    query.push_values(insert.iter(), |mut row, path| {
                        row.push_bind(namespace.as_bytes())
                            .push_bind(path.as_bytes())
                            .push_bind(me.token.as_bytes())
                            .push_bind(claimed_json[path.as_str()].as_str());
                    });
                    query.build().execute(&mut *tx).await.map_err(fail)?;
                    let marks = vec!["?"; insert.len()].join(", ");
                    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            "SELECT path FROM ikkatsu_status_claim WHERE namespace = ? AND token = ? AND path IN ({marks})"
                        )))
                        .bind(namespace.as_bytes())
                        .bind(me.token.as_bytes());
                    for path in &insert {
                        query = query.bind(path.as_bytes());
                    }
                    let inserted: Vec<Vec<u8>> = query.fetch_all(&mut *tx).await.map_err(fail)?;
                    granted.extend(
                        inserted
                            .iter()
                            .map(|p| String::from_utf8_lossy(p).into_owned()),
                    );
                }
                tx.commit().await.map_err(fail)?;
                (existing, granted, take)
            }
        };
        let taken: HashSet<String> = taken.into_iter().collect();
        let mut out = Vec::new();
        for file in files {
            if taken.contains(&file.path) {
                let before = existing
                    .get(&file.path)
                    .map(|(_, claimed, _)| claimed.clone());
                let taken_from = decode_info(&self.describe, &file.path, before)?;
                out.push(Claimed {
                    file: file.clone(),
                    taken_from,
                });
            } else if granted_new.contains(&file.path) {
                out.push(Claimed {
                    file: file.clone(),
                    taken_from: None,
                });
            }
        }
        Ok(out)
    }

    pub(super) async fn sql_report_done_claimed(
        &self,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> Result<Vec<String>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let namespace = self.options.namespace.as_str();
        let now = Utc::now();
        let fail = |err| self.error("recording claimed files", err);
        let paths: Vec<String> = done.iter().map(|(s, _)| s.path.clone()).collect();
        let owned: HashSet<String> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(fail)?;
                let owned: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM ikkatsu_status_claim WHERE namespace = $1 AND token = $2 AND path = ANY($3) RETURNING path",
                )
                .bind(namespace)
                .bind(token)
                .bind(&paths)
                .fetch_all(&mut *tx)
                .await
                .map_err(fail)?;
                let owned: HashSet<String> = owned.into_iter().collect();
                let rows = owned_rows(done, &owned)?;
                for chunk in rows.chunks(DONE_ROWS_PER_STATEMENT) {
                    super::done::pg_done(namespace, chunk, now)
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
                owned
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let mut tx = pool.begin().await.map_err(fail)?;
                let marks = vec!["?"; paths.len()].join(", ");
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT path FROM ikkatsu_status_claim WHERE namespace = ? AND token = ? AND path IN ({marks}) FOR UPDATE"
                )))
                .bind(namespace.as_bytes())
                .bind(token.as_bytes());
                for path in &paths {
                    query = query.bind(path.as_bytes());
                }
                let owned: Vec<Vec<u8>> = query.fetch_all(&mut *tx).await.map_err(fail)?;
                let owned: HashSet<String> = owned
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                if !owned.is_empty() {
                    let marks = vec!["?"; owned.len()].join(", ");
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM ikkatsu_status_claim WHERE namespace = ? AND path IN ({marks})"
                    )))
                    .bind(namespace.as_bytes());
                    for path in &owned {
                        query = query.bind(path.as_bytes());
                    }
                    query.execute(&mut *tx).await.map_err(fail)?;
                }
                let rows = owned_rows(done, &owned)?;
                for chunk in rows.chunks(DONE_ROWS_PER_STATEMENT) {
                    super::done::my_done(namespace, chunk, now)
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
                owned
            }
        };
        Ok(paths.into_iter().filter(|p| !owned.contains(p)).collect())
    }
}

/// The (path, uploaded JSON) rows of the done files whose claim this run still held.
fn owned_rows<'a>(
    done: &'a [(FileInfo, FileInfo)],
    owned: &HashSet<String>,
) -> Result<Vec<(&'a str, String)>> {
    let mut rows = Vec::new();
    for (source, uploaded) in done {
        if owned.contains(&source.path) {
            rows.push((source.path.as_str(), encode_info(uploaded)?));
        }
    }
    Ok(rows)
}
