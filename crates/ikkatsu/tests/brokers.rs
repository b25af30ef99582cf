//! The facade's registry has the partition brokers of the enabled features, and making a
//! client connects nowhere (the URLs below point at ports where nothing listens).
#![cfg(all(feature = "rabbitmq", feature = "nats"))]

use ikkatsu::config::AppConfig;
use ikkatsu::config::registry::BrokerSettings;

#[test]
fn every_broker_scheme_is_registered() {
    let registry = ikkatsu::registry(AppConfig::default());
    for (url, shown) in [
        (
            "amqp://bob:hunter22@127.0.0.1:1/%2f",
            "amqp://bob:***@127.0.0.1:1/%2f",
        ),
        (
            "amqps://bob:hunter22@127.0.0.1:1/%2f",
            "amqps://bob:***@127.0.0.1:1/%2f",
        ),
        (
            "nats://bob:hunter22@127.0.0.1:1",
            "nats://bob:***@127.0.0.1:1",
        ),
        (
            "tls://bob:hunter22@127.0.0.1:1",
            "tls://bob:***@127.0.0.1:1",
        ),
    ] {
        let broker = registry
            .broker(&BrokerSettings::new(url, "ikkatsu.partitions"))
            .unwrap_or_else(|err| panic!("{url}: {err}"));
        assert_eq!(
            broker.describe(),
            format!("{shown} queue ikkatsu.partitions")
        );
    }
    let err = registry
        .broker(&BrokerSettings::new("kafka://127.0.0.1:1", "q"))
        .err()
        .unwrap();
    for scheme in ikkatsu::broker::SCHEMES {
        assert!(err.message().contains(scheme), "{err}");
    }
    assert_eq!(ikkatsu::broker::SCHEMES, ["amqp", "amqps", "nats", "tls"]);
}
