//! [`RabbitMqBroker`]: partition requests on a durable RabbitMQ queue (`amqp://`, `amqps://`).
//!
//! * The queue named by the settings is declared durable by the first send and the first
//!   receive (so either side may start first); requests are persistent messages, and a send
//!   returns once the broker confirmed it (publisher confirms).
//! * Each receive takes one request on a channel of its own with a prefetch of 1, so a busy
//!   worker holds only the requests it runs. The request stays unacknowledged until
//!   [`Delivery::ack`]; when the worker's connection drops first, RabbitMQ delivers it
//!   again (`redelivered`). [`Delivery::requeue`] is a nack with requeue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use ikkatsu_config::registry::BrokerSettings;
use ikkatsu_core::Result;
use ikkatsu_core::partition::{Delivery, PartitionBroker, PartitionRequest};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::endpoint::Endpoint;

/// AMQP's `delivery-mode` of a persistent message.
const PERSISTENT: u8 = 2;

/// A RabbitMQ client sending and receiving partition requests on one durable queue.
///
/// Made without connecting; the first [`send`](PartitionBroker::send) or
/// [`receive`](PartitionBroker::receive) connects, and the next call after a lost
/// connection connects again.
pub struct RabbitMqBroker {
    endpoint: Arc<Endpoint>,
    session: Mutex<Option<Arc<Session>>>,
    consumers: AtomicU64,
}

/// One connection and its publishing channel (publisher confirms on).
struct Session {
    connection: Connection,
    publisher: Channel,
}

impl Session {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

impl RabbitMqBroker {
    /// A client for `settings.url` (`amqp://user:password@host:5672/vhost`, the vhost
    /// percent-encoded: `%2f` is `/`) and the queue `settings.queue`. Does not connect.
    pub fn new(settings: &BrokerSettings) -> Result<Self> {
        Ok(RabbitMqBroker {
            endpoint: Arc::new(Endpoint::new("RabbitMQ", settings)?),
            session: Mutex::new(None),
            consumers: AtomicU64::new(0),
        })
    }

    /// The connected session, connecting (again) when there is none or it was lost.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref()
            && session.usable()
        {
            return Ok(session.clone());
        }
        *slot = None;
        let endpoint = &self.endpoint;
        let properties = ConnectionProperties::default().with_connection_name("ikkatsu".into());
        let connection = Connection::connect(&endpoint.url, properties)
            .await
            .map_err(|err| endpoint.connection_error("cannot connect", err))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|err| endpoint.connection_error("cannot open a channel", err))?;
        self.declare(&publisher).await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|err| endpoint.connection_error("cannot turn publisher confirms on", err))?;
        let session = Arc::new(Session {
            connection,
            publisher,
        });
        *slot = Some(session.clone());
        tracing::debug!(broker = %endpoint.describe(), "connected");
        Ok(session)
    }

    /// Declares the durable queue (idempotent).
    async fn declare(&self, channel: &Channel) -> Result<()> {
        let endpoint = &self.endpoint;
        channel
            .queue_declare(
                endpoint.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|err| {
                endpoint.error(
                    "cannot declare the durable queue (a queue of that name with other settings exists?)",
                    err,
                    false,
                )
            })?;
        Ok(())
    }

    /// Receives on `channel` until a readable request arrives; an unreadable message is
    /// rejected (dropped) with a warning.
    async fn take_one(
        &self,
        channel: &Channel,
        tag: &str,
    ) -> Result<(lapin::message::Delivery, PartitionRequest)> {
        let endpoint = &self.endpoint;
        let mut consumer = channel
            .basic_consume(
                endpoint.queue.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|err| endpoint.connection_error("cannot start consuming", err))?;
        loop {
            let delivery = match consumer.next().await {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) => {
                    return Err(endpoint.connection_error("lost the connection while waiting", err));
                }
                None => {
                    return Err(endpoint.connection_error(
                        "the broker ended the consumer while waiting (queue deleted?)",
                        "consumer cancelled",
                    ));
                }
            };
            let request = match PartitionRequest::from_bytes(&delivery.data) {
                Ok(request) => request,
                Err(err) => {
                    tracing::warn!(broker = %endpoint.describe(), error = %err, "unreadable message dropped from the queue");
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                        .map_err(|err| endpoint.connection_error("cannot drop a message", err))?;
                    continue;
                }
            };
            channel
                .basic_cancel(tag.into(), BasicCancelOptions::default())
                .await
                .map_err(|err| endpoint.connection_error("cannot stop consuming", err))?;
            return Ok((delivery, request));
        }
    }
}

#[async_trait]
impl PartitionBroker for RabbitMqBroker {
    fn describe(&self) -> String {
        self.endpoint.describe()
    }

    async fn send(&self, request: &PartitionRequest) -> Result<()> {
        let endpoint = &self.endpoint;
        let session = self.session().await?;
        let confirm = session
            .publisher
            .basic_publish(
                "".into(),
                endpoint.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &request.to_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(PERSISTENT)
                    .with_content_type("application/json".into()),
            )
            .await
            .map_err(|err| endpoint.connection_error("cannot send", err))?
            .await
            .map_err(|err| endpoint.connection_error("no confirmation of a sent request", err))?;
        if confirm.is_nack() {
            return Err(endpoint.error(
                "the broker refused the request (nack); try again",
                "negative confirmation",
                true,
            ));
        }
        if confirm.take_message().is_some() {
            return Err(endpoint.error(
                "the request reached no queue",
                "returned as unroutable",
                false,
            ));
        }
        Ok(())
    }

    async fn receive(&self) -> Result<Box<dyn Delivery>> {
        let endpoint = &self.endpoint;
        let session = self.session().await?;
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|err| endpoint.connection_error("cannot open a channel", err))?;
        channel
            .basic_qos(1, BasicQosOptions::default())
            .await
            .map_err(|err| endpoint.connection_error("cannot set the prefetch", err))?;
        self.declare(&channel).await?;
        let tag = format!(
            "ikkatsu-{}-{}",
            std::process::id(),
            self.consumers.fetch_add(1, Ordering::Relaxed)
        );
        let (delivery, request) = self.take_one(&channel, &tag).await?;
        Ok(Box::new(RabbitMqDelivery {
            request,
            redelivered: delivery.redelivered,
            acker: delivery.acker,
            channel,
            endpoint: endpoint.clone(),
        }))
    }
}

/// A request received from RabbitMQ, unacknowledged until [`Delivery::ack`]. Dropping it
/// closes its channel: RabbitMQ then delivers the request again.
struct RabbitMqDelivery {
    request: PartitionRequest,
    redelivered: bool,
    acker: lapin::Acker,
    channel: Channel,
    endpoint: Arc<Endpoint>,
}

impl RabbitMqDelivery {
    async fn close(self) {
        if let Err(err) = self.channel.close(200, "done".into()).await {
            tracing::debug!(error = %self.endpoint.scrub(&err.to_string()), "closing a delivery's channel");
        }
    }
}

#[async_trait]
impl Delivery for RabbitMqDelivery {
    fn request(&self) -> &PartitionRequest {
        &self.request
    }

    fn redelivered(&self) -> bool {
        self.redelivered
    }

    async fn ack(self: Box<Self>) -> Result<()> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|err| {
                self.endpoint.connection_error(
                    "cannot acknowledge a request (it will be delivered again)",
                    err,
                )
            })?;
        self.close().await;
        Ok(())
    }

    async fn requeue(self: Box<Self>) -> Result<()> {
        self.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .map_err(|err| {
                self.endpoint.connection_error(
                    "cannot hand a request back (it will be delivered again when the connection closes)",
                    err,
                )
            })?;
        self.close().await;
        Ok(())
    }
}
