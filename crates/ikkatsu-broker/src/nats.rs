//! [`NatsBroker`]: partition requests on a NATS JetStream work-queue stream (`nats://`,
//! `tls://`).
//!
//! * The queue is the subject; the stream is named after it (`ikkatsu.partitions` →
//!   `IKKATSU_PARTITIONS`): work-queue retention (a request is gone once acknowledged), file
//!   storage. Sender and receiver create it when it does not exist, so either may start
//!   first, and two starting at once both succeed.
//! * All workers share one durable pull consumer, `ikkatsu-workers` (explicit
//!   acknowledgement). Each receive pulls one request, so a busy worker holds only the
//!   requests it runs.
//! * A request not acknowledged within the ack wait (`?ack-wait=`, 30s by default) is
//!   delivered again; a worker running a partition extends the wait with
//!   [`Delivery::in_progress`] at every heartbeat. [`Delivery::requeue`] is a NAK
//!   (delivered again at once). `redelivered` is a delivery count above 1.
//! * A send returns once the stream stored the request (the publish acknowledgement).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;
use ikkatsu_config::registry::BrokerSettings;
use ikkatsu_core::duration::HumanDuration;
use ikkatsu_core::partition::{Delivery, PartitionBroker, PartitionRequest};
use ikkatsu_core::{Error, Result};
use tokio::sync::{Mutex, OnceCell};

use crate::endpoint::Endpoint;

/// The durable consumer all workers share.
pub const CONSUMER: &str = "ikkatsu-workers";

/// The ack wait when the URL does not set one.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// How long one pull waits for a request before it checks the connection and pulls again.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// How many requests may be out (delivered, not yet acknowledged) across all workers.
const MAX_ACK_PENDING: i64 = 100_000;

/// A NATS JetStream client sending and receiving partition requests on one subject.
///
/// Made without connecting; the first [`send`](PartitionBroker::send) or
/// [`receive`](PartitionBroker::receive) connects. The NATS client reconnects by itself
/// while it can; a call that finds the connection lost makes a new one.
pub struct NatsBroker {
    endpoint: Arc<Endpoint>,
    /// The URL without ikkatsu's query options.
    server: String,
    ack_wait: Duration,
    session: Mutex<Option<Arc<Session>>>,
}

/// A connection, its JetStream context, and (once received from) the shared consumer.
struct Session {
    client: async_nats::Client,
    context: jetstream::Context,
    stream: stream::Stream,
    consumer: OnceCell<consumer::PullConsumer>,
}

impl NatsBroker {
    /// A client for `settings.url` (`nats://[user:password@]host:4222`, `tls://…`; the
    /// option `?ack-wait=30s` sets the consumer's ack wait) on the subject
    /// `settings.queue`. Does not connect.
    pub fn new(settings: &BrokerSettings) -> Result<Self> {
        let endpoint = Endpoint::new("NATS JetStream", settings)?;
        if endpoint.queue.contains(['*', '>', ' ', '\t'])
            || endpoint.queue.starts_with('.')
            || endpoint.queue.ends_with('.')
            || endpoint.queue.contains("..")
        {
            return Err(Error::config(format!(
                "NATS JetStream broker {}: `{}` is not a subject to publish on (no wildcards, spaces or empty tokens); write e.g. ikkatsu.partitions",
                endpoint.shown, endpoint.queue
            )));
        }
        let (server, query) = match settings.url.split_once('?') {
            Some((server, query)) => (server.to_string(), query),
            None => (settings.url.clone(), ""),
        };
        let mut ack_wait = DEFAULT_ACK_WAIT;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "ack-wait" => {
                    ack_wait = value
                        .parse::<HumanDuration>()
                        .ok()
                        .map(|d| d.0)
                        .filter(|d| *d >= Duration::from_secs(1))
                        .ok_or_else(|| {
                            Error::config(format!(
                                "NATS JetStream broker {}: ack-wait `{value}` is not a duration of at least 1s (write e.g. ack-wait=30s)",
                                endpoint.shown
                            ))
                        })?;
                }
                other => {
                    return Err(Error::config(format!(
                        "NATS JetStream broker {}: unknown URL option `{other}` (known: ack-wait)",
                        endpoint.shown
                    )));
                }
            }
        }
        Ok(NatsBroker {
            endpoint: Arc::new(endpoint),
            server,
            ack_wait,
            session: Mutex::new(None),
        })
    }

    /// The stream's name: the queue upper-cased, every character other than a letter, a
    /// digit, `-` or `_` as `_` (`ikkatsu.partitions` → `IKKATSU_PARTITIONS`).
    pub fn stream_name(&self) -> String {
        stream_name(&self.endpoint.queue)
    }

    /// The consumer's ack wait.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// The connected session, connecting (again) when there is none or it was lost.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref()
            && session.client.connection_state() != async_nats::connection::State::Disconnected
        {
            return Ok(session.clone());
        }
        *slot = None;
        let endpoint = &self.endpoint;
        let client = async_nats::ConnectOptions::new()
            .name("ikkatsu")
            .connection_timeout(Duration::from_secs(10))
            .connect(self.server.as_str())
            .await
            .map_err(|err| endpoint.connection_error("cannot connect", err))?;
        let context = jetstream::new(client.clone());
        let stream = self.create_stream(&context).await?;
        let session = Arc::new(Session {
            client,
            context,
            stream,
            consumer: OnceCell::new(),
        });
        *slot = Some(session.clone());
        tracing::debug!(broker = %endpoint.describe(), "connected");
        Ok(session)
    }

    /// Finds or creates the work-queue stream; a stream created by another client at the
    /// same moment is found.
    async fn create_stream(&self, context: &jetstream::Context) -> Result<stream::Stream> {
        let config = stream::Config {
            name: self.stream_name(),
            subjects: vec![self.endpoint.queue.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..stream::Config::default()
        };
        match context.get_or_create_stream(config).await {
            Ok(stream) => Ok(stream),
            Err(first) => context.get_stream(self.stream_name()).await.map_err(|_| {
                self.endpoint.error(
                    &format!(
                        "cannot create the stream {} (is JetStream enabled on the server? does another stream take the subject?)",
                        self.stream_name()
                    ),
                    first,
                    true,
                )
            }),
        }
    }

    /// The shared durable consumer, created (or its settings brought up to date) on first
    /// use.
    async fn consumer(&self, session: &Session) -> Result<consumer::PullConsumer> {
        session
            .consumer
            .get_or_try_init(|| async {
                let config = consumer::pull::Config {
                    durable_name: Some(CONSUMER.to_string()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_ack_pending: MAX_ACK_PENDING,
                    ..consumer::pull::Config::default()
                };
                session.stream.create_consumer(config).await.map_err(|err| {
                    self.endpoint.error(
                        &format!(
                            "cannot create the consumer {CONSUMER} on the stream {}",
                            self.stream_name()
                        ),
                        err,
                        true,
                    )
                })
            })
            .await
            .cloned()
    }

    /// Forgets `session` (after an error), so that the next call connects anew.
    async fn forget(&self, session: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *slot = None;
        }
    }
}

/// The stream of a queue (see [`NatsBroker::stream_name`]).
fn stream_name(queue: &str) -> String {
    queue
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[async_trait]
impl PartitionBroker for NatsBroker {
    fn describe(&self) -> String {
        self.endpoint.describe()
    }

    async fn send(&self, request: &PartitionRequest) -> Result<()> {
        let endpoint = &self.endpoint;
        let session = self.session().await?;
        let sent = async {
            session
                .context
                .publish(endpoint.queue.clone(), request.to_bytes().into())
                .await
                .map_err(|err| endpoint.connection_error("cannot send", err))?
                .await
                .map_err(|err| endpoint.connection_error("the stream did not store a request", err))
        }
        .await;
        if sent.is_err() {
            self.forget(&session).await;
        }
        sent.map(|_| ())
    }

    async fn receive(&self) -> Result<Box<dyn Delivery>> {
        let endpoint = &self.endpoint;
        let session = self.session().await?;
        let consumer = self.consumer(&session).await?;
        loop {
            let pulled = consumer
                .batch()
                .max_messages(1)
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            let next = match pulled {
                Ok(mut batch) => batch.next().await,
                Err(err) => {
                    self.forget(&session).await;
                    return Err(endpoint.connection_error("cannot pull", err));
                }
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    self.forget(&session).await;
                    return Err(endpoint.connection_error("lost the connection while waiting", err));
                }
                None => {
                    if session.client.connection_state()
                        == async_nats::connection::State::Disconnected
                    {
                        self.forget(&session).await;
                        return Err(endpoint.connection_error(
                            "lost the connection while waiting",
                            "disconnected",
                        ));
                    }
                    continue;
                }
            };
            let request = match PartitionRequest::from_bytes(&message.payload) {
                Ok(request) => request,
                Err(err) => {
                    tracing::warn!(broker = %endpoint.describe(), error = %err, "unreadable message dropped from the stream");
                    message
                        .ack_with(AckKind::Term)
                        .await
                        .map_err(|err| endpoint.connection_error("cannot drop a message", err))?;
                    continue;
                }
            };
            let redelivered = message.info().is_ok_and(|info| info.delivered > 1);
            return Ok(Box::new(NatsDelivery {
                request,
                redelivered,
                message,
                endpoint: endpoint.clone(),
            }));
        }
    }
}

/// A request received from JetStream, delivered again after the ack wait unless
/// acknowledged (or kept in progress) before.
struct NatsDelivery {
    request: PartitionRequest,
    redelivered: bool,
    message: jetstream::Message,
    endpoint: Arc<Endpoint>,
}

#[async_trait]
impl Delivery for NatsDelivery {
    fn request(&self) -> &PartitionRequest {
        &self.request
    }

    fn redelivered(&self) -> bool {
        self.redelivered
    }

    async fn ack(self: Box<Self>) -> Result<()> {
        self.message.double_ack().await.map_err(|err| {
            self.endpoint.connection_error(
                "cannot acknowledge a request (it will be delivered again after the ack wait)",
                err,
            )
        })
    }

    async fn requeue(self: Box<Self>) -> Result<()> {
        self.message
            .ack_with(AckKind::Nak(None))
            .await
            .map_err(|err| {
                self.endpoint.connection_error(
                    "cannot hand a request back (it will be delivered again after the ack wait)",
                    err,
                )
            })
    }

    async fn in_progress(&self) -> Result<()> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|err| {
                self.endpoint
                    .connection_error("cannot extend the ack wait of a request", err)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(url: &str, queue: &str) -> Result<NatsBroker> {
        NatsBroker::new(&BrokerSettings::new(url, queue))
    }

    #[test]
    fn the_stream_is_named_after_the_queue() {
        let b = broker("nats://127.0.0.1:4222", "ikkatsu.partitions").unwrap();
        assert_eq!(b.stream_name(), "IKKATSU_PARTITIONS");
        assert_eq!(stream_name("a-b.c_d/e"), "A-B_C_D_E");
    }

    #[test]
    fn ack_wait_is_read_from_the_url() {
        let b = broker("nats://127.0.0.1:4222?ack-wait=2m", "q").unwrap();
        assert_eq!(b.ack_wait(), Duration::from_secs(120));
        assert_eq!(b.server, "nats://127.0.0.1:4222");
        assert_eq!(
            broker("nats://h:4222", "q").unwrap().ack_wait(),
            DEFAULT_ACK_WAIT
        );
    }

    #[test]
    fn bad_options_and_subjects_are_refused() {
        for (url, queue, says) in [
            ("nats://u:hunter22@h?ack-wait=0s", "q", "at least 1s"),
            ("nats://u:hunter22@h?ack-wait=soon", "q", "at least 1s"),
            (
                "nats://u:hunter22@h?prefetch=1",
                "q",
                "unknown URL option `prefetch`",
            ),
            ("nats://u:hunter22@h", "a.*", "not a subject"),
            ("nats://u:hunter22@h", "a..b", "not a subject"),
        ] {
            let err = broker(url, queue).err().unwrap();
            assert!(err.message().contains(says), "{url} {queue}: {err}");
            assert!(!err.message().contains("hunter22"), "{err}");
            assert!(err.message().contains("nats://u:***@h"), "{err}");
        }
    }
}
