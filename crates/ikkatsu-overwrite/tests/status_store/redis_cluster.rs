//! The status store on a Redis Cluster: the conformance suite (with and without reads from
//! replicas) on the cluster of `scripts/redis-cluster` (3 masters + 3 replicas on
//! 127.0.0.1:7101-7106) or the one `IKKATSU_TEST_REDIS_CLUSTER_URL` names, and what only a
//! cluster has: keys spread over the masters, writes waiting for the replicas, the errors.

use super::*;
use ikkatsu_storage::FileInfo;

fn cluster_url() -> String {
    std::env::var("IKKATSU_TEST_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103/".to_string()
    })
}

/// `redis://HOST:PORT` of the first seed node of `url`.
fn first_node(url: &str) -> String {
    let rest = url.trim_start_matches("redis+cluster://");
    let node = rest.split([',', '/']).next().unwrap_or(rest);
    format!("redis://{node}/")
}

/// `redis://HOST:PORT` of every master, from CLUSTER SLOTS on the first seed node.
async fn masters(url: &str) -> Vec<String> {
    let seed = first_node(url);
    let client = redis::Client::open(seed.as_str()).unwrap();
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "the Redis Cluster at {seed} does not answer ({err}): start it with \
                 scripts/redis-cluster start, or set IKKATSU_TEST_REDIS_CLUSTER_URL"
            )
        });
    let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut out: Vec<String> = Vec::new();
    for range in ranges {
        let node: Vec<redis::Value> = redis::from_redis_value(range[2].clone()).unwrap();
        let host: String = redis::from_redis_value(node[0].clone()).unwrap();
        let port: u16 = redis::from_redis_value(node[1].clone()).unwrap();
        let address = format!("redis://{host}:{port}/");
        if !out.contains(&address) {
            out.push(address);
        }
    }
    out
}

/// The keys matching `pattern` on each master, deleted when `delete`.
async fn keys_per_master(url: &str, pattern: &str, delete: bool) -> Vec<usize> {
    let mut found = Vec::new();
    for master in masters(url).await {
        let client = redis::Client::open(master.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let mut cursor: u64 = 0;
        let mut count = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .unwrap();
            count += keys.len();
            if delete && !keys.is_empty() {
                // One DEL per key: the keys of a node span several slots.
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("DEL").arg(key).ignore();
                }
                pipe.query_async::<()>(&mut connection).await.unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        found.push(count);
    }
    found
}

async fn conformance(url: String) {
    let factory = Arc::new(UrlFactory::new(url.clone()));
    let running = Arc::clone(&factory);
    let outcome = tokio::spawn(async move {
        run_all(running.as_ref()).await;
        running.close_all().await;
    })
    .await;
    keys_per_master(&url, &format!("ikkatsu:{{{}-*", factory.tag), true).await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_conformance() {
    conformance(cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_read_from_replicas_conformance() {
    let url = cluster_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    conformance(format!("{url}{sep}read-from-replicas=true")).await;
}

/// One batch of reports and lookups spreads over the masters: the cluster is really
/// used, with the documented key layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_batch_spreads_over_masters() {
    let url = cluster_url();
    let namespace = format!("spread-{}", unique_tag());
    let store = ikkatsu_overwrite::open_status_store(&url, StatusStoreOptions::new(&namespace))
        .await
        .unwrap();
    let files: Vec<FileInfo> = (0..300)
        .map(|i| FileInfo::new(format!("dir/f{i}.txt"), i))
        .collect();
    assert_eq!(store.needs_processing(files.clone()).await.unwrap(), files);
    assert!(store.is_empty().await.unwrap());
    let done: Vec<(FileInfo, FileInfo)> = files.iter().map(|f| (f.clone(), f.clone())).collect();
    store.report_done_all(&done).await.unwrap();
    assert!(
        store
            .needs_processing(files.clone())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().await.unwrap().done, 300);
    assert!(!store.is_empty().await.unwrap());

    let pattern = format!("ikkatsu:{{{namespace}:*");
    let per_master = keys_per_master(&url, &pattern, false).await;
    assert_eq!(per_master.iter().sum::<usize>(), 300, "{per_master:?}");
    assert!(
        per_master.iter().filter(|&&n| n > 0).count() >= 2,
        "one batch should span several masters: {per_master:?}"
    );
    // The key of a file names its bucket as the hash tag.
    let path = "dir/f7.txt";
    let key = format!(
        "ikkatsu:{{{namespace}:{}}}:{path}",
        ikkatsu_overwrite::redis_cluster_bucket(path)
    );
    let client = redis::cluster::ClusterClient::new(vec![first_node(&url)]).unwrap();
    let mut connection = client.get_async_connection().await.unwrap();
    let state: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("state")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(state.as_deref(), Some("done"));

    store.clear().await.unwrap();
    assert!(store.is_empty().await.unwrap());
    assert_eq!(
        keys_per_master(&url, &pattern, false)
            .await
            .iter()
            .sum::<usize>(),
        0
    );
}

/// `WAIT` calls served by the masters so far.
async fn wait_calls(url: &str) -> u64 {
    let mut total = 0;
    for master in masters(url).await {
        let client = redis::Client::open(master.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection)
            .await
            .unwrap();
        total += info
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_wait:calls="))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// With reads from replicas, every write group waits for the replicas (`WAIT`) before
/// it returns, so that the next lookup (on a replica) sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_writes_wait_for_replicas() {
    let url = cluster_url();
    let namespace = format!("wait-{}", unique_tag());
    let store = ikkatsu_overwrite::open_status_store(
        &format!("{url}?read-from-replicas=true"),
        StatusStoreOptions::new(&namespace),
    )
    .await
    .unwrap();
    let files: Vec<FileInfo> = (0..40).map(|i| FileInfo::new(format!("w{i}"), i)).collect();
    let buckets: std::collections::HashSet<u64> = files
        .iter()
        .map(|f| ikkatsu_overwrite::redis_cluster_bucket(&f.path))
        .collect();
    let before = wait_calls(&url).await;
    let done: Vec<(FileInfo, FileInfo)> = files.iter().map(|f| (f.clone(), f.clone())).collect();
    store.report_done_all(&done).await.unwrap();
    assert_eq!(store.report_error(&files[0], "x").await.unwrap(), 1);
    let after = wait_calls(&url).await;
    assert!(
        after > before + buckets.len() as u64,
        "{before} -> {after} for {} buckets",
        buckets.len()
    );
    assert_eq!(
        store.needs_processing(files.clone()).await.unwrap(),
        vec![files[0].clone()]
    );
    store.clear().await.unwrap();
}

#[tokio::test]
async fn redis_cluster_unreachable_is_a_clear_error() {
    let err = ikkatsu_overwrite::open_status_store(
        "redis+cluster://u:secret@127.0.0.1:1,127.0.0.1:2/",
        StatusStoreOptions::default(),
    )
    .await
    .err()
    .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("redis+cluster://u:***@127.0.0.1:1,127.0.0.1:2/"),
        "{text}"
    );
    assert!(text.contains("nodes 127.0.0.1:1, 127.0.0.1:2"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

/// A plain Redis server (not in cluster mode) given as a cluster is a clear error.
#[tokio::test]
async fn redis_cluster_url_on_a_plain_server_is_a_clear_error() {
    let plain = std::env::var("IKKATSU_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let node = plain
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let err = ikkatsu_overwrite::open_status_store(
        &format!("redis+cluster://{node}/"),
        StatusStoreOptions::default(),
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains(&format!("nodes {node}")), "{err}");
}

#[tokio::test]
async fn redis_cluster_bad_urls_and_namespaces() {
    for (url, expected) in [
        ("redis+cluster://127.0.0.1:7101/2", "database 0 only"),
        (
            "redis+cluster://127.0.0.1:7101/?read-from-replica=true",
            "unknown parameter `read-from-replica`",
        ),
    ] {
        let err = ikkatsu_overwrite::open_status_store(url, StatusStoreOptions::default())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let err = ikkatsu_overwrite::open_status_store(&cluster_url(), StatusStoreOptions::new("a{b}"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("without braces"), "{err}");
}
