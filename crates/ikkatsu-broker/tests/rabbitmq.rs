//! The broker conformance suite against the RabbitMQ named by `IKKATSU_TEST_AMQP_URL`
//! (default `amqp://guest:guest@127.0.0.1:5672/%2f`), one test per behaviour, each on a
//! queue of its own that it deletes at the end.
#![cfg(feature = "rabbitmq")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ikkatsu_broker::RabbitMqBroker;
use ikkatsu_config::registry::BrokerSettings;
use ikkatsu_core::partition::PartitionBroker;
use ikkatsu_testkit::broker::BrokerUnderTest;
use lapin::options::QueueDeleteOptions;

struct RabbitMq;

fn url() -> String {
    std::env::var("IKKATSU_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

#[async_trait]
impl BrokerUnderTest for RabbitMq {
    fn open(&self, url: &str, queue: &str) -> Arc<dyn PartitionBroker> {
        Arc::new(RabbitMqBroker::new(&BrokerSettings::new(url, queue)).unwrap())
    }

    fn url(&self) -> String {
        url()
    }

    fn url_at(&self, port: u16, password: &str) -> String {
        format!("amqp://ikkatsu:{password}@127.0.0.1:{port}/%2f")
    }

    fn url_via(&self, port: u16) -> String {
        url().replace(":5672", &format!(":{port}"))
    }

    fn address(&self) -> String {
        "127.0.0.1:5672".to_string()
    }

    fn redelivery_within(&self) -> Duration {
        // RabbitMQ requeues as soon as the connection closes.
        Duration::ZERO
    }

    async fn send_raw(&self, queue: &str, body: &[u8]) {
        let connection = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        connection.close(200, "done".into()).await.ok();
    }

    async fn remove(&self, queue: &str) {
        let connection = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        connection.close(200, "done".into()).await.ok();
    }
}

macro_rules! tests {
    ($($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                ikkatsu_testkit::broker::$name(&RabbitMq).await;
            }
        )*
    };
}

ikkatsu_testkit::broker_behaviours!(tests);

/// The queue is durable and a sent request is a persistent message: a passive declare of a
/// durable queue succeeds, and the message is still there for a client that connects later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_is_durable_and_requests_persistent() {
    let queue = ikkatsu_testkit::broker::queue_name("durable");
    let manager = RabbitMq.open(&url(), &queue);
    manager
        .send(&ikkatsu_testkit::broker::request(1))
        .await
        .unwrap();
    drop(manager);
    let connection = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    // Redeclaring with other durability fails: the queue is durable.
    let declared = channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(declared.message_count(), 1);
    let got = channel
        .basic_get(
            queue.as_str().into(),
            lapin::options::BasicGetOptions::default(),
        )
        .await
        .unwrap()
        .expect("the request is in the queue");
    assert_eq!(got.delivery.properties.delivery_mode(), &Some(2));
    got.delivery
        .acker
        .ack(lapin::options::BasicAckOptions::default())
        .await
        .unwrap();
    connection.close(200, "done".into()).await.ok();
    RabbitMq.remove(&queue).await;
}

/// Credentials the broker refuses are an error naming the broker by its masked URL, without
/// the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_an_error_without_the_password() {
    let password = "not-the-Pa55word";
    let url = format!("amqp://guest:{password}@127.0.0.1:5672/%2f");
    let client = RabbitMq.open(&url, &ikkatsu_testkit::broker::queue_name("refused"));
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        client.send(&ikkatsu_testkit::broker::request(1)),
    )
    .await
    .expect("a refusal is an answer, not a wait")
    .unwrap_err();
    let report = err.report();
    assert!(
        report.contains("RabbitMQ broker amqp://guest:***@127.0.0.1:5672/%2f"),
        "{report}"
    );
    assert!(!report.contains(password), "{report}");
}

/// `amqps://` verifies the server's certificate against the system's trusted ones: a TLS
/// server with a certificate of the test CA (not in the system store) is refused, with an
/// error naming the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_refuses_an_untrusted_certificate() {
    let address = std::env::var("IKKATSU_TEST_REDIS_TLS_URL")
        .ok()
        .and_then(|u| {
            u.split("://")
                .nth(1)
                .map(|rest| rest.split('/').next().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| "127.0.0.1:6390".to_string());
    let url = format!("amqps://guest:Pa55-tls-word@{address}/%2f");
    let client = RabbitMq.open(&url, &ikkatsu_testkit::broker::queue_name("tls"));
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        client.send(&ikkatsu_testkit::broker::request(1)),
    )
    .await
    .expect("a refused certificate is an answer, not a wait")
    .unwrap_err();
    let report = err.report();
    assert!(
        report.contains(&format!("amqps://guest:***@{address}/%2f")),
        "{report}"
    );
    assert!(report.to_lowercase().contains("certificate"), "{report}");
    assert!(!report.contains("Pa55-tls-word"), "{report}");
}
