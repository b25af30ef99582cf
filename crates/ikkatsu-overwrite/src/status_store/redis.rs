//! [`RedisStatusStore`]: one Redis hash per file, key `ikkatsu:{namespace}:{path}` on one
//! server, `ikkatsu:{{namespace}:{bucket}}:{path}` in a Redis Cluster (see
//! [`KeyLayout`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;

mod claims;

use super::redis_connection::{
    CLUSTER_SCHEME, ClusterUrl, KeyLayout, REPLICA_WAIT_MS, RedisConnection,
};
use super::{
    Claimed, FileState, FileStatus, Lease, LeaseAttempt, StatusCounts, StatusStore,
    StatusStoreOptions, mask_url, store_error,
};

/// How long a run lease's key outlives its time to live: an expired lease stays readable
/// (and is reported when replaced) for a week, then Redis drops it.
const LEASE_KEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// Takes the run lease (a hash `token`/`holder`/`expires`, the expiry in Unix
/// milliseconds): when there is none, it has expired (ARGV[5] is now), it is ours
/// (ARGV[2]) or it is the one named for a takeover (ARGV[3]). ARGV[1] is the new holder,
/// ARGV[4] its expiry, ARGV[6] how long Redis keeps the key. Returns
/// `{1, replaced holder or ''}` or `{0, current holder}`.
const ACQUIRE_LEASE: &str = r"
local token = redis.call('HGET', KEYS[1], 'token')
local holder = redis.call('HGET', KEYS[1], 'holder')
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0') or 0
if token and token ~= ARGV[2] and token ~= ARGV[3] and expires >= tonumber(ARGV[5]) then
  return {0, holder or ''}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'holder', ARGV[1], 'expires', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if token and token ~= ARGV[2] then
  return {1, holder or ''}
end
return {1, ''}
";

/// Renews the run lease if the token (ARGV[2]) holds it: 1, else 0. ARGV[1] is the
/// holder, ARGV[3] its new expiry, ARGV[4] how long Redis keeps the key.
const RENEW_LEASE: &str = r"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// The holder of the run lease (KEYS[1]), read on the master.
const READ_LEASE_HOLDER: &str = "return redis.call('HGET', KEYS[1], 'holder')";

/// Deletes the run lease if the token (ARGV[1]) holds it.
const RELEASE_LEASE: &str = r"
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
";

/// The hash fields, in the order `HMGET` asks for them.
const FIELDS: [&str; 6] = ["state", "uploaded", "failed", "errors", "error", "updated"];

/// Keys scanned or deleted per round-trip by [`StatusStore::counts`] and
/// [`StatusStore::clear`].
const SCAN_BATCH: usize = 1_000;

/// A status store in Redis (URL `redis://[:PASSWORD@]HOST:PORT/DB` or `rediss://…`) or in a
/// Redis Cluster (URL `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/`, optionally
/// `?read-from-replicas=true`).
///
/// Each file is a hash at `ikkatsu:{namespace}:{path}` (in a cluster
/// `ikkatsu:{{namespace}:{bucket}}:{path}`, see [`KeyLayout`]) with the fields `state`
/// (`done`/`failed`), `uploaded` and `failed` (compact JSON [`FileInfo`]), `errors`,
/// `error` and `updated` (RFC 3339). A batch of [`StatusStore::needs_processing`] is one
/// pipelined round-trip of `HMGET`s; each report is one `MULTI`/`EXEC` round-trip (in a
/// cluster: one of each per bucket, sent concurrently).
/// [`StatusStore::counts`] scans the namespace's keys (linear in their number; in a cluster
/// on every master).
#[derive(Clone)]
pub struct RedisStatusStore {
    connection: RedisConnection,
    describe: String,
    layout: KeyLayout,
    /// With `read-from-replicas`: the replicas a write waits for (`WAIT`), so that a read
    /// after a write sees it.
    wait_replicas: usize,
    options: StatusStoreOptions,
}

impl std::fmt::Debug for RedisStatusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStatusStore")
            .field("url", &self.describe)
            .field("options", &self.options)
            .finish()
    }
}

impl RedisStatusStore {
    /// Records every `(source, uploaded)` pair as done: one atomic pipeline per key group
    /// (all of them on one server, one per bucket in a cluster), the groups concurrently.
    async fn record_done(&self, done: &[(FileInfo, FileInfo)], what: &str) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let now = Utc::now().to_rfc3339();
        // (group, its pipeline, one of its keys)
        let mut groups: Vec<(u64, redis::Pipeline, String)> = Vec::new();
        for (source, uploaded) in done {
            let group = self.layout.group(&source.path);
            let key = self.key(&source.path);
            let index = match groups.iter().position(|(g, _, _)| *g == group) {
                Some(index) => index,
                None => {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    groups.push((group, pipe, key.clone()));
                    groups.len() - 1
                }
            };
            groups[index]
                .1
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("HSET")
                .arg(&key)
                .arg("state")
                .arg(FileState::Done.as_str())
                .arg("uploaded")
                .arg(to_json(uploaded)?)
                .arg("errors")
                .arg(0)
                .arg("updated")
                .arg(&now)
                .ignore();
        }
        try_join_all(groups.into_iter().map(|(_, pipe, key)| async move {
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(|err| self.error(what, err))?;
            self.wait_for_replicas(&key, what).await
        }))
        .await?;
        Ok(())
    }

    /// When reads go to replicas: waits (`WAIT`, at most [`REPLICA_WAIT_MS`]) until the
    /// replicas of `key`'s master have the writes made so far, so that a read after a write
    /// sees it. A replica that does not answer in time leaves the write on the master.
    async fn wait_for_replicas(&self, key: &str, what: &str) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        connection
            .wait_for_replicas(key, self.wait_replicas, REPLICA_WAIT_MS)
            .await
            .map_err(|err| self.error(what, err))
    }

    /// Connects to the Redis server (or, for `redis+cluster://`, the Redis Cluster) at
    /// `url`; fails at once if it cannot be reached.
    pub async fn connect(url: &str, options: StatusStoreOptions) -> Result<Self> {
        options.validate()?;
        let describe = mask_url(url);
        if url
            .get(..CLUSTER_SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(CLUSTER_SCHEME))
        {
            let cluster = ClusterUrl::parse(url, &describe)?;
            let layout = KeyLayout::cluster(&options.namespace, &describe)?;
            let (connection, wait_replicas) = cluster.connect(&describe).await?;
            return Ok(RedisStatusStore {
                connection: RedisConnection::Cluster(connection),
                describe,
                layout,
                wait_replicas,
                options,
            });
        }
        let connection = super::redis_tls::connect_single(url, &describe).await?;
        Ok(RedisStatusStore {
            connection: RedisConnection::Single(connection),
            describe,
            layout: KeyLayout::single(&options.namespace),
            wait_replicas: 0,
            options,
        })
    }

    /// The key of this namespace's run lease (outside the records' prefix, so that
    /// counting and clearing the records leave it alone).
    pub fn lease_key(&self) -> String {
        format!("ikkatsu-lease:{}", self.options.namespace)
    }

    /// The key of the file at `path`.
    pub fn key(&self, path: &str) -> String {
        self.layout.key(path)
    }

    fn error(&self, what: &str, err: redis::RedisError) -> Error {
        let temporary = err.is_io_error() || err.is_timeout() || err.is_connection_dropped();
        store_error(&self.describe, what, err, temporary)
    }

    fn decode(&self, path: &str, fields: Vec<Option<String>>) -> Result<Option<FileStatus>> {
        let bad = |what: &str| {
            Error::new(
                ErrorKind::Parse,
                format!(
                    "status store {}: key `{}` has an invalid {what}",
                    self.describe,
                    self.key(path)
                ),
            )
        };
        let mut fields = fields.into_iter();
        let mut next = || fields.next().flatten();
        let Some(state) = next() else {
            return Ok(None);
        };
        let state = FileState::parse(&state).ok_or_else(|| bad("state"))?;
        let info = |text: Option<String>, what: &str| -> Result<Option<FileInfo>> {
            text.map(|t| serde_json::from_str(&t).map_err(|_| bad(what)))
                .transpose()
        };
        let uploaded = info(next(), "uploaded file info")?;
        let failed = info(next(), "failed file info")?;
        let error_count = match next() {
            Some(n) => n.parse().map_err(|_| bad("error count"))?,
            None => 0,
        };
        let last_error = next();
        let updated = match next() {
            Some(t) => DateTime::parse_from_rfc3339(&t)
                .map_err(|_| bad("update time"))?
                .with_timezone(&Utc),
            None => DateTime::<Utc>::UNIX_EPOCH,
        };
        Ok(Some(FileStatus {
            state,
            uploaded,
            failed,
            error_count,
            last_error,
            updated,
        }))
    }

    /// One `SCAN` page of this namespace's keys on `node` (see
    /// [`RedisConnection::masters`]): the next cursor (0 at the end) and keys.
    async fn scan_page(&self, node: Option<u16>, cursor: u64) -> Result<(u64, Vec<String>)> {
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(self.layout.scan_pattern())
            .arg("COUNT")
            .arg(SCAN_BATCH);
        connection
            .query_on(node, &cmd)
            .await
            .map_err(|err| self.error("scanning keys", err))
    }

    /// The nodes a scan visits: the server, or every master of the cluster.
    async fn scan_nodes(&self) -> Result<Vec<Option<u16>>> {
        let mut connection = self.connection.clone();
        connection
            .masters()
            .await
            .map_err(|err| self.error("listing the cluster's masters", err))
    }
}

fn to_json(info: &FileInfo) -> Result<String> {
    serde_json::to_string(info).map_err(|err| {
        Error::new(ErrorKind::Unexpected, format!("encoding file info: {err}")).with_source(err)
    })
}

#[async_trait]
impl StatusStore for RedisStatusStore {
    async fn needs_processing(&self, files: Vec<FileInfo>) -> Result<Vec<FileInfo>> {
        if files.is_empty() {
            return Ok(files);
        }
        // One pipeline per key group (one on a server, one per bucket in a cluster), sent
        // concurrently; the rows are put back in the order of `files`.
        let mut groups: Vec<(u64, redis::Pipeline, Vec<usize>)> = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let group = self.layout.group(&file.path);
            let index = match groups.iter().position(|(g, _, _)| *g == group) {
                Some(index) => index,
                None => {
                    groups.push((group, redis::pipe(), Vec::new()));
                    groups.len() - 1
                }
            };
            let (_, pipe, members) = &mut groups[index];
            pipe.cmd("HMGET").arg(self.key(&file.path)).arg(&FIELDS[..]);
            members.push(i);
        }
        let answers = try_join_all(groups.into_iter().map(|(_, pipe, members)| async move {
            let mut connection = self.connection.clone();
            let rows: Vec<Vec<Option<String>>> = pipe
                .query_async(&mut connection)
                .await
                .map_err(|err| self.error("looking up files", err))?;
            Ok::<_, Error>(members.into_iter().zip(rows))
        }))
        .await?;
        let mut rows: Vec<Vec<Option<String>>> = vec![Vec::new(); files.len()];
        for (i, row) in answers.into_iter().flatten() {
            rows[i] = row;
        }
        let mut out = Vec::with_capacity(files.len());
        for (file, fields) in files.into_iter().zip(rows) {
            let needed = match self.decode(&file.path, fields)? {
                Some(status) => status.needs_processing(&file, self.options.max_errors),
                None => true,
            };
            if needed {
                out.push(file);
            }
        }
        Ok(out)
    }

    async fn report_done(&self, source: &FileInfo, uploaded: &FileInfo) -> Result<()> {
        self.record_done(
            &[(source.clone(), uploaded.clone())],
            &format!("recording the success of `{}`", source.path),
        )
        .await
    }

    async fn is_empty(&self) -> Result<bool> {
        for node in self.scan_nodes().await? {
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan_page(node, cursor).await?;
                if !keys.is_empty() {
                    return Ok(false);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(true)
    }

    async fn report_done_all(&self, done: &[(FileInfo, FileInfo)]) -> Result<()> {
        self.record_done(done, &format!("recording {} successes", done.len()))
            .await
    }

    async fn report_error(&self, file: &FileInfo, error: &str) -> Result<u32> {
        let key = self.key(&file.path);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HINCRBY")
            .arg(&key)
            .arg("errors")
            .arg(1)
            .cmd("HSET")
            .arg(&key)
            .arg("state")
            .arg(FileState::Failed.as_str())
            .arg("failed")
            .arg(to_json(file)?)
            .arg("error")
            .arg(error)
            .arg("updated")
            .arg(Utc::now().to_rfc3339())
            .ignore();
        let what = format!("recording a failure of `{}`", file.path);
        let mut connection = self.connection.clone();
        let (count,): (u32,) = pipe
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error(&what, err))?;
        self.wait_for_replicas(&key, &what).await?;
        Ok(count)
    }

    async fn status(&self, path: &str) -> Result<Option<FileStatus>> {
        let mut connection = self.connection.clone();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(path))
            .arg(&FIELDS[..])
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error(&format!("reading the record of `{path}`"), err))?;
        self.decode(path, fields)
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let mut counts = StatusCounts::default();
        let mut connection = self.connection.clone();
        for node in self.scan_nodes().await? {
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan_page(node, cursor).await?;
                if !keys.is_empty() {
                    // The keys of one page are on the node scanned: one pipeline there.
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.cmd("HGET").arg(key).arg("state");
                    }
                    let states: Vec<Option<String>> = connection
                        .pipeline_on(node, &pipe)
                        .await
                        .map_err(|err| self.error("counting records", err))?;
                    for state in states.into_iter().flatten() {
                        match FileState::parse(&state) {
                            Some(FileState::Done) => counts.done += 1,
                            Some(FileState::Failed) => counts.failed += 1,
                            None => {}
                        }
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(counts)
    }

    fn options(&self) -> &StatusStoreOptions {
        &self.options
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn clear(&self) -> Result<()> {
        let mut connection = self.connection.clone();
        for node in self.scan_nodes().await? {
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan_page(node, cursor).await?;
                if !keys.is_empty() {
                    // In a cluster the keys span several slots: the cluster connection
                    // splits a multi-key UNLINK by slot.
                    redis::cmd("UNLINK")
                        .arg(keys)
                        .query_async::<()>(&mut connection)
                        .await
                        .map_err(|err| self.error("deleting keys", err))?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    async fn acquire_lease(&self, me: &Lease, take_over: Option<&str>) -> Result<LeaseAttempt> {
        let mut connection = self.connection.clone();
        let (acquired, holder): (i64, String) = redis::Script::new(ACQUIRE_LEASE)
            .key(self.lease_key())
            .arg(me.to_json()?)
            .arg(&me.token)
            .arg(take_over.unwrap_or(""))
            .arg(me.expires().timestamp_millis())
            .arg(Utc::now().timestamp_millis())
            .arg(me.ttl_ms.saturating_add(LEASE_KEEP_MS))
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.error("taking the run lease", err))?;
        let holder = if holder.is_empty() {
            None
        } else {
            Some(Lease::from_json(&self.describe, &holder)?)
        };
        Ok(match (acquired, holder) {
            (1, replaced) => LeaseAttempt::Acquired { replaced },
            (_, Some(holder)) => LeaseAttempt::Held(holder),
            (_, None) => {
                return Err(Error::new(
                    ErrorKind::Parse,
                    format!(
                        "status store {}: the run lease `{}` has no holder",
                        self.describe,
                        self.lease_key()
                    ),
                ));
            }
        })
    }

    async fn renew_lease(&self, me: &Lease) -> Result<bool> {
        let mut connection = self.connection.clone();
        let renewed: i64 = redis::Script::new(RENEW_LEASE)
            .key(self.lease_key())
            .arg(me.to_json()?)
            .arg(&me.token)
            .arg(me.expires().timestamp_millis())
            .arg(me.ttl_ms.saturating_add(LEASE_KEEP_MS))
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.error("renewing the run lease", err))?;
        Ok(renewed == 1)
    }

    async fn release_lease(&self, token: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::Script::new(RELEASE_LEASE)
            .key(self.lease_key())
            .arg(token)
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(|err| self.error("releasing the run lease", err))?;
        Ok(())
    }

    async fn lease(&self) -> Result<Option<Lease>> {
        let mut connection = self.connection.clone();
        // A script runs on the key's master even with `read-from-replicas`: who holds the
        // lease must never be read from a replica that lags behind.
        let holder: Option<String> = redis::Script::new(READ_LEASE_HOLDER)
            .key(self.lease_key())
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.error("reading the run lease", err))?;
        holder
            .map(|text| Lease::from_json(&self.describe, &text))
            .transpose()
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn join_run(&self, me: &Lease, renew: bool) -> Result<bool> {
        self.redis_join_run(me, renew).await
    }

    async fn runs(&self) -> Result<Vec<Lease>> {
        self.redis_runs().await
    }

    async fn leave_run(&self, token: &str) -> Result<()> {
        self.redis_leave_run(token).await
    }

    async fn claim(&self, me: &Lease, files: Vec<FileInfo>) -> Result<Vec<Claimed>> {
        self.redis_claim(me, files).await
    }

    async fn report_done_claimed(
        &self,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> Result<Vec<String>> {
        self.redis_report_done_claimed(token, done).await
    }
}
