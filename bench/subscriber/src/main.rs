//! One client process of the fan-out benchmark (`bench/fanout/fanout.mjs` starts it when
//! its `client` is `"rust"`, the default): its share of the subscribers against one
//! server URL, each its own WebSocket speaking `graphql-transport-ws`, all on one thread.
//! It records every `postCreated` that arrives: which subscriber, which post, and how long
//! after the post's `createdAt` it was received.
//!
//! Why not Node: on this machine's two cores the subscribers share the CPU with the
//! servers they measure. A Node client (`subscriber.mjs`) spends about 9 µs of CPU per
//! message received (12 µs through the graphql-ws library), so at 100,000 messages a
//! second the clients took more of the machine than the servers, and the latency measured
//! was mostly theirs. This process receives the same messages for a fraction of that.
//!
//! It talks to the driver in JSON lines, the messages of `subscriber.mjs`:
//!
//! ```text
//! stdin  { cmd: "start", url, count, batch, query, runPrefix, probePrefix, capacity }
//! stdout { type: "ready", connected, failed, closeCodes, errors }   once every batch is in
//! stdin  { cmd: "status" }   stdout { type: "status", open, probed, deliveries, lastReceipt }
//! stdin  { cmd: "finish", written: [post ids], latencyFile, committed?: { post id: ms },
//!          commitLatencyFile? }
//! stdout { type: "result", ... }, and in `latencyFile` the latency of the first delivery
//!        of each written post to each subscriber from the post's `createdAt`
//!        (little-endian float64 milliseconds); in `commitLatencyFile` the same deliveries
//!        timed from their commits, where `committed` gives the commit time; then it closes
//!        its sockets and exits.
//! ```

use std::{
    borrow::Cow,
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    io::Write,
    rc::Rc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::{SinkExt, StreamExt, future::join_all};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::{oneshot, watch},
    task::{JoinSet, LocalSet},
};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
enum Command {
    Start(Settings),
    Status,
    Finish(Finish),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    url: String,
    count: usize,
    batch: usize,
    query: String,
    /// Titles of the timed posts start with this.
    run_prefix: String,
    /// Titles of the posts that check every subscription is live start with this.
    probe_prefix: String,
    /// Posts expected, to size the tables once.
    capacity: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Finish {
    written: Vec<String>,
    latency_file: String,
    /// Each written post's commit time (ms since the epoch), when the database records it.
    #[serde(default)]
    committed: HashMap<String, f64>,
    #[serde(default)]
    commit_latency_file: Option<String>,
}

/// A server message, read once: its type, and a payload that reads as an execution result
/// (a `next` message's, into what the run records rather than into a `Value`: most of this
/// process's work, 100,000 times a second).
#[derive(Deserialize)]
struct ServerMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    payload: Option<ExecutionResult<'a>>,
}

/// Any server message's type, for those whose payload is not an execution result (an
/// `error` message's is a list of errors).
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ExecutionResult<'a> {
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
    #[serde(default)]
    errors: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "postCreated", borrow)]
    post_created: Option<Post<'a>>,
}

#[derive(Deserialize)]
struct Post<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(rename = "createdAt", borrow)]
    created_at: Cow<'a, str>,
    #[serde(default, borrow)]
    author: Option<Author<'a>>,
}

#[derive(Deserialize)]
struct Author<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Default)]
struct Subscriber {
    /// Deliveries per post index (saturating).
    seen: Vec<u8>,
    probe: bool,
    connected: bool,
    closed: bool,
}

/// Everything this process recorded, shared by its sockets (one thread, so a `RefCell`).
#[derive(Default)]
struct Record {
    subscribers: Vec<Subscriber>,
    /// The run's posts, by id: their index, and their creation time in milliseconds.
    posts: HashMap<String, u32>,
    post_ids: Vec<String>,
    created_at: Vec<f64>,
    /// Every first delivery of a post to a subscriber: latency and post index, in order.
    latencies: Vec<f64>,
    latency_post: Vec<u32>,
    last_receipt: f64,
    foreign: u64,
    without_author: u64,
    close_codes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    disposing: bool,
}

impl Record {
    fn count_error(&mut self, what: impl Into<String>) {
        if !self.disposing {
            *self.errors.entry(what.into()).or_default() += 1;
        }
    }

    fn post_index(&mut self, id: &str, created_at: &str) -> u32 {
        if let Some(&index) = self.posts.get(id) {
            return index;
        }
        let index = self.post_ids.len() as u32;
        self.posts.insert(id.to_owned(), index);
        self.post_ids.push(id.to_owned());
        self.created_at.push(parse_timestamp(created_at));
        index
    }

    /// One `next` payload received by subscriber `who` at `received`.
    fn next(&mut self, settings: &Settings, who: usize, payload: &ExecutionResult, received: f64) {
        let Some(post) = payload.data.as_ref().and_then(|data| data.post_created.as_ref()) else {
            let error = payload.errors.as_ref().and_then(|errors| errors.first());
            let code = error
                .and_then(|error| error["extensions"]["code"].as_str().or(error["message"].as_str()))
                .unwrap_or("no data");
            self.count_error(format!("payload: {code}"));
            return;
        };
        let (id, title) = (&post.id, &post.title);
        if title.starts_with(&settings.probe_prefix) {
            self.subscribers[who].probe = true;
            return;
        }
        if !title.starts_with(&settings.run_prefix) {
            self.foreign += 1;
            return;
        }
        if post.author.as_ref().is_none_or(|author| author.name.is_none()) {
            self.without_author += 1;
        }
        let index = self.post_index(id, &post.created_at);
        let seen = &mut self.subscribers[who].seen;
        if index as usize >= seen.len() {
            seen.resize((seen.len() * 2).max(index as usize + 1), 0);
        }
        let before = seen[index as usize];
        seen[index as usize] = before.saturating_add(1);
        self.last_receipt = received;
        if before > 0 {
            return; // a duplicate: counted at the end, not timed again
        }
        self.latency_post.push(index);
        self.latencies.push(received - self.created_at[index as usize]);
    }
}

/// A server message read once; one whose payload is not an execution result (an `error`
/// message's) is read again for its type alone.
fn read(text: &str) -> Result<ServerMessage<'_>, String> {
    serde_json::from_str::<ServerMessage>(text).or_else(|error| match serde_json::from_str::<Kind>(text) {
        Ok(Kind { kind }) if kind != "next" => Ok(ServerMessage { kind, payload: None }),
        Ok(_) => Err(format!("a next message not read: {error}")),
        Err(_) => Err("a message that is not JSON, or has no type".into()),
    })
}

/// Wall-clock milliseconds, the clock of the servers' timestamps (this machine's).
fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// `2026-12-03T12:00:00.123456+00:00`, `…Z`, or PostgreSQL's `2026-12-03 12:00:00.123+00`,
/// in milliseconds since the epoch, microseconds kept.
fn parse_timestamp(text: &str) -> f64 {
    let mut text = text.replacen(' ', "T", 1);
    let zone = text.rfind(['+', '-']).filter(|&at| at > 10);
    if let Some(at) = zone
        && text.len() - at == 3
    {
        text.push_str(":00");
    }
    chrono::DateTime::parse_from_rfc3339(&text).map_or(f64::NAN, |t| t.timestamp_micros() as f64 / 1000.0)
}

fn reply(message: Value) {
    let mut out = std::io::stdout().lock();
    // The driver reads lines; if it is gone there is no one to tell.
    let _ = writeln!(out, "{message}").and_then(|()| out.flush());
}

/// One subscriber: connect, `connection_init`, `subscribe` once acknowledged, then record
/// each `next` until the server closes or `stop` says the run is over.
async fn subscriber(
    who: usize,
    settings: Rc<Settings>,
    record: Rc<RefCell<Record>>,
    subscribed: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut subscribed = Some(subscribed);
    let mut settle = || {
        if let Some(tx) = subscribed.take() {
            let _ = tx.send(());
        }
    };
    let closed = |code: String| {
        let mut record = record.borrow_mut();
        record.subscribers[who].closed = true;
        if !record.disposing {
            *record.close_codes.entry(code).or_default() += 1;
        }
    };
    let mut request = match settings.url.as_str().into_client_request() {
        Ok(request) => request,
        Err(error) => {
            record.borrow_mut().count_error(format!("error: {error}"));
            closed("unknown".into());
            return settle();
        }
    };
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    // A small read buffer: tungstenite zero-fills the free part of it before each read
    // attempt, one per message received. A message is about 200 bytes.
    let config = WebSocketConfig::default().read_buffer_size(1024);
    let mut socket = match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
        Ok((socket, _)) => socket,
        Err(error) => {
            record.borrow_mut().count_error(format!("error: {error}"));
            closed("1006".into());
            return settle();
        }
    };
    let send = |message: Value| Message::text(message.to_string());
    if socket.send(send(json!({ "type": "connection_init", "payload": {} }))).await.is_err() {
        closed("1006".into());
        return settle();
    }
    // One wait for the end of the run, not one made (and registered) per message.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    let code = loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = &mut stopped => {
                let _ = socket.close(None).await;
                // Until the server's close frame, briefly.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while socket.next().await.is_some() {}
                }).await;
                break None;
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                break Some(frame.map_or(1005, |frame| u16::from(frame.code)));
            }
            Some(Ok(_)) => continue, // pings are answered by tungstenite
            Some(Err(_)) | None => break Some(1006),
        };
        let received = now_ms();
        let ServerMessage { kind, payload } = match read(text.as_str()) {
            Ok(message) => message,
            Err(problem) => {
                record.borrow_mut().count_error(problem);
                continue;
            }
        };
        let answer = match &*kind {
            "next" => {
                match &payload {
                    Some(payload) => record.borrow_mut().next(&settings, who, payload, received),
                    None => record.borrow_mut().count_error("a next message without a payload"),
                }
                None
            }
            "ping" => Some(json!({ "type": "pong" })),
            "pong" => None,
            "connection_ack" => {
                record.borrow_mut().subscribers[who].connected = true;
                settle();
                Some(json!({ "id": "1", "type": "subscribe", "payload": { "query": settings.query } }))
            }
            "error" => {
                let message = serde_json::from_str::<Value>(text.as_str()).unwrap_or_default();
                let what = message["payload"][0]["message"].as_str().unwrap_or_default();
                record.borrow_mut().count_error(format!("graphql: {what}"));
                settle();
                None
            }
            "complete" => {
                record.borrow_mut().count_error("completed by the server");
                None
            }
            other => {
                record.borrow_mut().count_error(format!("unexpected message: {other}"));
                None
            }
        };
        if let Some(answer) = answer
            && socket.send(send(answer)).await.is_err()
        {
            break Some(1006);
        }
    };
    if let Some(code) = code {
        closed(code.to_string());
    }
    settle();
}

/// Opens every subscriber, a batch at a time, each batch connected and acknowledged (or
/// failed) before the next.
async fn start(
    settings: Settings,
    record: &Rc<RefCell<Record>>,
    sockets: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> Rc<Settings> {
    let settings = Rc::new(settings);
    {
        let mut record = record.borrow_mut();
        record.subscribers = (0..settings.count)
            .map(|_| Subscriber { seen: vec![0; settings.capacity], ..Subscriber::default() })
            .collect();
        record.latencies.reserve(settings.capacity * settings.count);
        record.latency_post.reserve(settings.capacity * settings.count);
    }
    let batch = settings.batch.max(1);
    for first in (0..settings.count).step_by(batch) {
        let mut waits = Vec::new();
        for who in first..(first + batch).min(settings.count) {
            let (tx, rx) = oneshot::channel();
            waits.push(rx);
            sockets.spawn_local(subscriber(who, settings.clone(), record.clone(), tx, stop.clone()));
        }
        join_all(waits).await;
    }
    let record = record.borrow();
    let connected = record.subscribers.iter().filter(|s| s.connected && !s.closed).count();
    reply(json!({
        "type": "ready",
        "connected": connected,
        "failed": settings.count - connected,
        "closeCodes": record.close_codes,
        "errors": record.errors,
    }));
    settings
}

fn status(record: &Record) {
    reply(json!({
        "type": "status",
        "open": record.subscribers.iter().filter(|s| s.connected && !s.closed).count(),
        "probed": record.subscribers.iter().filter(|s| s.probe).count(),
        "deliveries": record.latencies.len(),
        "lastReceipt": record.last_receipt,
    }));
}

/// Which of the posts seen were written, what each subscriber received of them, and the
/// latencies of their first deliveries into `latency_file`.
fn finish(record: &mut Record, count: usize, finish: &Finish) -> std::io::Result<()> {
    let mut is_written = vec![false; record.post_ids.len()];
    let mut written_seen = 0;
    for id in &finish.written {
        if let Some(&index) = record.posts.get(id) {
            is_written[index as usize] = true;
            written_seen += 1;
        }
    }
    let (mut received, mut duplicates, mut complete) = (0u64, 0u64, 0u64);
    for subscriber in &record.subscribers {
        let mut mine = 0;
        for (n, written) in subscriber.seen.iter().zip(&is_written) {
            if *n > 0 && *written {
                received += 1;
                mine += 1;
                duplicates += u64::from(*n - 1);
            }
        }
        if mine == finish.written.len() {
            complete += 1;
        }
    }
    // A delivery's latency from its commit is its latency from `createdAt` less the time
    // from `createdAt` to the commit.
    let to_commit: Vec<Option<f64>> = (record.post_ids.iter().zip(&record.created_at))
        .map(|(id, created)| finish.committed.get(id).map(|committed| committed - created))
        .collect();
    let mut bytes = Vec::with_capacity(record.latencies.len() * 8);
    let mut from_commit = Vec::with_capacity(if finish.committed.is_empty() { 0 } else { bytes.capacity() });
    let mut timed = 0;
    for (latency, post) in record.latencies.iter().zip(&record.latency_post) {
        if is_written[*post as usize] {
            bytes.extend_from_slice(&latency.to_le_bytes());
            timed += 1;
            if let Some(to_commit) = to_commit[*post as usize] {
                from_commit.extend_from_slice(&(latency - to_commit).to_le_bytes());
            }
        }
    }
    std::fs::write(&finish.latency_file, bytes)?;
    if let Some(file) = &finish.commit_latency_file {
        std::fs::write(file, from_commit)?;
    }
    record.disposing = true;
    reply(json!({
        "type": "result",
        "subscribers": count,
        "received": received,
        "duplicates": duplicates,
        "complete": complete,
        "timed": timed,
        "postsNotWritten": record.post_ids.len() - written_seen,
        "foreign": record.foreign,
        "withoutAuthor": record.without_author,
        "closeCodes": record.close_codes,
        "errors": record.errors,
        "lastReceipt": record.last_receipt,
    }));
    Ok(())
}

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    LocalSet::new().block_on(&runtime, async {
        let record = Rc::new(RefCell::new(Record::default()));
        let mut sockets = JoinSet::new();
        let (stop_tx, stop) = watch::channel(false);
        let mut settings = None;
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            let command = serde_json::from_str::<Command>(&line)
                .map_err(|error| std::io::Error::other(format!("{error}: {line}")))?;
            match command {
                Command::Start(given) => {
                    settings = Some(start(given, &record, &mut sockets, &stop).await);
                }
                Command::Status => status(&record.borrow()),
                Command::Finish(given) => {
                    let count = settings.as_ref().map_or(0, |s| s.count);
                    finish(&mut record.borrow_mut(), count, &given)?;
                    let _ = stop_tx.send(true);
                    let _ = tokio::time::timeout(Duration::from_secs(5), sockets.join_all()).await;
                    return Ok(());
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_timestamp, read};

    #[test]
    fn every_server_message_is_read_for_its_type_and_a_next_for_its_post() {
        let next = r#"{"id":"1","type":"next","payload":{"data":{"postCreated":{"id":"p","title":"t","createdAt":"c","author":{"name":"n"}}}}}"#;
        let message = read(next).unwrap();
        assert_eq!(message.kind, "next");
        let post = message.payload.unwrap().data.unwrap().post_created.unwrap();
        assert_eq!((&*post.id, &*post.title, &*post.created_at), ("p", "t", "c"));
        assert_eq!(post.author.unwrap().name.as_deref(), Some("n"));

        let error = r#"{"id":"1","type":"error","payload":[{"message":"no"}]}"#;
        let message = read(error).unwrap();
        assert_eq!(message.kind, "error");
        assert_eq!(read(r#"{"type":"ping"}"#).unwrap().kind, "ping");
        assert_eq!(read(r#"{"type":"connection_ack","payload":{}}"#).unwrap().kind, "connection_ack");

        let unread = read(r#"{"id":"1","type":"next","payload":"x"}"#).err().unwrap();
        assert!(unread.starts_with("a next message not read"), "{unread}");
        assert!(read("not json").is_err());
    }

    #[test]
    fn timestamps_of_every_server_read_to_the_microsecond() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
        let quill = parse_timestamp("2026-12-03T12:00:00.123456+00:00");
        assert!(close(quill, 1_796_299_200_123.456), "{quill}");
        assert!(close(parse_timestamp("2026-12-03T12:00:00.123Z"), 1_796_299_200_123.0));
        assert!(close(parse_timestamp("2026-12-03 13:00:00.123456+01"), quill));
        assert!(parse_timestamp("yesterday").is_nan());
    }
}
