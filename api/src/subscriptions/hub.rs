//! The instance's subscriptions, and the one task that answers each event for all of them.
//!
//! Subscribers that send the same document with the same variables, as the same caller,
//! form a group: an event is executed once per group and the payload, serialised once, is
//! queued for each member. A member whose queue is full is a slow subscriber: it is told
//! to close (see `socket`), and the others never wait on it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use async_graphql::{Request, Response, ServerError, Variables};
use futures::StreamExt as _;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::{
    auth::Caller,
    events::{Event, Notice, Topic},
    graphql::Executor,
    telemetry::{EVENTS_DELIVERED_TOTAL, EVENTS_DROPPED_TOTAL, SUBSCRIPTIONS_ACTIVE},
};

/// What the hub hands a connection to send.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A payload for subscription `id`: a GraphQL response as JSON text.
    Next { id: Arc<str>, payload: Arc<str> },
    /// Subscription `id` is over (its user was deleted, or its operation answered).
    Complete { id: Arc<str> },
}

/// Where a connection's events go: a bounded queue, and the alarm that tells the
/// connection it fell behind.
#[derive(Clone)]
pub struct Outbox {
    /// The connection this outbox belongs to.
    pub connection: u64,
    pub queue: mpsc::Sender<Outgoing>,
    /// Notified when the queue was full: the connection closes.
    pub overflowed: Arc<Notify>,
}

impl Outbox {
    /// Queues `message` without waiting; a full queue raises the alarm instead.
    fn offer(&self, message: Outgoing) -> bool {
        match self.queue.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(EVENTS_DROPPED_TOTAL, "reason" => "slow_subscriber").increment(1);
                self.overflowed.notify_one();
                false
            }
            // The connection is closing and takes its subscriptions with it.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The instance's subscriptions. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

struct Inner {
    executor: Executor,
    groups: Mutex<HashMap<GroupKey, Arc<Group>>>,
}

/// What makes two subscriptions answer every event the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    query: String,
    operation_name: Option<String>,
    /// The variables as JSON text.
    variables: String,
    caller: Caller,
}

struct Group {
    key: GroupKey,
    variables: Variables,
    topic: Topic,
    members: Mutex<Vec<Member>>,
}

struct Member {
    id: Arc<str>,
    outbox: Outbox,
}

impl Group {
    fn request(&self) -> Request {
        let mut request = Request::new(self.key.query.clone()).variables(self.variables.clone());
        request.operation_name.clone_from(&self.key.operation_name);
        request
    }
}

impl Hub {
    /// A hub executing with `executor`, answering the notices of `notices` until the hub
    /// is dropped.
    pub fn start(executor: Executor, notices: broadcast::Receiver<Notice>) -> Self {
        let hub = Self(Arc::new(Inner { executor, groups: Mutex::default() }));
        tokio::spawn(dispatch(Arc::downgrade(&hub.0), notices));
        hub
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<GroupKey, Arc<Group>>> {
        self.0.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds subscription `id` of `outbox`'s connection, or answers why it cannot be; from
    /// now on its events arrive in the outbox.
    pub async fn subscribe(
        &self,
        request: Request,
        caller: Caller,
        id: Arc<str>,
        outbox: Outbox,
    ) -> Result<(), Vec<ServerError>> {
        let key = GroupKey {
            variables: serde_json::to_string(&request.variables).expect("variables serialise"),
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            caller,
        };
        let existing = self.groups().get(&key).cloned();
        let group = match existing {
            // The same document, variables and caller were accepted before: so is this one.
            Some(group) => group,
            None => {
                let variables = request.variables.clone();
                let topic = self.0.executor.subscribe(request, caller).await?;
                let group = Arc::new(Group { key: key.clone(), variables, topic, members: Mutex::default() });
                self.groups().entry(key).or_insert(group).clone()
            }
        };
        group.members.lock().unwrap_or_else(|e| e.into_inner()).push(Member { id, outbox });
        // The group may have been emptied and removed meanwhile: put it back.
        self.groups().entry(group.key.clone()).or_insert(group);
        metrics::gauge!(SUBSCRIPTIONS_ACTIVE).increment(1.0);
        Ok(())
    }

    /// Ends subscription `id` of `connection`, if it is listening.
    pub fn unsubscribe(&self, connection: u64, id: &str) {
        self.remove(|member| member.outbox.connection == connection && &*member.id == id);
    }

    /// Ends every subscription of `connection`.
    pub fn leave(&self, connection: u64) {
        self.remove(|member| member.outbox.connection == connection);
    }

    fn remove(&self, gone: impl Fn(&Member) -> bool) {
        let mut groups = self.groups();
        let mut removed = 0_usize;
        groups.retain(|_, group| {
            let mut members = group.members.lock().unwrap_or_else(|e| e.into_inner());
            let before = members.len();
            members.retain(|member| !gone(member));
            removed += before - members.len();
            !members.is_empty()
        });
        #[allow(clippy::cast_precision_loss, reason = "a count of subscriptions")]
        metrics::gauge!(SUBSCRIPTIONS_ACTIVE).decrement(removed as f64);
    }

    /// Answers `event` for every group listening to it, side by side.
    async fn answer(&self, event: Arc<Event>) -> Answered {
        let listening: Vec<Arc<Group>> =
            self.groups().values().filter(|group| group.topic.matches(&event)).cloned().collect();
        let executor = &self.0.executor;
        let answers = futures::future::join_all(
            listening.iter().map(|group| executor.deliver(group.request(), group.key.caller, event.clone())),
        )
        .await;
        Answered { event, listening, answers }
    }

    /// Queues each group's answer, serialised once, for the group's members.
    fn deliver(&self, Answered { event, listening, answers }: Answered) {
        for (group, answer) in listening.iter().zip(answers) {
            let Some(answer) = answer else { continue };
            let payload: Arc<str> = serde_json::to_string(&answer).expect("a response serialises").into();
            let last = group.topic.ends_with(&event);
            let mut members = group.members.lock().unwrap_or_else(|e| e.into_inner());
            let mut delivered = 0_u64;
            for member in members.iter() {
                let next = Outgoing::Next { id: member.id.clone(), payload: payload.clone() };
                delivered += u64::from(member.outbox.offer(next));
                if last {
                    member.outbox.offer(Outgoing::Complete { id: member.id.clone() });
                }
            }
            metrics::counter!(EVENTS_DELIVERED_TOTAL).increment(delivered);
            if last {
                let ended = std::mem::take(&mut *members).len();
                drop(members);
                self.groups().remove(&group.key);
                #[allow(clippy::cast_precision_loss, reason = "a count of subscriptions")]
                metrics::gauge!(SUBSCRIPTIONS_ACTIVE).decrement(ended as f64);
            }
        }
    }

    /// What the hub sends for `notice`, or for `Err(missed)`: that many notices were
    /// lost because the hub fell behind the bus.
    async fn reply(&self, notice: Result<Notice, u64>) -> Reply {
        match notice {
            Ok(Notice::Event(event)) => Reply::Answered(self.answer(event).await),
            Ok(Notice::Interrupted { since }) => Reply::Everyone(gap::interrupted(since)),
            Ok(Notice::Resumed { since, until }) => Reply::Everyone(gap::missed(since, until)),
            Err(missed) => {
                metrics::counter!(EVENTS_DROPPED_TOTAL, "reason" => "lagged").increment(missed);
                let now = chrono::Utc::now();
                Reply::Everyone(gap::missed(now, now))
            }
        }
    }

    fn send(&self, reply: Reply) {
        match reply {
            Reply::Answered(answered) => self.deliver(answered),
            Reply::Everyone(payload) => self.tell_everyone(&payload),
        }
    }

    /// Queues `payload` for every subscription on the instance.
    fn tell_everyone(&self, payload: &Arc<str>) {
        let groups: Vec<Arc<Group>> = self.groups().values().cloned().collect();
        for group in groups {
            for member in group.members.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                member.outbox.offer(Outgoing::Next { id: member.id.clone(), payload: payload.clone() });
            }
        }
    }
}

/// An event's answers, one per group listening to it (`None` where the group's document
/// answered nothing).
struct Answered {
    event: Arc<Event>,
    listening: Vec<Arc<Group>>,
    answers: Vec<Option<Response>>,
}

/// What the hub sends for one notice.
enum Reply {
    Answered(Answered),
    /// One payload for every subscription (a gap in the events).
    Everyone(Arc<str>),
}

/// Notices answered at once. An answer may wait on the user cache or the database (a
/// payload's `author`); answered one after another, every event behind a slow one waited
/// for it, and the tail of the delivery latency was that queue. Payloads still go out in
/// the order the bus gives the events.
const ANSWERING_AT_ONCE: usize = 16;

/// The hub's one task: every notice, answered up to [`ANSWERING_AT_ONCE`] at a time and
/// sent in the order the bus gives them.
async fn dispatch(hub: Weak<Inner>, notices: broadcast::Receiver<Notice>) {
    let notices = futures::stream::unfold(notices, |mut notices| async move {
        let notice = match notices.recv().await {
            Ok(notice) => Ok(notice),
            Err(broadcast::error::RecvError::Lagged(missed)) => Err(missed),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((notice, notices))
    });
    let replies = notices
        .map(|notice| {
            let hub = hub.upgrade().map(Hub);
            async move {
                let hub = hub?;
                let reply = hub.reply(notice).await;
                Some((hub, reply))
            }
        })
        .buffered(ANSWERING_AT_ONCE);
    tokio::pin!(replies);
    // Ends with the bus, or with the hub (its last handle dropped).
    while let Some(Some((hub, reply))) = replies.next().await {
        hub.send(reply);
    }
}

/// The payloads that tell subscribers events may have been missed: GraphQL responses
/// with one error and no data, sent on every subscription, which stays open.
pub mod gap {
    use std::sync::Arc;

    use chrono::{DateTime, SecondsFormat, Utc};
    use serde_json::json;

    /// The code of the notice sent when delivery stops.
    pub const INTERRUPTED: &str = "EVENTS_INTERRUPTED";
    /// The code of the notice sent when delivery is back: refetch.
    pub const MISSED: &str = "EVENTS_MISSED";

    fn time(at: DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub(super) fn interrupted(since: DateTime<Utc>) -> Arc<str> {
        json!({ "errors": [{
            "message": "live updates are interrupted: events from now until they resume may be missed",
            "extensions": { "code": INTERRUPTED, "since": time(since) },
        }] })
        .to_string()
        .into()
    }

    pub(super) fn missed(since: DateTime<Utc>, until: DateTime<Utc>) -> Arc<str> {
        json!({ "errors": [{
            "message": "live updates resumed: events committed in between may have been missed, refetch what you show",
            "extensions": { "code": MISSED, "since": time(since), "until": time(until) },
        }] })
        .to_string()
        .into()
    }
}
