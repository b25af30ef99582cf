//! The broker conformance suite against the NATS JetStream named by `IKKATSU_TEST_NATS_URL`
//! (default `nats://127.0.0.1:4222`), one test per behaviour, each on a subject (and so a
//! stream) of its own that it deletes at the end. The clients use an ack wait of 2s, so
//! that a request of a client that went away comes again within the test.
#![cfg(feature = "nats")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ikkatsu_broker::NatsBroker;
use ikkatsu_config::registry::BrokerSettings;
use ikkatsu_core::partition::PartitionBroker;
use ikkatsu_testkit::broker::{BrokerUnderTest, queue_name, request};

const ACK_WAIT: &str = "2s";

struct Nats;

fn url() -> String {
    std::env::var("IKKATSU_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

fn with_ack_wait(url: &str) -> String {
    format!("{url}?ack-wait={ACK_WAIT}")
}

fn stream_of(queue: &str) -> String {
    NatsBroker::new(&BrokerSettings::new(url(), queue))
        .unwrap()
        .stream_name()
}

async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url()).await.unwrap())
}

#[async_trait]
impl BrokerUnderTest for Nats {
    fn open(&self, url: &str, queue: &str) -> Arc<dyn PartitionBroker> {
        Arc::new(NatsBroker::new(&BrokerSettings::new(with_ack_wait(url), queue)).unwrap())
    }

    fn url(&self) -> String {
        url()
    }

    fn url_at(&self, port: u16, password: &str) -> String {
        format!("nats://ikkatsu:{password}@127.0.0.1:{port}")
    }

    fn url_via(&self, port: u16) -> String {
        url().replace(":4222", &format!(":{port}"))
    }

    fn address(&self) -> String {
        "127.0.0.1:4222".to_string()
    }

    fn redelivery_within(&self) -> Duration {
        Duration::from_secs(2)
    }

    async fn send_raw(&self, queue: &str, body: &[u8]) {
        jetstream()
            .await
            .publish(queue.to_string(), body.to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn remove(&self, queue: &str) {
        jetstream()
            .await
            .delete_stream(stream_of(queue))
            .await
            .unwrap();
    }
}

macro_rules! tests {
    ($($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                ikkatsu_testkit::broker::$name(&Nats).await;
            }
        )*
    };
}

ikkatsu_testkit::broker_behaviours!(tests);

/// The stream and consumer are what docs/partitioning.md says: named after the subject,
/// work-queue retention, file storage, one durable consumer with explicit acks and the
/// URL's ack wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_and_consumer_are_as_documented() {
    use async_nats::jetstream::{consumer, stream};
    let queue = queue_name("layout");
    let client = Nats.open(&url(), &queue);
    client.send(&request(1)).await.unwrap();
    let delivery = client.receive().await.unwrap();
    delivery.ack().await.unwrap();
    let js = jetstream().await;
    let mut stream = js.get_stream(stream_of(&queue)).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.subjects, vec![queue.clone()]);
    assert_eq!(info.config.retention, stream::RetentionPolicy::WorkQueue);
    assert_eq!(info.config.storage, stream::StorageType::File);
    assert_eq!(
        info.state.messages, 0,
        "an acknowledged request leaves the stream"
    );
    let mut consumer: consumer::PullConsumer = stream
        .get_consumer(ikkatsu_broker::nats::CONSUMER)
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(
        info.config.durable_name.as_deref(),
        Some(ikkatsu_broker::nats::CONSUMER)
    );
    assert_eq!(info.config.ack_policy, consumer::AckPolicy::Explicit);
    assert_eq!(info.config.ack_wait, Duration::from_secs(2));
    Nats.remove(&queue).await;
}

/// `in_progress` holds a request past the ack wait: it is not delivered to another client
/// while its holder keeps reporting progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_extends_the_ack_wait() {
    let queue = queue_name("progress");
    let holder = Nats.open(&url(), &queue);
    let other = Nats.open(&url(), &queue);
    holder.send(&request(1)).await.unwrap();
    let delivery = holder.receive().await.unwrap();
    let waiting = {
        let other = other.clone();
        tokio::spawn(async move { other.receive().await })
    };
    // Three ack waits long, progress every half ack wait.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        delivery.in_progress().await.unwrap();
    }
    assert!(
        !waiting.is_finished(),
        "the request was delivered again despite progress"
    );
    delivery.ack().await.unwrap();
    waiting.abort();
    Nats.remove(&queue).await;
}
