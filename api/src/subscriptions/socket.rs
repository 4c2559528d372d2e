//! One WebSocket connection, in the protocol its `Sec-WebSocket-Protocol` chose:
//! `graphql-transport-ws` (the `graphql-ws` npm client's) or the legacy `graphql-ws` of
//! `subscriptions-transport-ws` (old Apollo clients). Both carry subscriptions, and
//! queries and mutations too.
//!
//! The connection's task reads the client's messages, writes what the hub and its own
//! operations queue for it, pings, and closes with the protocol's codes: 4400 for a
//! message it cannot take, 4401 for an operation before `connection_init`, 4403 for a
//! refused token, 4406 with no protocol it speaks, 4408 when `connection_init` is late,
//! 4409 for an id in use, 4429 for a second `connection_init`; 1013 (try again later)
//! when the client reads too slowly to keep up, and 1001 (going away) on shutdown.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};

use async_graphql::{Response, parser::types::OperationType};
use axum::{
    extract::ws::{CloseFrame, Message, WebSocket},
    http::{HeaderMap, HeaderValue, header},
};
use futures::{SinkExt as _, StreamExt as _, task::AtomicWaker};
use serde_json::{Value, json};
use tokio::{
    sync::{Notify, futures::Notified, mpsc, watch},
    task::AbortHandle,
};

use super::{
    SocketSettings, SocketSlot,
    hub::{Hub, Outbox, Outgoing},
};
use crate::{
    auth::{Authenticator, Caller},
    graphql::{Executor, codes},
    http::{Admission, WireRequest},
    telemetry::WEBSOCKETS_CLOSED_TOTAL,
};

/// The subprotocols spoken, most preferred first.
pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `graphql-ws`, from `subscriptions-transport-ws`.
    Legacy,
}

impl Protocol {
    /// The protocol of a `Sec-WebSocket-Protocol` name.
    pub fn named(name: &[u8]) -> Option<Self> {
        match name {
            b"graphql-transport-ws" => Some(Self::TransportWs),
            b"graphql-ws" => Some(Self::Legacy),
            _ => None,
        }
    }

    /// The message type of a result.
    fn next(self) -> &'static str {
        match self {
            Self::TransportWs => "next",
            Self::Legacy => "data",
        }
    }
}

/// What a connection works with.
pub struct Connection {
    pub hub: Hub,
    pub executor: Executor,
    pub auth: Authenticator,
    pub admission: Arc<Admission>,
    pub settings: Arc<SocketSettings>,
    /// The connection's place under the bound, held until it closes.
    pub slot: SocketSlot,
    pub going_away: watch::Receiver<bool>,
    /// The upgrade request's `Authorization`, used when `connection_init` carries none.
    pub authorization: Option<HeaderValue>,
}

/// A reason to close, with its code.
struct Close {
    code: u16,
    reason: String,
    /// The label of `websocket_connections_closed_total`.
    metric: &'static str,
    /// A last message to send before the close frame.
    farewell: Option<String>,
}

impl Close {
    fn new(code: u16, reason: impl Into<String>, metric: &'static str) -> Self {
        Self { code, reason: reason.into(), metric, farewell: None }
    }

    fn invalid(reason: impl Into<String>) -> Self {
        Self::new(4400, reason, "protocol")
    }
}

/// A client's message, as both protocols shape them.
#[derive(serde::Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
}

/// Serves one upgraded connection until either side closes it.
pub async fn serve(mut socket: WebSocket, protocol: Option<Protocol>, connection: Connection) {
    let Some(protocol) = protocol else {
        let close = Close::new(
            4406,
            "Subprotocol not acceptable: use graphql-transport-ws or graphql-ws",
            "protocol",
        );
        send_close(&mut socket, close).await;
        return;
    };
    let (queue, queued) = mpsc::channel(connection.settings.send_buffer.max(1));
    let overflowed = Arc::new(Notify::new());
    let outbox = Outbox { connection: connection.slot.id, queue, overflowed: overflowed.clone() };
    let mut session =
        Session { protocol, connection, outbox, caller: None, initialised: false, active: HashMap::new() };
    let close = session.run(&mut socket, queued, &overflowed).await;
    session.end();
    match close {
        Some(close) => send_close(&mut socket, close).await,
        // The client closed (or vanished): the reply to its close frame is still to go out.
        None => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close()).await;
        }
    }
}

async fn send_close(socket: &mut WebSocket, close: Close) {
    metrics::counter!(WEBSOCKETS_CLOSED_TOTAL, "reason" => close.metric).increment(1);
    let frame = CloseFrame { code: close.code, reason: close.reason.into() };
    // A client that reads nothing never takes the frames: then the socket is just dropped.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if let Some(farewell) = close.farewell {
            socket.send(Message::Text(farewell.into())).await?;
        }
        socket.send(Message::Close(Some(frame))).await
    })
    .await;
}

/// How long a client gets to take the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a send did not happen.
enum Unsent {
    /// The client is gone.
    Gone,
    /// The connection's queue overflowed while the send waited on a client that reads too
    /// slowly.
    TooSlow,
}

/// The connection's one wait for its queue to overflow, made once and polled by every
/// `select!` of the connection (a `Notified` made per message registered with the `Notify`
/// and unregistered again each time). Only one exists, so `notify_one` always reaches it.
type Overflow<'p, 'n> = Pin<&'p mut Notified<'n>>;

/// Sends `text`, unless the connection overflows first: a client that stops reading must
/// not hold its connection's task (and the hub's messages for it) for ever.
async fn send(socket: &mut WebSocket, text: String, overflow: &mut Overflow<'_, '_>) -> Result<(), Unsent> {
    send_all(socket, vec![text], overflow).await
}

/// Sends `texts` in as few writes as the socket takes, unless the connection overflows
/// first (see [`send`]).
async fn send_all(
    socket: &mut WebSocket,
    texts: Vec<String>,
    overflow: &mut Overflow<'_, '_>,
) -> Result<(), Unsent> {
    if texts.is_empty() {
        return Ok(());
    }
    let sent = async {
        for text in texts {
            socket.feed(Message::Text(text.into())).await?;
        }
        socket.flush().await
    };
    tokio::select! {
        sent = sent => sent.map_err(|_| Unsent::Gone),
        () = overflow.as_mut() => Err(Unsent::TooSlow),
    }
}

/// The socket's reads, attempted only when it may have something. The read branch is
/// polled first each time the connection's task wakes, which for a subscriber is once per
/// event sent; a read attempt is not free even with nothing to read (tungstenite zero-fills
/// the free part of its read buffer, then the wakers are registered again), and under a
/// fan-out it was a fifth of the connection's CPU outside the kernel. So the read side gets
/// a waker of its own, which marks it readable before it wakes the task.
struct Reads {
    woken: Arc<ReadWoken>,
    waker: Waker,
}

struct ReadWoken {
    /// Whether the socket may have a message: it woke its reader, or the last read gave a
    /// message (tungstenite may hold more, read in the same system call).
    readable: AtomicBool,
    /// The connection's task, to wake when the socket does.
    task: AtomicWaker,
}

impl Wake for ReadWoken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.readable.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Reads {
    fn new() -> Self {
        let woken = Arc::new(ReadWoken { readable: AtomicBool::new(true), task: AtomicWaker::new() });
        Self { waker: Waker::from(woken.clone()), woken }
    }

    /// The socket's next message, as [`WebSocket::recv`].
    fn next<'a>(
        &'a self,
        socket: &'a mut WebSocket,
    ) -> impl Future<Output = Option<Result<Message, axum::Error>>> + 'a {
        std::future::poll_fn(move |cx| {
            self.woken.task.register(cx.waker());
            if !self.woken.readable.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let message = socket.poll_next_unpin(&mut Context::from_waker(&self.waker));
            if message.is_ready() {
                self.woken.readable.store(true, Ordering::Release);
            }
            message
        })
    }
}

/// Most queued messages written at once.
const WRITE_BATCH: usize = 64;

fn too_slow() -> Close {
    Close::new(1013, "too slow: events arrived faster than the client read them", "slow")
}

/// One connection's state.
struct Session {
    protocol: Protocol,
    connection: Connection,
    outbox: Outbox,
    /// Who the connection acts for, once `connection_init` is acknowledged.
    caller: Option<Caller>,
    /// Whether `connection_init` has arrived (a second is an error).
    initialised: bool,
    /// The ids in use: subscriptions (no handle) and operations running (their task).
    active: HashMap<Arc<str>, Option<AbortHandle>>,
}

impl Session {
    /// The connection's loop; returns how to close, or `None` when the client is gone.
    async fn run(
        &mut self,
        socket: &mut WebSocket,
        mut queued: mpsc::Receiver<Outgoing>,
        overflowed: &Notify,
    ) -> Option<Close> {
        let settings = self.connection.settings.clone();
        let init_deadline = tokio::time::sleep(settings.init_timeout);
        tokio::pin!(init_deadline);
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + settings.keepalive, settings.keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut going_away = self.connection.going_away.clone();
        // Made once, not per message: each would register and unregister a waiter.
        let going_away = until_true(&mut going_away);
        tokio::pin!(going_away);
        let overflow = overflowed.notified();
        tokio::pin!(overflow);
        let reads = Reads::new();
        // When the client last sent anything, a pong included.
        let mut heard = tokio::time::Instant::now();
        loop {
            // In this order, and no further than the first branch ready: a subscriber's
            // task wakes once per event sent, and each wake used to poll every branch in a
            // random order, the timers and the waits for overflow and shutdown included.
            // The client's messages come first, so that a queue that never empties cannot
            // starve them; one that never empties ends in overflow (see `send_all`).
            let text = tokio::select! {
                biased;
                incoming = reads.next(socket) => {
                    heard = tokio::time::Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => Some(text),
                        Some(Ok(Message::Binary(_))) => return Some(Close::invalid("binary messages are not part of the protocol")),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
                    }
                }
                Some(outgoing) = queued.recv() => {
                    // What else is queued goes out with it: one write for the lot.
                    let mut texts: Vec<String> = self.frame(outgoing).into_iter().collect();
                    while texts.len() < WRITE_BATCH
                        && let Ok(outgoing) = queued.try_recv()
                    {
                        texts.extend(self.frame(outgoing));
                    }
                    match send_all(socket, texts, &mut overflow).await {
                        Ok(()) => {}
                        Err(Unsent::Gone) => return None,
                        Err(Unsent::TooSlow) => return Some(too_slow()),
                    }
                    None
                }
                () = &mut init_deadline, if self.caller.is_none() => {
                    return Some(Close::new(4408, "Connection initialisation timeout", "init_timeout"));
                }
                _ = keepalive.tick(), if self.caller.is_some() => {
                    if heard.elapsed() > settings.keepalive * 2 {
                        // Not even a pong to two pings: the client is gone without a word.
                        metrics::counter!(WEBSOCKETS_CLOSED_TOTAL, "reason" => "unresponsive").increment(1);
                        return None;
                    }
                    let ping = match self.protocol {
                        Protocol::TransportWs => r#"{"type":"ping"}"#,
                        Protocol::Legacy => r#"{"type":"ka"}"#,
                    };
                    match send(socket, ping.to_owned(), &mut overflow).await {
                        // A WebSocket ping too, which every client answers by itself (the
                        // legacy protocol's `ka` asks for no answer).
                        Ok(()) => if socket.send(Message::Ping(Default::default())).await.is_err() {
                            return None;
                        },
                        Err(Unsent::Gone) => return None,
                        Err(Unsent::TooSlow) => return Some(too_slow()),
                    }
                    None
                }
                () = overflow.as_mut() => return Some(too_slow()),
                () = going_away.as_mut() => {
                    return Some(Close::new(1001, "the server is shutting down: reconnect", "going_away"));
                }
            };
            if let Some(text) = text {
                match self.receive(&text).await {
                    Ok(replies) => {
                        for reply in replies {
                            match send(socket, reply, &mut overflow).await {
                                Ok(()) => {}
                                Err(Unsent::Gone) => return None,
                                Err(Unsent::TooSlow) => return Some(too_slow()),
                            }
                        }
                    }
                    Err(close) => return Some(close),
                }
            }
        }
    }

    /// Handles one client message; returns the replies to send now, or how to close.
    async fn receive(&mut self, text: &str) -> Result<Vec<String>, Close> {
        let message: ClientMessage =
            serde_json::from_str(text).map_err(|_| Close::invalid("Invalid message received"))?;
        match (self.protocol, message.kind.as_str()) {
            (_, "connection_init") => self.init(message.payload.as_ref()).await,
            (Protocol::TransportWs, "ping") => Ok(vec![r#"{"type":"pong"}"#.to_owned()]),
            (Protocol::TransportWs, "pong") => Ok(Vec::new()),
            (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => {
                let id = message
                    .id
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| Close::invalid("Invalid message received: no id"))?;
                let payload =
                    message.payload.ok_or_else(|| Close::invalid("Invalid message received: no payload"))?;
                self.start(id.into(), payload).await
            }
            (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => {
                if let Some(id) = message.id {
                    self.stop(&id);
                }
                Ok(Vec::new())
            }
            (Protocol::Legacy, "connection_terminate") => Err(Close::new(1000, "", "terminated")),
            _ => Err(Close::invalid(format!("Invalid message received: unknown type `{}`", message.kind))),
        }
    }

    /// `connection_init`: authenticates its token (or the upgrade's), and acknowledges.
    async fn init(&mut self, payload: Option<&Value>) -> Result<Vec<String>, Close> {
        if self.initialised {
            return Err(Close::new(4429, "Too many initialisation requests", "protocol"));
        }
        self.initialised = true;
        let mut headers = HeaderMap::new();
        match token_in(payload) {
            Some(value) => match HeaderValue::from_str(value) {
                Ok(value) => {
                    headers.insert(header::AUTHORIZATION, value);
                }
                Err(_) => return Err(self.forbidden("the authorization value is not a header value")),
            },
            None => {
                if let Some(value) = &self.connection.authorization {
                    headers.insert(header::AUTHORIZATION, value.clone());
                }
            }
        }
        let caller = match self.connection.auth.authenticate(&headers).await {
            Ok(caller) => caller,
            Err(refusal) => return Err(self.forbidden(refusal.message())),
        };
        self.caller = Some(caller);
        Ok(match self.protocol {
            Protocol::TransportWs => vec![r#"{"type":"connection_ack"}"#.to_owned()],
            Protocol::Legacy => {
                vec![r#"{"type":"connection_ack"}"#.to_owned(), r#"{"type":"ka"}"#.to_owned()]
            }
        })
    }

    fn forbidden(&self, why: &str) -> Close {
        // A close reason is at most 123 bytes.
        let mut reason = format!("Forbidden: {why}");
        if reason.len() > 123 {
            let mut end = 123;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        let mut close = Close::new(4403, reason, "forbidden");
        if self.protocol == Protocol::Legacy {
            // subscriptions-transport-ws tells its client why before closing.
            close.farewell =
                Some(json!({ "type": "connection_error", "payload": { "message": why } }).to_string());
        }
        close
    }

    /// `subscribe` (`start`): a subscription joins the hub; a query or mutation runs in a
    /// task of its own and answers once.
    async fn start(&mut self, id: Arc<str>, payload: Value) -> Result<Vec<String>, Close> {
        let Some(caller) = self.caller else { return Err(Close::new(4401, "Unauthorized", "protocol")) };
        if self.active.contains_key(&id) {
            return Err(Close::new(4409, format!("Subscriber for {id} already exists"), "protocol"));
        }
        let wire: WireRequest = serde_json::from_value(payload)
            .map_err(|e| Close::invalid(format!("Invalid message received: {e}")))?;
        if wire.query.trim().is_empty() {
            return Err(Close::invalid("Invalid message received: the payload has no query"));
        }
        let mut request = async_graphql::Request::try_from(wire)
            .map_err(|e| Close::invalid(format!("Invalid message received: {e}")))?;
        if self.active.len() >= self.connection.settings.max_subscriptions {
            let limit = self.connection.settings.max_subscriptions;
            return Ok(vec![self.error_frame(
                &id,
                &json!([{
                    "message": format!("at most {limit} subscriptions and operations may run at once on one connection"),
                    "extensions": { "code": "TOO_MANY_SUBSCRIPTIONS" },
                }])
                .to_string(),
            )]);
        }
        let operation = match self.connection.executor.operation_type(&mut request) {
            Ok(operation) => operation,
            Err(errors) => return Ok(vec![self.error_frame(&id, &errors_json(&errors))]),
        };
        if operation == Some(OperationType::Subscription) {
            self.active.insert(id.clone(), None);
            let subscribed =
                self.connection.hub.subscribe(request, caller, id.clone(), self.outbox.clone()).await;
            if let Err(errors) = subscribed {
                self.active.remove(&id);
                return Ok(vec![self.error_frame(&id, &errors_json(&errors))]);
            }
            return Ok(Vec::new());
        }
        let (executor, admission, queue) =
            (self.connection.executor.clone(), self.connection.admission.clone(), self.outbox.queue.clone());
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let response = match admission.admit().await {
                Some(_turn) => executor.execute(request, caller).await,
                None => Response::from_errors(vec![codes::error(
                    "the server is too busy to take this operation: retry shortly",
                    "SERVICE_UNAVAILABLE",
                )]),
            };
            let payload: Arc<str> = serde_json::to_string(&response).expect("a response serialises").into();
            let _ = queue.send(Outgoing::Next { id: task_id.clone(), payload }).await;
            let _ = queue.send(Outgoing::Complete { id: task_id }).await;
        });
        self.active.insert(id, Some(task.abort_handle()));
        Ok(Vec::new())
    }

    /// `complete` (`stop`): the client is done with `id`.
    fn stop(&mut self, id: &str) {
        match self.active.remove(id) {
            Some(None) => self.connection.hub.unsubscribe(self.connection.slot.id, id),
            Some(Some(task)) => task.abort(),
            None => {}
        }
    }

    /// The text of a queued message, or `None` when its id is no longer in use.
    fn frame(&mut self, outgoing: Outgoing) -> Option<String> {
        match outgoing {
            Outgoing::Next { id, payload } => {
                self.active.contains_key(&id).then(|| frame(&id, self.protocol.next(), Some(&payload)))
            }
            Outgoing::Complete { id } => self.active.remove(&id).map(|_| frame(&id, "complete", None)),
        }
    }

    fn error_frame(&self, id: &str, errors: &str) -> String {
        frame(id, "error", Some(errors))
    }

    /// The connection is over: its subscriptions leave the hub, its operations stop.
    fn end(&mut self) {
        self.connection.hub.leave(self.connection.slot.id);
        for task in self.active.drain().filter_map(|(_, task)| task) {
            task.abort();
        }
    }
}

/// Completes once `flag` is true.
async fn until_true(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|flag| *flag).await.is_err() {
        // The sender is gone: the server is not shutting down through this flag.
        std::future::pending::<()>().await;
    }
}

/// `{"id":…,"type":…,"payload":…}`, with `payload` already JSON. Made once per message
/// sent, so in one allocation of exactly its length: the socket takes the text over
/// without copying it, which it cannot do with spare capacity.
fn frame(id: &str, kind: &str, payload: Option<&str>) -> String {
    const FIXED: &str = r#"{"id":,"type":""}"#;
    const PAYLOAD: &str = r#","payload":"#;
    // An id needs escaping only if a client chose one with quotes, backslashes or control
    // characters.
    let escaped = (!id.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'))
        .then(|| serde_json::to_string(id).expect("a string serialises"));
    let id_len = escaped.as_ref().map_or(id.len() + 2, String::len);
    let payload_len = payload.map_or(0, |payload| PAYLOAD.len() + payload.len());
    let mut text = String::with_capacity(FIXED.len() + id_len + kind.len() + payload_len);
    text.push_str(r#"{"id":"#);
    match &escaped {
        Some(escaped) => text.push_str(escaped),
        None => {
            text.push('"');
            text.push_str(id);
            text.push('"');
        }
    }
    text.push_str(r#","type":""#);
    text.push_str(kind);
    text.push('"');
    if let Some(payload) = payload {
        text.push_str(PAYLOAD);
        text.push_str(payload);
    }
    text.push('}');
    debug_assert_eq!(text.len(), text.capacity(), "a frame's length is counted right");
    text
}

/// GraphQL errors as a JSON array.
fn errors_json(errors: &[async_graphql::ServerError]) -> String {
    serde_json::to_string(errors).expect("errors serialise")
}

/// The `Authorization` value a `connection_init` payload carries: `authorization` (any
/// case) at its top level or under `headers`.
fn token_in(payload: Option<&Value>) -> Option<&str> {
    fn lookup(object: &serde_json::Map<String, Value>) -> Option<&str> {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| value.as_str())
    }
    let payload = payload?.as_object()?;
    lookup(payload).or_else(|| payload.get("headers").and_then(Value::as_object).and_then(lookup))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::frame;

    #[test]
    fn a_frame_is_the_json_of_its_id_type_and_payload_whatever_the_id() {
        for id in ["1", "0b7c4d2e-uuid", "with \"quotes\"", "back\\slash", "tab\tnew\nline", "é✓"] {
            let next: Value = serde_json::from_str(&frame(id, "next", Some(r#"{"data":{"a":1}}"#))).unwrap();
            assert_eq!(next, json!({ "id": id, "type": "next", "payload": { "data": { "a": 1 } } }));
            let complete: Value = serde_json::from_str(&frame(id, "complete", None)).unwrap();
            assert_eq!(complete, json!({ "id": id, "type": "complete" }));
        }
    }
}
