//! Live updates as they leave a write: the events mutations publish once their
//! transaction has committed, and the bus that carries them to every instance's
//! subscribers, through Redis pub/sub when `REDIS_URL` is set, in process otherwise.
//!
//! With Redis, an instance's own events come back to it through its one Redis
//! subscription, like everyone else's, so every instance sees one order: Redis's. When
//! that subscription is lost the bus says so ([`Notice::Interrupted`]), subscribes again
//! with a growing pause, and says when it is back and which span of time it may have
//! missed ([`Notice::Resumed`]): subscribers are told, so they can refetch.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{post, user};
use futures::StreamExt as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::{
    config::{Config, SecretUrl},
    telemetry::{
        EVENTS_INTERRUPTIONS_TOTAL, EVENTS_PUBLISH_ERRORS_TOTAL, EVENTS_PUBLISHED_TOTAL,
        EVENTS_RECEIVED_TOTAL,
    },
};

/// Notices an instance's hub may fall behind by before it is told it lagged.
const BACKLOG: usize = 4096;
/// The first pause before subscribing to Redis again; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// How often the Redis subscription is pinged, so a Redis that hangs is noticed too.
const PING_EVERY: Duration = Duration::from_secs(5);
/// The least time a `PUBLISH` is given, whatever `CACHE_TIMEOUT_MS` says: giving up on one
/// that Redis was about to take costs a duplicate check, a cache read does not.
const MIN_PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);
/// How many of the last events' ids are remembered, so that none is delivered twice.
const REMEMBERED: usize = 4096;

/// A change that has been committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Event {
    PostCreated { post: post::Model },
    PostUpdated { post: post::Model },
    PostDeleted { id: Uuid, author_id: Uuid },
    UserUpdated { user: user::Model },
    UserDeleted { id: Uuid },
}

/// What one subscription field listens to, with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// New posts, every author's or one author's.
    PostCreated { author_id: Option<Uuid> },
    /// Changed posts, all of them or one.
    PostUpdated { id: Option<Uuid> },
    /// Deleted posts, every author's or one author's.
    PostDeleted { author_id: Option<Uuid> },
    /// One user's changes, and their deletion.
    UserUpdated { id: Uuid },
}

impl Topic {
    /// Whether `event` is one this topic's subscribers receive.
    pub fn matches(&self, event: &Event) -> bool {
        let is = |wanted: &Option<Uuid>, actual: Uuid| wanted.is_none_or(|wanted| wanted == actual);
        match (self, event) {
            (Self::PostCreated { author_id }, Event::PostCreated { post }) => is(author_id, post.author_id),
            (Self::PostUpdated { id }, Event::PostUpdated { post }) => is(id, post.id),
            (Self::PostDeleted { author_id: wanted }, Event::PostDeleted { author_id, .. }) => {
                is(wanted, *author_id)
            }
            (Self::UserUpdated { id }, Event::UserUpdated { user }) => *id == user.id,
            (Self::UserUpdated { id }, Event::UserDeleted { id: deleted }) => id == deleted,
            _ => false,
        }
    }

    /// Whether `event` is the last this topic will ever see (its user was deleted).
    pub fn ends_with(&self, event: &Event) -> bool {
        matches!((self, event), (Self::UserUpdated { id }, Event::UserDeleted { id: deleted }) if id == deleted)
    }
}

/// An event as it travels through Redis: with an id, so the instance that delivered it
/// itself (its `PUBLISH` seemed to fail) can tell it when Redis passes it on after all.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    id: Uuid,
    event: Event,
}

/// What the bus hands each instance's hub.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A committed change.
    Event(Arc<Event>),
    /// Events may be missed from `since` until a [`Notice::Resumed`].
    Interrupted { since: DateTime<Utc> },
    /// Delivery is back; events committed between `since` and `until` may have been missed.
    Resumed { since: DateTime<Utc>, until: DateTime<Utc> },
}

/// Publishes events after commit and hands them to this instance's hub. Cheap to clone.
#[derive(Clone)]
pub struct EventBus(Arc<Inner>);

struct Inner {
    /// Every notice this instance's subscribers should see.
    local: broadcast::Sender<Notice>,
    /// `None`: in-process only.
    redis: Option<Remote>,
    /// Dropped with the bus, which stops the Redis listener.
    _stop: watch::Sender<()>,
}

/// The Redis side: a connection to publish on, and the channel every instance listens to.
struct Remote {
    publisher: ConnectionManager,
    channel: String,
    timeout: Duration,
    /// What this instance has delivered, shared with its listener.
    seen: Arc<Mutex<Seen>>,
}

impl EventBus {
    /// Through Redis when `REDIS_URL` is set (whatever `CACHE` says), in process otherwise.
    /// Connects lazily and keeps trying, so a Redis that is down at start delays nothing.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match config.redis_url.as_ref().filter(|url| !url.expose().is_empty()) {
            Some(url) => Self::redis(
                url,
                format!("{}:v1:events", config.cache_prefix),
                Duration::from_millis(config.cache_timeout_ms).max(MIN_PUBLISH_TIMEOUT),
            ),
            None => Ok(Self::in_process()),
        }
    }

    /// Events stay in this process: for a single instance.
    pub fn in_process() -> Self {
        let (stop, _) = watch::channel(());
        Self(Arc::new(Inner { local: broadcast::channel(BACKLOG).0, redis: None, _stop: stop }))
    }

    /// Events go through the Redis channel `channel`; publishing waits at most `timeout`.
    pub fn redis(url: &SecretUrl, channel: String, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("the Redis URL is not valid: {}", url.scrub(&e.to_string())))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| anyhow::anyhow!("setting up the Redis connection: {}", url.scrub(&e.to_string())))?;
        let local = broadcast::channel(BACKLOG).0;
        let (stop, stopped) = watch::channel(());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let relayed = Relayed { local: local.clone(), seen: seen.clone() };
        tokio::spawn(listen(client, channel.clone(), relayed, stopped));
        let remote = Remote { publisher, channel, timeout, seen };
        Ok(Self(Arc::new(Inner { local, redis: Some(remote), _stop: stop })))
    }

    /// Sends a committed change to every instance's subscribers. Never fails the write it
    /// follows: when Redis cannot take it, this instance's subscribers still get it and the
    /// failure is counted (the other instances see the interruption on their own).
    pub async fn publish(&self, event: Event) {
        let kind = event.kind();
        metrics::counter!(EVENTS_PUBLISHED_TOTAL, "event" => kind).increment(1);
        if let Some(remote) = &self.0.redis {
            let envelope = Envelope { id: Uuid::new_v4(), event };
            if remote.publish(&envelope).await {
                return;
            }
            metrics::counter!(EVENTS_PUBLISH_ERRORS_TOTAL).increment(1);
            // Under the lock the listener takes too, so that the event is delivered here
            // once whichever comes first: this, or Redis passing it on after all.
            let mut seen = remote.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.first_time(envelope.id) {
                let _ = self.0.local.send(Notice::Event(Arc::new(envelope.event)));
            }
            return;
        }
        let _ = self.0.local.send(Notice::Event(Arc::new(event)));
    }

    /// The notices from now on, for this instance's hub.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.0.local.subscribe()
    }
}

impl Remote {
    /// Publishes on the channel; whether Redis is known to have taken it. A connection
    /// found broken (Redis restarted since the last write) is tried once more, on the new
    /// connection the manager makes.
    async fn publish(&self, envelope: &Envelope) -> bool {
        let message = serde_json::to_vec(envelope).expect("an event serialises");
        let kind = envelope.event.kind();
        for attempt in 1..=2 {
            let mut connection = self.publisher.clone();
            let mut command = redis::cmd("PUBLISH");
            command.arg(&self.channel).arg(&message);
            match tokio::time::timeout(self.timeout, command.query_async::<i64>(&mut connection)).await {
                Ok(Ok(_)) => return true,
                // Not after a timeout: that `PUBLISH` may yet be taken.
                Ok(Err(error))
                    if attempt == 1
                        && !error.is_timeout()
                        && (error.is_io_error() || error.is_connection_dropped()) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, event = kind, "cannot publish an event to Redis");
                    return false;
                }
                Err(_) => {
                    tracing::warn!(event = kind, "publishing an event to Redis timed out");
                    return false;
                }
            }
        }
        false
    }
}

impl Event {
    /// The event's name, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PostCreated { .. } => "postCreated",
            Self::PostUpdated { .. } => "postUpdated",
            Self::PostDeleted { .. } => "postDeleted",
            Self::UserUpdated { .. } | Self::UserDeleted { .. } => "userUpdated",
        }
    }
}

/// Keeps one Redis subscription to `channel` for the instance, passing what arrives to
/// `local`, until the bus is dropped. Every loss and every return is a notice.
async fn listen(client: redis::Client, channel: String, relayed: Relayed, mut stop: watch::Receiver<()>) {
    let local = &relayed.local;
    let mut interrupted: Option<DateTime<Utc>> = None;
    let mut pause = FIRST_PAUSE;
    loop {
        let subscribed = tokio::select! {
            subscribed = subscribe(&client, &channel) => subscribed,
            _ = stop.changed() => return,
        };
        match subscribed {
            Ok(pubsub) => {
                pause = FIRST_PAUSE;
                if let Some(since) = interrupted.take() {
                    tracing::info!(%since, "Redis is back: live updates resumed");
                    let _ = local.send(Notice::Resumed { since, until: Utc::now() });
                }
                let outcome = tokio::select! {
                    outcome = relay(pubsub, &relayed) => outcome,
                    _ = stop.changed() => return,
                };
                tracing::warn!(reason = outcome, "lost the Redis subscription: live updates interrupted");
            }
            Err(error) if interrupted.is_none() => {
                tracing::warn!(%error, "cannot subscribe to Redis: live updates interrupted");
            }
            Err(_) => {}
        }
        if interrupted.is_none() {
            let since = Utc::now();
            interrupted = Some(since);
            metrics::counter!(EVENTS_INTERRUPTIONS_TOTAL).increment(1);
            let _ = local.send(Notice::Interrupted { since });
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

async fn subscribe(client: &redis::Client, channel: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Where the listener passes events on.
struct Relayed {
    local: broadcast::Sender<Notice>,
    /// What this instance has delivered, shared with its publisher.
    seen: Arc<Mutex<Seen>>,
}

/// The ids of the last events this instance delivered, so that one published twice (a
/// retried `PUBLISH` that had gone through after all) or delivered here because its
/// `PUBLISH` seemed to fail, and then passed on by Redis, is delivered once.
#[derive(Default)]
struct Seen {
    ids: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl Seen {
    /// Remembers `id`; whether it was new.
    fn first_time(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        if self.order.len() == REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id);
        true
    }
}

/// Passes messages on until the subscription is lost; says why it was.
async fn relay(pubsub: redis::aio::PubSub, relayed: &Relayed) -> &'static str {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return "the connection closed" };
                match serde_json::from_slice::<Envelope>(message.get_payload_bytes()) {
                    Ok(envelope) => {
                        metrics::counter!(EVENTS_RECEIVED_TOTAL).increment(1);
                        let mut seen = relayed.seen.lock().unwrap_or_else(|e| e.into_inner());
                        if seen.first_time(envelope.id) {
                            let _ = relayed.local.send(Notice::Event(Arc::new(envelope.event)));
                        }
                    }
                    Err(error) => tracing::warn!(%error, "ignoring a message on the events channel that is not an event"),
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return "a ping failed",
                    Err(_) => return "a ping went unanswered",
                }
            }
        }
    }
}
