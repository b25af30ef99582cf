//! The [`PartitionBroker`] conformance suite: one async function per behaviour, each given a
//! [`BrokerUnderTest`] that makes clients of one broker.
//! [`broker_behaviours!`](crate::broker_behaviours) lists them so a backend's tests can
//! generate one test per behaviour; [`run_all`] runs them all in order.
//!
//! Every behaviour works on a queue of its own ([`queue_name`]), so behaviours may run in
//! parallel against one server; each removes its queue at the end
//! ([`BrokerUnderTest::remove`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ikkatsu_core::partition::{Delivery, PartitionBroker, PartitionRequest};

mod proxy;
pub use proxy::Proxy;

/// Makes clients of the broker under test.
#[async_trait]
pub trait BrokerUnderTest: Send + Sync {
    /// A new client (a connection of its own once used) for `url` and `queue`.
    fn open(&self, url: &str, queue: &str) -> Arc<dyn PartitionBroker>;

    /// The URL of the running broker.
    fn url(&self) -> String;

    /// A URL of this broker's scheme with the user `ikkatsu` and `password` for
    /// `127.0.0.1:port`, where nothing listens.
    fn url_at(&self, port: u16, password: &str) -> String;

    /// The URL of the running broker with its port replaced by `port` (on 127.0.0.1), for
    /// a [`Proxy`] in between.
    fn url_via(&self, port: u16) -> String;

    /// The running broker's `host:port`.
    fn address(&self) -> String;

    /// How long after a client went away (its connection closed, or not) its
    /// unacknowledged request may take to be delivered again, at most.
    fn redelivery_within(&self) -> Duration;

    /// Puts `body` on `queue` as a message, bypassing the client (the queue exists).
    async fn send_raw(&self, queue: &str, body: &[u8]);

    /// Deletes `queue` (and whatever the broker made for it) from the server.
    async fn remove(&self, queue: &str);
}

/// Calls `$m!(name, name, …)` with the name of every behaviour of this suite.
#[macro_export]
macro_rules! broker_behaviours {
    ($m:ident) => {
        $m!(
            sent_request_is_received,
            acknowledged_request_is_not_delivered_again,
            requeued_request_is_redelivered,
            request_of_a_dropped_client_goes_to_another,
            concurrent_clients_share_the_requests,
            receive_waits_for_a_request,
            unreadable_message_is_dropped,
            a_busy_client_does_not_hoard_requests,
            clients_starting_at_once_all_succeed,
            reconnects_after_a_lost_connection,
            lost_broker_ends_a_waiting_receive,
            unreachable_broker_is_an_error_without_the_password
        );
    };
}

/// Runs every behaviour against `broker`.
pub async fn run_all(broker: &dyn BrokerUnderTest) {
    macro_rules! run {
        ($($name:ident),*) => {
            $( $name(broker).await; )*
        };
    }
    broker_behaviours!(run);
}

/// A queue name no other test uses: `ikkatsu.test.<run>.<counter>.<behaviour>`.
pub fn queue_name(behaviour: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    format!(
        "ikkatsu.test.{}-{run}.{}.{behaviour}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The request for partition `n`.
pub fn request(n: i64) -> PartitionRequest {
    PartitionRequest {
        job_execution_id: 7,
        step_execution_id: n,
        step_name: "load".to_string(),
        partition: format!("load:partition{n}"),
    }
}

/// How long a receive is given when a request is expected.
const EXPECTED: Duration = Duration::from_secs(60);

/// How long a receive must stay waiting when no request is expected.
const QUIET: Duration = Duration::from_millis(1500);

async fn receive(client: &Arc<dyn PartitionBroker>) -> Box<dyn Delivery> {
    match tokio::time::timeout(EXPECTED, client.receive()).await {
        Ok(Ok(delivery)) => delivery,
        Ok(Err(err)) => panic!("receiving from {}: {}", client.describe(), err.report()),
        Err(_) => panic!("no request from {} within {EXPECTED:?}", client.describe()),
    }
}

/// Asserts that `client` receives nothing within `wait`.
async fn assert_nothing(client: &Arc<dyn PartitionBroker>, wait: Duration) {
    match tokio::time::timeout(wait, client.receive()).await {
        Err(_) => {}
        Ok(Ok(delivery)) => panic!(
            "{} delivered {:?} (redelivered: {}) where nothing was due",
            client.describe(),
            delivery.request(),
            delivery.redelivered()
        ),
        Ok(Err(err)) => panic!(
            "receiving from {} failed instead of waiting: {}",
            client.describe(),
            err.report()
        ),
    }
}

async fn send(client: &Arc<dyn PartitionBroker>, request: &PartitionRequest) {
    client
        .send(request)
        .await
        .unwrap_or_else(|err| panic!("sending to {}: {}", client.describe(), err.report()));
}

/// What a manager sends, a worker (another client) receives, unchanged and not marked
/// redelivered; `describe` names the queue.
pub async fn sent_request_is_received(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("received");
    let manager = broker.open(&broker.url(), &queue);
    let worker = broker.open(&broker.url(), &queue);
    assert!(
        manager.describe().contains(&queue),
        "{}",
        manager.describe()
    );
    send(&manager, &request(1)).await;
    send(&manager, &request(2)).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let delivery = receive(&worker).await;
        assert!(!delivery.redelivered());
        got.push(delivery.request().clone());
        delivery.ack().await.unwrap();
    }
    got.sort_by_key(|r| r.step_execution_id);
    assert_eq!(got, vec![request(1), request(2)]);
    broker.remove(&queue).await;
}

/// An acknowledged request is gone: neither the client nor a later one gets it again, even
/// after the client went away and the redelivery time passed.
pub async fn acknowledged_request_is_not_delivered_again(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("acked");
    let manager = broker.open(&broker.url(), &queue);
    send(&manager, &request(1)).await;
    let worker = broker.open(&broker.url(), &queue);
    let delivery = receive(&worker).await;
    assert_eq!(delivery.request(), &request(1));
    delivery.in_progress().await.unwrap();
    delivery.ack().await.unwrap();
    drop(worker);
    let next = broker.open(&broker.url(), &queue);
    assert_nothing(&next, broker.redelivery_within() + QUIET).await;
    broker.remove(&queue).await;
}

/// A requeued request comes again, marked redelivered.
pub async fn requeued_request_is_redelivered(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("requeued");
    let client = broker.open(&broker.url(), &queue);
    send(&client, &request(3)).await;
    let first = receive(&client).await;
    assert!(!first.redelivered());
    first.requeue().await.unwrap();
    let again = receive(&client).await;
    assert_eq!(again.request(), &request(3));
    assert!(
        again.redelivered(),
        "a requeued request is marked redelivered"
    );
    again.ack().await.unwrap();
    assert_nothing(&client, QUIET).await;
    broker.remove(&queue).await;
}

/// A client that goes away holding an unacknowledged request loses it to another client,
/// which sees it marked redelivered.
pub async fn request_of_a_dropped_client_goes_to_another(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("dropped");
    let manager = broker.open(&broker.url(), &queue);
    send(&manager, &request(4)).await;
    let doomed = broker.open(&broker.url(), &queue);
    let held = receive(&doomed).await;
    assert_eq!(held.request(), &request(4));
    drop(held);
    drop(doomed);
    let other = broker.open(&broker.url(), &queue);
    let delivery =
        match tokio::time::timeout(broker.redelivery_within() + EXPECTED, other.receive()).await {
            Ok(result) => result.unwrap(),
            Err(_) => panic!("the request of a dropped client was not delivered again"),
        };
    assert_eq!(delivery.request(), &request(4));
    assert!(delivery.redelivered());
    delivery.ack().await.unwrap();
    broker.remove(&queue).await;
}

/// Two clients receiving at once share the requests: each is delivered exactly once.
pub async fn concurrent_clients_share_the_requests(broker: &dyn BrokerUnderTest) {
    const N: i64 = 20;
    let queue = queue_name("concurrent");
    let manager = broker.open(&broker.url(), &queue);
    let workers: Vec<_> = (0..2).map(|_| broker.open(&broker.url(), &queue)).collect();
    // Both workers wait before the first request is sent.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<(usize, i64)>(N as usize);
    let mut tasks = Vec::new();
    for (index, worker) in workers.iter().enumerate() {
        let (worker, done) = (worker.clone(), done_tx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let delivery = match worker.receive().await {
                    Ok(delivery) => delivery,
                    Err(err) => panic!("worker {index}: {}", err.report()),
                };
                let id = delivery.request().step_execution_id;
                assert!(!delivery.redelivered(), "request {id} redelivered");
                delivery.ack().await.unwrap();
                if done.send((index, id)).await.is_err() {
                    return;
                }
            }
        }));
    }
    drop(done_tx);
    for n in 0..N {
        send(&manager, &request(n)).await;
    }
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for _ in 0..N {
        let (_, id) = tokio::time::timeout(EXPECTED, done_rx.recv())
            .await
            .expect("all requests received in time")
            .expect("the workers run");
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(seen.len(), N as usize, "every request delivered: {seen:?}");
    assert!(seen.values().all(|&count| count == 1), "{seen:?}");
    // Nothing more comes.
    assert!(
        tokio::time::timeout(QUIET, done_rx.recv()).await.is_err(),
        "a request was delivered twice"
    );
    for task in tasks {
        task.abort();
    }
    broker.remove(&queue).await;
}

/// Receiving from an empty queue waits (it neither fails nor returns nothing), and gets the
/// request sent while it waits.
pub async fn receive_waits_for_a_request(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("waits");
    let worker = broker.open(&broker.url(), &queue);
    let manager = broker.open(&broker.url(), &queue);
    assert_nothing(&worker, QUIET).await;
    let waiting = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.receive().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "receive returned on an empty queue");
    send(&manager, &request(5)).await;
    let delivery = tokio::time::timeout(EXPECTED, waiting)
        .await
        .expect("the waiting receive gets the request")
        .unwrap()
        .unwrap();
    assert_eq!(delivery.request(), &request(5));
    delivery.ack().await.unwrap();
    broker.remove(&queue).await;
}

/// A broker where nothing listens: send and receive fail (no waiting, no "nothing") with an
/// error naming the broker by its masked URL, never the password.
pub async fn unreachable_broker_is_an_error_without_the_password(broker: &dyn BrokerUnderTest) {
    let password = "s3cr3t-Pa55word";
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = broker.url_at(port, password);
    let client = broker.open(&url, &queue_name("unreachable"));
    assert!(
        !client.describe().contains(password),
        "{}",
        client.describe()
    );
    let masked = ikkatsu_core::secret::mask_url(&url);
    assert!(!masked.contains(password));
    let err = tokio::time::timeout(EXPECTED, client.send(&request(1)))
        .await
        .expect("send fails rather than waiting")
        .expect_err("sending to a broker that is not there fails");
    let report = err.report();
    assert!(
        report.contains(&masked),
        "the error names the broker: {report}"
    );
    assert!(
        !report.contains(password),
        "the error shows the password: {report}"
    );
    assert!(
        err.is_temporary(),
        "a broker that is not there may come back: {report}"
    );
    let err = match tokio::time::timeout(EXPECTED, client.receive()).await {
        Ok(Err(err)) => err,
        Ok(Ok(_)) => panic!("received from a broker that is not there"),
        Err(_) => panic!("receive waits on a broker that is not there"),
    };
    let report = err.report();
    assert!(report.contains(&masked), "{report}");
    assert!(!report.contains(password), "{report}");
}

/// Sends until one succeeds, at most `attempts` times: the first call after a connection
/// was cut may fail (it finds the connection broken), a later one connects again.
async fn send_until_sent(client: &Arc<dyn PartitionBroker>, request: &PartitionRequest) -> usize {
    let mut failures = 0;
    loop {
        match client.send(request).await {
            Ok(()) => return failures,
            Err(err) if failures < 2 => {
                assert!(
                    err.is_temporary(),
                    "a lost connection is a temporary error: {}",
                    err.report()
                );
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => panic!("no reconnection after a lost connection: {}", err.report()),
        }
    }
}

/// A client whose connection was cut connects again: a send after the cut is delivered
/// (through a new connection), and so is the request sent before it.
pub async fn reconnects_after_a_lost_connection(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("reconnect");
    let proxy = Proxy::start(broker.address()).await;
    let client = broker.open(&broker.url_via(proxy.port()), &queue);
    send(&client, &request(1)).await;
    let before = proxy.accepted();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_until_sent(&client, &request(2)).await;
    assert!(proxy.accepted() > before, "a new connection was made");
    let worker = broker.open(&broker.url(), &queue);
    let mut got = Vec::new();
    for _ in 0..2 {
        let delivery = receive(&worker).await;
        got.push(delivery.request().step_execution_id);
        delivery.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, vec![1, 2]);
    broker.remove(&queue).await;
}

/// A receive waiting on a broker that goes away ends with an error naming the broker,
/// rather than waiting for ever or returning nothing.
pub async fn lost_broker_ends_a_waiting_receive(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("lost");
    let proxy = Proxy::start(broker.address()).await;
    let url = broker.url_via(proxy.port());
    let client = broker.open(&url, &queue);
    assert_nothing(&client, QUIET).await;
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.receive().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.stop();
    let err = match tokio::time::timeout(EXPECTED, waiting).await {
        Ok(Ok(Err(err))) => err,
        Ok(Ok(Ok(_))) => panic!("received from a broker that went away"),
        Ok(Err(panic)) => panic!("receive panicked: {panic}"),
        Err(_) => panic!("receive kept waiting on a broker that went away"),
    };
    let report = err.report();
    assert!(
        report.contains(&ikkatsu_core::secret::mask_url(&url)),
        "the error names the broker: {report}"
    );
    broker.remove(&queue).await;
}

/// A message that is not a partition request (another program's message on the queue) is
/// dropped with a warning: the receive goes on to the next request, and the message does
/// not come again.
pub async fn unreadable_message_is_dropped(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("unreadable");
    let client = broker.open(&broker.url(), &queue);
    send(&client, &request(1)).await;
    broker.send_raw(&queue, b"{not a partition request").await;
    send(&client, &request(2)).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let delivery = receive(&client).await;
        got.push(delivery.request().step_execution_id);
        delivery.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, vec![1, 2]);
    assert_nothing(&client, broker.redelivery_within() + QUIET).await;
    broker.remove(&queue).await;
}

/// A client holding one request does not hold the next: a second client gets it while the
/// first request is still unacknowledged.
pub async fn a_busy_client_does_not_hoard_requests(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("hoard");
    let manager = broker.open(&broker.url(), &queue);
    let busy = broker.open(&broker.url(), &queue);
    let idle = broker.open(&broker.url(), &queue);
    send(&manager, &request(1)).await;
    send(&manager, &request(2)).await;
    let first = receive(&busy).await;
    let second = receive(&idle).await;
    let mut ids = [
        first.request().step_execution_id,
        second.request().step_execution_id,
    ];
    ids.sort();
    assert_eq!(ids, [1, 2]);
    first.ack().await.unwrap();
    second.ack().await.unwrap();
    broker.remove(&queue).await;
}

/// Clients starting at once on a queue that does not exist yet all succeed (each creates
/// or finds what the broker needs), and share the requests.
pub async fn clients_starting_at_once_all_succeed(broker: &dyn BrokerUnderTest) {
    let queue = queue_name("race");
    let clients: Vec<_> = (0..4).map(|_| broker.open(&broker.url(), &queue)).collect();
    let mut sends = tokio::task::JoinSet::new();
    for (n, client) in clients.iter().enumerate() {
        let client = client.clone();
        sends.spawn(async move { client.send(&request(n as i64)).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap()
            .unwrap_or_else(|err| panic!("a client starting at once: {}", err.report()));
    }
    let mut receives = tokio::task::JoinSet::new();
    for client in &clients {
        let client = client.clone();
        receives.spawn(async move {
            let delivery = tokio::time::timeout(EXPECTED, client.receive())
                .await
                .expect("a request for every client")
                .unwrap_or_else(|err| panic!("a client starting at once: {}", err.report()));
            let id = delivery.request().step_execution_id;
            delivery.ack().await.unwrap();
            id
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = receives.join_next().await {
        ids.push(id.unwrap());
    }
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2, 3]);
    broker.remove(&queue).await;
}
