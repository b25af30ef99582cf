//! The connection of the Redis status store — one server or a Redis Cluster — and the key
//! layout of each (see docs/adr/0011-redis-cluster-status-store.md).
//!
//! * One server (`redis://…`, `rediss://…`): a file's key is `ikkatsu:NAMESPACE:PATH`.
//! * A Redis Cluster (`redis+cluster://…`): `ikkatsu:{NAMESPACE:BUCKET}:PATH`, where BUCKET
//!   is a stable hash of the path modulo [`CLUSTER_BUCKETS`]. The braces make the bucket the
//!   key's hash tag: the keys of one bucket share a slot, so a lookup batch becomes one
//!   pipeline (and a group of reports one `MULTI`/`EXEC`) per bucket, and the buckets spread
//!   over every master.

use std::time::Duration;

use ikkatsu_core::{Error, ErrorKind, Result};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// The number of hash-tag buckets of a namespace in a cluster. Part of the key layout:
/// changing it makes existing records unreadable.
pub const CLUSTER_BUCKETS: u64 = 128;

/// How long a write waits for the replicas in `read-from-replicas` mode (`WAIT`), in
/// milliseconds. When they do not answer in time the write still stands on the master.
pub(crate) const REPLICA_WAIT_MS: u64 = 1_000;

/// A connection to one Redis server or to a Redis Cluster. Cloning is cheap (both share
/// their connections); `query_async(&mut connection)` works on either.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server, reconnecting on failure.
    Single(ConnectionManager),
    /// A Redis Cluster: commands go to the master (or a replica, for reads with
    /// `read-from-replicas`) owning their key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisConnection {
    /// Runs `cmd` on `node` (a master, see [`RedisConnection::masters`]); on one server
    /// `node` is ignored.
    pub(crate) async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        node: Option<u16>,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match (self, node) {
            (RedisConnection::Cluster(c), Some(slot)) => {
                let value = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                            slot,
                            SlotAddr::Master,
                        ))),
                    )
                    .await?;
                redis::from_redis_value(value).map_err(Into::into)
            }
            (connection, _) => cmd.query_async(connection).await,
        }
    }

    /// Runs `pipe` (not atomic) on `node`, as [`RedisConnection::query_on`].
    pub(crate) async fn pipeline_on<T: redis::FromRedisValue>(
        &mut self,
        node: Option<u16>,
        pipe: &Pipeline,
    ) -> redis::RedisResult<Vec<T>> {
        match (self, node) {
            (RedisConnection::Cluster(c), Some(slot)) => {
                let values = c
                    .route_pipeline(
                        pipe.clone(),
                        0,
                        pipe.len(),
                        SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)),
                    )
                    .await?;
                values
                    .into_iter()
                    .map(|v| redis::from_redis_value(v).map_err(Into::into))
                    .collect()
            }
            (connection, _) => pipe.query_async(connection).await,
        }
    }

    /// Waits until `replicas` replicas of `key`'s master acknowledged the writes sent so far
    /// on this connection (`WAIT`, at most `timeout_ms`); nothing on one server.
    pub(crate) async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: usize,
        timeout_ms: u64,
    ) -> redis::RedisResult<()> {
        let RedisConnection::Cluster(c) = self else {
            return Ok(());
        };
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        c.route_command(
            wait,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                key_slot(key),
                SlotAddr::Master,
            ))),
        )
        .await
        .map(drop)
    }

    /// The nodes a `SCAN` must visit: `[None]` for one server; for a cluster one slot of
    /// each master (commands routed to that slot's master reach that master).
    pub(crate) async fn masters(&mut self) -> redis::RedisResult<Vec<Option<u16>>> {
        match self {
            RedisConnection::Single(_) => Ok(vec![None]),
            RedisConnection::Cluster(c) => {
                let shards = cluster_slots(c).await?;
                Ok(shards.into_iter().map(|s| Some(s.first_slot)).collect())
            }
        }
    }
}

/// One master of a cluster as `CLUSTER SLOTS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    /// `host:port` of the master.
    pub address: String,
    /// The first slot of its first range.
    pub first_slot: u16,
    /// The fewest replicas any of its ranges lists.
    pub replicas: usize,
}

/// The masters of the cluster (one entry per master address), from `CLUSTER SLOTS`.
pub(crate) async fn cluster_slots(
    connection: &mut ClusterConnection,
) -> redis::RedisResult<Vec<Shard>> {
    let value = connection
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
        )
        .await?;
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(value)?;
    let mut shards: Vec<Shard> = Vec::new();
    for range in ranges {
        let mut items = range.into_iter();
        let (Some(start), Some(_end), Some(master)) = (items.next(), items.next(), items.next())
        else {
            continue;
        };
        let start: u16 = redis::from_redis_value(start)?;
        let node: Vec<Value> = redis::from_redis_value(master)?;
        let mut node = node.into_iter();
        let (Some(host), Some(port)) = (node.next(), node.next()) else {
            continue;
        };
        let host: String = redis::from_redis_value(host)?;
        let port: u16 = redis::from_redis_value(port)?;
        let address = format!("{host}:{port}");
        let replicas = items.count();
        match shards.iter_mut().find(|s| s.address == address) {
            Some(shard) => {
                shard.first_slot = shard.first_slot.min(start);
                shard.replicas = shard.replicas.min(replicas);
            }
            None => shards.push(Shard {
                address,
                first_slot: start,
                replicas,
            }),
        }
    }
    Ok(shards)
}

/// How a namespace's keys are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLayout {
    /// One server: `ikkatsu:NAMESPACE:PATH`.
    Single {
        /// `ikkatsu:NAMESPACE:`.
        prefix: String,
    },
    /// A cluster: `ikkatsu:{NAMESPACE:BUCKET}:PATH`.
    Cluster {
        /// The namespace.
        namespace: String,
    },
}

impl KeyLayout {
    /// The layout of `namespace` on one server.
    pub fn single(namespace: &str) -> Self {
        KeyLayout::Single {
            prefix: format!("ikkatsu:{namespace}:"),
        }
    }

    /// The layout of `namespace` in a cluster; a namespace with `{` or `}` (which would
    /// break the hash tag) is a configuration error.
    pub fn cluster(namespace: &str, describe: &str) -> Result<Self> {
        if namespace.contains(['{', '}']) {
            return Err(Error::config(format!(
                "status store {describe}: namespace `{namespace}` contains `{{` or `}}`, which a Redis Cluster key layout cannot hold: choose a namespace without braces"
            )));
        }
        Ok(KeyLayout::Cluster {
            namespace: namespace.to_string(),
        })
    }

    /// The key of the file at `path`.
    pub fn key(&self, path: &str) -> String {
        match self {
            KeyLayout::Single { prefix } => format!("{prefix}{path}"),
            KeyLayout::Cluster { namespace } => {
                format!("ikkatsu:{{{namespace}:{}}}:{path}", bucket(path))
            }
        }
    }

    /// The pipeline group of `path`: keys of one group may share a pipeline or a
    /// `MULTI`/`EXEC` (one group on one server, the bucket in a cluster).
    pub fn group(&self, path: &str) -> u64 {
        match self {
            KeyLayout::Single { .. } => 0,
            KeyLayout::Cluster { .. } => bucket(path),
        }
    }

    /// The `SCAN MATCH` pattern of every key of the namespace.
    pub fn scan_pattern(&self) -> String {
        match self {
            KeyLayout::Single { prefix } => format!("{}*", glob_escape(prefix)),
            // The namespace has no `:`, so `ikkatsu:{NS:` starts this namespace's keys only.
            KeyLayout::Cluster { namespace } => {
                format!("{}*", glob_escape(&format!("ikkatsu:{{{namespace}:")))
            }
        }
    }
}

/// The cluster bucket of `path`: 64-bit FNV-1a of its bytes modulo [`CLUSTER_BUCKETS`]
/// (stable across versions and platforms: part of the key layout).
pub fn bucket(path: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % CLUSTER_BUCKETS
}

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the first
/// `{` and the next `}`, when not empty) or of the whole key, modulo 16384.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for &byte in hashed {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16_384
}

/// `text` with Redis glob characters escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A parsed `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…][/0][?read-from-replicas=true]`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    /// `redis://HOST:PORT` of each seed node.
    pub nodes: Vec<String>,
    /// The user name, if any.
    pub username: Option<String>,
    /// The password, if any (percent-decoded).
    pub password: Option<String>,
    /// Route reads to replicas.
    pub read_from_replicas: bool,
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterUrl")
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("read_from_replicas", &self.read_from_replicas)
            .finish()
    }
}

/// The scheme of a cluster URL.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

impl ClusterUrl {
    /// Parses `url` (`describe` is its masked form, for messages).
    pub fn parse(url: &str, describe: &str) -> Result<Self> {
        let bad = |why: String| {
            Error::config(format!(
                "status store URL `{describe}` is not a valid Redis Cluster URL: {why}; write redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/[?read-from-replicas=true]"
            ))
        };
        let rest = url
            .get(..CLUSTER_SCHEME.len())
            .filter(|s| s.eq_ignore_ascii_case(CLUSTER_SCHEME))
            .map(|_| &url[CLUSTER_SCHEME.len()..])
            .ok_or_else(|| bad("it does not start with redis+cluster://".into()))?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "0") {
            return Err(bad(format!(
                "a cluster has database 0 only, not `{path}` (remove the path)"
            )));
        }
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (
                    Some(ikkatsu_core::secret::percent_decode(user)).filter(|u| !u.is_empty()),
                    Some(ikkatsu_core::secret::percent_decode(pass)),
                ),
                // `redis://PASSWORD@host` as the redis crate reads a lone user part.
                None => (None, Some(ikkatsu_core::secret::percent_decode(info))),
            },
        };
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            if host.is_empty() {
                return Err(bad("a node address is empty".into()));
            }
            let port_at = if host.starts_with('[') {
                host.find(']')
                    .and_then(|end| host[end..].find(':').map(|c| end + c))
            } else {
                host.rfind(':')
            };
            let (name, port) = match port_at {
                Some(i) => (&host[..i], &host[i + 1..]),
                None => (host, "6379"),
            };
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad(format!("`{host}` is not HOST:PORT")));
            }
            nodes.push(format!("redis://{name}:{port}"));
        }
        let mut read_from_replicas = false;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
            match key {
                "read-from-replicas" | "read_from_replicas" => {
                    read_from_replicas = match value {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => {
                            return Err(bad(format!(
                                "read-from-replicas is `{value}`, not true or false"
                            )));
                        }
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "unknown parameter `{key}` (known: read-from-replicas)"
                    )));
                }
            }
        }
        Ok(ClusterUrl {
            nodes,
            username,
            password,
            read_from_replicas,
        })
    }

    /// `host:port, host:port` of the seed nodes, for messages.
    pub fn node_list(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.trim_start_matches("redis://"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Connects to the cluster; fails at once if no seed node answers. Returns the
    /// connection and, with `read-from-replicas`, how many replicas each write waits for.
    pub async fn connect(&self, describe: &str) -> Result<(ClusterConnection, usize)> {
        let mut builder = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
            .retries(2)
            .connection_timeout(Duration::from_secs(10))
            .response_timeout(Duration::from_secs(60));
        if let Some(user) = &self.username {
            builder = builder.username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.password(password);
        }
        if self.read_from_replicas {
            builder = builder.read_routing_strategy(
                redis::cluster_read_routing::RoundRobinReplicaStrategy::default(),
            );
        }
        let unreachable = |err: redis::RedisError| {
            let temporary = err.is_io_error() || err.is_timeout() || err.is_connection_dropped();
            Error::new(
                ErrorKind::Repository,
                format!(
                    "status store {describe}: connecting to the Redis Cluster (nodes {}) failed: {err}; is the cluster running, formed (redis-cli --cluster check HOST:PORT) and the URL right?",
                    self.node_list()
                ),
            )
            .with_source(err)
            .set_temporary(temporary)
        };
        let client = builder.build().map_err(|err| {
            Error::config(format!(
                "status store URL `{describe}` is not a valid Redis Cluster URL: {err}"
            ))
        })?;
        let mut connection = client.get_async_connection().await.map_err(unreachable)?;
        // The topology: fails when no slot is served (a cluster not formed yet).
        let shards = cluster_slots(&mut connection).await.map_err(unreachable)?;
        if shards.is_empty() {
            return Err(Error::new(
                ErrorKind::Repository,
                format!(
                    "status store {describe}: the Redis Cluster at {} serves no slot: form it first (redis-cli --cluster create …)",
                    self.node_list()
                ),
            ));
        }
        let wait = if self.read_from_replicas {
            shards.iter().map(|s| s.replicas).min().unwrap_or(0)
        } else {
            0
        };
        Ok((connection, wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_urls() {
        let url = ClusterUrl::parse(
            "redis+cluster://u:p%40ss@127.0.0.1:7101,127.0.0.1:7102/?read-from-replicas=true",
            "x",
        )
        .unwrap();
        assert_eq!(
            url.nodes,
            vec!["redis://127.0.0.1:7101", "redis://127.0.0.1:7102"]
        );
        assert_eq!(url.username.as_deref(), Some("u"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert!(url.read_from_replicas);
        assert!(!format!("{url:?}").contains("p@ss"));
        let plain = ClusterUrl::parse("REDIS+CLUSTER://h", "x").unwrap();
        assert_eq!(plain.nodes, vec!["redis://h:6379"]);
        assert!(!plain.read_from_replicas);
        for bad in [
            "redis+cluster://h:1/3",
            "redis+cluster://h:x",
            "redis+cluster://h:1,,h:2",
            "redis+cluster://h:1/?read-from-replicas=maybe",
            "redis+cluster://h:1/?tls=true",
        ] {
            let err = ClusterUrl::parse(bad, "MASKED").unwrap_err();
            assert!(err.to_string().contains("MASKED"), "{err}");
        }
    }

    #[test]
    fn cluster_keys_are_hash_tagged_by_bucket() {
        let layout = KeyLayout::cluster("flow", "x").unwrap();
        assert_eq!(
            layout.key("a/b.txt"),
            format!("ikkatsu:{{flow:{}}}:a/b.txt", bucket("a/b.txt"))
        );
        assert_eq!(layout.scan_pattern(), "ikkatsu:{flow:*");
        // Stable: the layout of stored data.
        assert_eq!(bucket(""), 0xcbf2_9ce4_8422_2325 % CLUSTER_BUCKETS);
        assert_eq!(bucket("a"), 0xaf63_dc4c_8601_ec8c % CLUSTER_BUCKETS);
        let buckets: std::collections::HashSet<u64> = (0..1000)
            .map(|i| bucket(&format!("dir/file-{i}.txt")))
            .collect();
        assert_eq!(buckets.len() as u64, CLUSTER_BUCKETS);
        assert!(KeyLayout::cluster("a{b", "x").is_err());
        // Redis: CLUSTER KEYSLOT foo = 12182, {user1000}.following = 3443.
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), 3443);
        assert_eq!(key_slot("{}x"), key_slot("{}x"));
        assert_eq!(KeyLayout::single("flow").key("a"), "ikkatsu:flow:a");
    }
}
