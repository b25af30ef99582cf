//! # ikkatsu-broker
//!
//! The message brokers that carry partition requests from a partitioned step's manager to
//! `ikkatsu worker` processes: implementations of the
//! [`PartitionBroker`](ikkatsu_core::partition::PartitionBroker) port, one module per broker,
//! each behind a feature:
//!
//! | feature | schemes | type |
//! |---------|---------|------|
//! | `rabbitmq` | `amqp://`, `amqps://` | `RabbitMqBroker` (a durable queue) |
//! | `nats` | `nats://`, `tls://` | `NatsBroker` (a JetStream work-queue stream) |
//!
//! Clients connect on their first send or receive (never when made, so `ikkatsu validate`
//! needs no broker) and connect again after a lost connection. Delivery is at least once:
//! a worker acknowledges a request after its partition's final commit.
//!
//! [`register`] adds the schemes of the enabled features to a component registry:
//!
//! ```
//! use ikkatsu_config::{ComponentRegistry, registry::BrokerSettings};
//!
//! let mut registry = ComponentRegistry::new();
//! ikkatsu_broker::register(&mut registry);
//! # #[cfg(feature = "rabbitmq")]
//! # {
//! // Making a client does not connect.
//! let broker = registry
//!     .broker(&BrokerSettings::new("amqp://guest:secret@127.0.0.1:5672/%2f", "ikkatsu.partitions"))
//!     .unwrap();
//! assert_eq!(broker.describe(), "amqp://guest:***@127.0.0.1:5672/%2f queue ikkatsu.partitions");
//! # }
//! ```
#![deny(missing_docs)]

#[cfg(any(feature = "rabbitmq", feature = "nats"))]
mod endpoint;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;

#[cfg(feature = "nats")]
pub use nats::NatsBroker;
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::RabbitMqBroker;

use ikkatsu_config::ComponentRegistry;

/// The URL schemes of the brokers this build has (by feature), in the order of the table
/// above.
pub const SCHEMES: &[&str] = &[
    #[cfg(feature = "rabbitmq")]
    "amqp",
    #[cfg(feature = "rabbitmq")]
    "amqps",
    #[cfg(feature = "nats")]
    "nats",
    #[cfg(feature = "nats")]
    "tls",
];

/// Registers the brokers of the enabled features for their URL schemes
/// (`registry.broker(&settings)` then makes a client for a URL).
pub fn register(registry: &mut ComponentRegistry) {
    #[cfg(feature = "rabbitmq")]
    for scheme in ["amqp", "amqps"] {
        registry.register_broker(scheme, |settings| {
            Ok(std::sync::Arc::new(RabbitMqBroker::new(settings)?)
                as std::sync::Arc<
                    dyn ikkatsu_core::partition::PartitionBroker,
                >)
        });
    }
    #[cfg(feature = "nats")]
    for scheme in ["nats", "tls"] {
        registry.register_broker(scheme, |settings| {
            Ok(std::sync::Arc::new(NatsBroker::new(settings)?)
                as std::sync::Arc<
                    dyn ikkatsu_core::partition::PartitionBroker,
                >)
        });
    }
    let _ = registry;
}
