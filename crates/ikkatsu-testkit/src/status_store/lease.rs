//! The run-lease behaviours of the status store suite.

use std::sync::Arc;
use std::time::Duration;

use ikkatsu_overwrite::{Lease, LeaseAttempt, StatusStore};

use super::StatusStoreFactory;

fn lease(host: &str, pid: u32, ttl: Duration) -> Lease {
    Lease::new(host, pid, ttl)
}

async fn acquire(
    store: &Arc<dyn StatusStore>,
    me: &Lease,
    take_over: Option<&str>,
) -> LeaseAttempt {
    store
        .acquire_lease(me, take_over)
        .await
        .unwrap_or_else(|err| panic!("acquire_lease on {}: {err}", store.describe()))
}

async fn current(store: &Arc<dyn StatusStore>) -> Option<Lease> {
    store
        .lease()
        .await
        .unwrap_or_else(|err| panic!("lease on {}: {err}", store.describe()))
}

async fn renew(store: &Arc<dyn StatusStore>, me: &Lease) -> bool {
    store
        .renew_lease(me)
        .await
        .unwrap_or_else(|err| panic!("renew_lease on {}: {err}", store.describe()))
}

async fn release(store: &Arc<dyn StatusStore>, token: &str) {
    store
        .release_lease(token)
        .await
        .unwrap_or_else(|err| panic!("release_lease on {}: {err}", store.describe()));
}

const LONG: Duration = Duration::from_secs(600);

/// One holder at a time: a second run is told who holds the lease (host, pid, heartbeat);
/// the holder may take it again, renew it and release it; only the holder's token
/// renews or releases it.
pub async fn lease_is_exclusive(factory: &dyn StatusStoreFactory) {
    let store = factory.open("lease-excl", 3).await;
    let first = lease("host-a", 11, LONG);
    let second = lease("host-b", 22, LONG);
    assert_eq!(current(&store).await, None);
    assert_eq!(
        acquire(&store, &first, None).await,
        LeaseAttempt::Acquired { replaced: None }
    );
    match acquire(&store, &second, None).await {
        LeaseAttempt::Held(holder) => {
            assert_eq!(holder, first);
            assert_eq!((holder.host.as_str(), holder.pid), ("host-a", 11));
        }
        other => panic!(
            "a second run got the lease on {}: {other:?}",
            store.describe()
        ),
    }
    assert_eq!(
        acquire(&store, &first, None).await,
        LeaseAttempt::Acquired { replaced: None },
        "the holder takes its own lease again"
    );
    assert!(!renew(&store, &second).await, "only the holder renews");
    let mut renewed = first.clone();
    renewed.heartbeat += chrono::Duration::seconds(5);
    assert!(renew(&store, &renewed).await);
    assert_eq!(current(&store).await, Some(renewed.clone()));
    release(&store, &second.token).await;
    assert_eq!(
        current(&store).await,
        Some(renewed.clone()),
        "only the holder releases"
    );
    release(&store, &first.token).await;
    assert_eq!(current(&store).await, None);
    assert!(
        !renew(&store, &renewed).await,
        "a released lease is not renewed"
    );
    assert_eq!(
        acquire(&store, &second, None).await,
        LeaseAttempt::Acquired { replaced: None }
    );
}

/// A lease whose heartbeat is older than its time to live is taken by the next run, which
/// is told what it replaced; the old holder can no longer renew it.
pub async fn expired_lease_is_taken_over(factory: &dyn StatusStoreFactory) {
    let store = factory.open("lease-expired", 3).await;
    let mut old = lease("host-a", 11, Duration::from_millis(1));
    old.heartbeat -= chrono::Duration::seconds(10);
    assert_eq!(
        acquire(&store, &old, None).await,
        LeaseAttempt::Acquired { replaced: None }
    );
    let new = lease("host-b", 22, LONG);
    assert_eq!(
        acquire(&store, &new, None).await,
        LeaseAttempt::Acquired {
            replaced: Some(old.clone())
        }
    );
    assert!(!renew(&store, &old).await);
    assert_eq!(current(&store).await, Some(new));
}

/// A live lease is taken only by naming its token (its holder is known to be gone); a
/// wrong token changes nothing.
pub async fn named_lease_is_taken_over(factory: &dyn StatusStoreFactory) {
    let store = factory.open("lease-named", 3).await;
    let old = lease("host-a", 11, LONG);
    let new = lease("host-a", 12, LONG);
    acquire(&store, &old, None).await;
    assert_eq!(
        acquire(&store, &new, Some("not-the-token")).await,
        LeaseAttempt::Held(old.clone())
    );
    assert_eq!(
        acquire(&store, &new, Some(&old.token)).await,
        LeaseAttempt::Acquired {
            replaced: Some(old.clone())
        }
    );
    assert_eq!(current(&store).await, Some(new.clone()));
    release(&store, &new.token).await;
}

/// Leases are per namespace, and clearing the records leaves the lease alone.
pub async fn leases_are_per_namespace(factory: &dyn StatusStoreFactory) {
    let a = factory.open("lease-ns-a", 3).await;
    let b = factory.open("lease-ns-b", 3).await;
    let one = lease("host-a", 11, LONG);
    let two = lease("host-b", 22, LONG);
    assert_eq!(
        acquire(&a, &one, None).await,
        LeaseAttempt::Acquired { replaced: None }
    );
    assert_eq!(
        acquire(&b, &two, None).await,
        LeaseAttempt::Acquired { replaced: None }
    );
    a.clear()
        .await
        .unwrap_or_else(|err| panic!("clear on {}: {err}", a.describe()));
    assert_eq!(current(&a).await, Some(one.clone()));
    release(&a, &one.token).await;
    release(&b, &two.token).await;
}

/// Runs starting at the same moment: exactly one gets the lease, every other one is told
/// that one.
pub async fn concurrent_acquires_one_wins(factory: &dyn StatusStoreFactory) {
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(factory.open("lease-race", 3).await);
    }
    let mut tasks = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let me = lease("host", 100 + i as u32, LONG);
            let attempt = store.acquire_lease(&me, None).await;
            (me, attempt.map_err(|err| err.to_string()))
        }));
    }
    let mut winners = Vec::new();
    let mut holders = Vec::new();
    for task in tasks {
        let (me, attempt) = task.await.unwrap_or_else(|err| panic!("task: {err}"));
        match attempt {
            Ok(LeaseAttempt::Acquired { replaced: None }) => winners.push(me),
            Ok(LeaseAttempt::Held(holder)) => holders.push(holder),
            other => panic!("unexpected outcome of a racing acquire: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one run gets the lease");
    assert!(holders.iter().all(|h| h.token == winners[0].token));
}

/// Cooperating runs split the work: a file claimed by a live run is not granted to
/// another; recording done files records only those still claimed by the recording run
/// (fencing) and drops their claims. Stores without claims skip this behaviour.
pub async fn claims_split_the_work(factory: &dyn StatusStoreFactory) {
    let store = factory.open("claims-split", 3).await;
    if !store.supports_claims() {
        return;
    }
    let a = lease("host-a", 11, LONG);
    let b = lease("host-b", 22, LONG);
    for run in [&a, &b] {
        assert!(store.join_run(run, false).await.unwrap());
        assert!(store.join_run(run, true).await.unwrap(), "renewed");
    }
    let f = |name: &str| super::file(name, 1, 0);
    let granted = store
        .claim(&a, vec![f("1"), f("2"), f("3")])
        .await
        .unwrap_or_else(|err| panic!("claim on {}: {err}", store.describe()));
    assert_eq!(
        granted
            .iter()
            .map(|c| c.file.path.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(granted.iter().all(|c| c.taken_from.is_none()));
    let granted = store.claim(&b, vec![f("2"), f("3"), f("4")]).await.unwrap();
    assert_eq!(
        granted
            .iter()
            .map(|c| c.file.path.as_str())
            .collect::<Vec<_>>(),
        ["4"],
        "files claimed by a live run are not granted"
    );
    assert_eq!(
        store.claim(&a, vec![f("1")]).await.unwrap().len(),
        1,
        "ours again"
    );
    let lost = store
        .report_done_claimed(&a.token, &[(f("1"), f("1")), (f("4"), f("4"))])
        .await
        .unwrap();
    assert_eq!(lost, ["4"], "a run records only what it claimed");
    assert!(store.status("1").await.unwrap().is_some());
    assert_eq!(store.status("4").await.unwrap(), None);
    assert!(
        store
            .report_done_claimed(&b.token, &[(f("4"), f("4"))])
            .await
            .unwrap()
            .is_empty()
    );
    // A recorded file's claim is gone: claiming it again grants it.
    assert_eq!(store.claim(&b, vec![f("1")]).await.unwrap().len(), 1);
    for run in [&a, &b] {
        store.leave_run(&run.token).await.unwrap();
    }
    assert!(store.runs().await.unwrap().is_empty());
}

/// The claims of an expired run are taken over, with the file as that run claimed it (it
/// may have written it before it died); the expired run can no longer record them. A run
/// that leaves drops its claims.
pub async fn expired_run_claims_are_taken_over(factory: &dyn StatusStoreFactory) {
    let store = factory.open("claims-expired", 3).await;
    if !store.supports_claims() {
        return;
    }
    let mut dead = lease("host-a", 11, Duration::from_millis(1));
    dead.heartbeat -= chrono::Duration::seconds(10);
    let live = lease("host-b", 22, LONG);
    store.join_run(&dead, false).await.unwrap();
    store.join_run(&live, false).await.unwrap();
    let mut runs: Vec<String> = store
        .runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.token)
        .collect();
    runs.sort();
    let mut expected = vec![dead.token.clone(), live.token.clone()];
    expected.sort();
    assert_eq!(runs, expected);
    let before = super::file("x", 1, 0);
    store.claim(&dead, vec![before.clone()]).await.unwrap();
    let now = super::file("x", 2, 5);
    let granted = store.claim(&live, vec![now.clone()]).await.unwrap();
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].file, now);
    assert_eq!(granted[0].taken_from, Some(before));
    let lost = store
        .report_done_claimed(&dead.token, &[(now.clone(), now.clone())])
        .await
        .unwrap();
    assert_eq!(lost, ["x"], "the expired run is fenced off");
    store.leave_run(&live.token).await.unwrap();
    let other = lease("host-c", 33, LONG);
    store.join_run(&other, false).await.unwrap();
    let granted = store.claim(&other, vec![now.clone()]).await.unwrap();
    assert_eq!(granted[0].taken_from, None, "the claim left with its run");
    store.leave_run(&other.token).await.unwrap();
    store.leave_run(&dead.token).await.unwrap();
}
