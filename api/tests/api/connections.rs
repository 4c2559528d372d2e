//! Connection-level defences: clients that never finish a request head, kept-alive
//! connections left idle, floods past the connection bound or the descriptor limit, and
//! more requests than the server can execute. Each is met at the connection or with a
//! fast 503, and the clients that behave keep being served.

use std::time::{Duration, Instant};

use api::config::CacheMode;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::{
    faults::Server,
    helpers::{Backend, TestApp, TestDatabase, counter_value, spawn_app_with},
};

/// A client socket that speaks HTTP/1.1 by hand, so it can stop halfway through a head,
/// dribble a body, or hold a connection open and idle.
struct Raw {
    stream: TcpStream,
    /// Bytes read past the last response.
    unread: Vec<u8>,
}

impl Raw {
    async fn connect(address: &str) -> Self {
        let host = address.trim_start_matches("http://");
        Self { stream: TcpStream::connect(host).await.expect("connecting"), unread: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("sending");
    }

    /// Reads one response: its status and its body.
    async fn response(&mut self) -> (u16, String) {
        let head_end = loop {
            if let Some(end) = self.unread.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.unread[..head_end].to_vec()).expect("an ASCII head");
        let status = head[9..12].parse().expect("a status code");
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
            })
            .expect("a content-length")
            .parse()
            .expect("a number");
        while self.unread.len() < head_end + length {
            self.fill().await;
        }
        let body = String::from_utf8(self.unread[head_end..head_end + length].to_vec()).expect("UTF-8");
        self.unread.drain(..head_end + length);
        (status, body)
    }

    async fn fill(&mut self) {
        let mut buffer = [0; 4096];
        let read = self.stream.read(&mut buffer).await.expect("reading");
        assert!(read > 0, "the server closed the connection mid-response");
        self.unread.extend_from_slice(&buffer[..read]);
    }

    /// Waits up to `limit` for the server to close the connection, reading whatever it
    /// sends first; `Some(when)` if it did.
    async fn closed_within(&mut self, limit: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buffer = [0; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
                Ok(Ok(read)) => self.unread.extend_from_slice(&buffer[..read]),
            }
        }
    }
}

/// A complete POST of `query`.
fn post(query: &str) -> Vec<u8> {
    let body = json!({ "query": query }).to_string();
    let mut request = post_head(body.len());
    request.extend_from_slice(body.as_bytes());
    request
}

/// The head of a POST whose body of `length` bytes follows.
fn post_head(length: usize) -> Vec<u8> {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: quill\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// The `/metrics` page, read over `raw` (a new connection might be refused).
async fn metrics_over(raw: &mut Raw) -> String {
    raw.send(b"GET /metrics HTTP/1.1\r\nHost: quill\r\n\r\n").await;
    let (status, body) = raw.response().await;
    assert_eq!(status, 200);
    body
}

/// Whether a new connection gets a query answered within `limit`, trying every 20 ms.
async fn served_again_within(address: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut raw = Raw::connect(address).await;
        raw.send(&post("{ __typename }")).await;
        if let Ok((200, _)) = tokio::time::timeout(limit, raw.response()).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_a_request_head_are_closed_while_others_are_served() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.http_header_timeout_secs = 1).await;
    let mut partial = Vec::new();
    for i in 0..600 {
        let mut raw = Raw::connect(&app.address).await;
        let opened = Instant::now();
        // Most send half a head; every fifth sends nothing at all.
        if i % 5 != 0 {
            raw.send(b"POST /graphql HTTP/1.1\r\nHost: quill\r\nContent-Type: application/json\r\n").await;
        }
        partial.push((raw, opened));
    }

    let served = app.graphql("{ users { totalCount } }", json!({})).await;
    let waits: Vec<_> = partial
        .into_iter()
        .map(|(mut raw, opened)| {
            tokio::spawn(async move { raw.closed_within(Duration::from_secs(5)).await.map(|at| at - opened) })
        })
        .collect();
    let mut held = Vec::new();
    for wait in waits {
        held.push(wait.await.unwrap().expect("the partial connection was closed"));
    }

    assert_eq!(served["data"]["users"]["totalCount"], 0, "a normal client is served meanwhile");
    let (shortest, longest) = (held.iter().min().unwrap(), held.iter().max().unwrap());
    eprintln!("600 partial connections held for {shortest:?} to {longest:?}");
    assert!(*shortest >= Duration::from_millis(900), "closed before the header timeout: {shortest:?}");
    assert!(
        *longest <= Duration::from_secs(2),
        "closed later than the header timeout and a second: {longest:?}"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"http_connections_closed_total{reason="header_timeout"} 600"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout_and_busy_ones_are_not() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http_header_timeout_secs = 1;
        c.http_idle_timeout_secs = 2;
    })
    .await;
    let mut idle = Raw::connect(&app.address).await;
    idle.send(&post("{ __typename }")).await;
    assert_eq!(idle.response().await.0, 200);
    let answered = Instant::now();
    let idle_closed = tokio::spawn(async move { idle.closed_within(Duration::from_secs(6)).await });

    // In use for longer than both timeouts: a body sent a few bytes at a time.
    let mut busy = Raw::connect(&app.address).await;
    let body = json!({ "query": "{ __typename }" }).to_string();
    busy.send(&post_head(body.len())).await;
    for chunk in body.as_bytes().chunks(4) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        busy.send(chunk).await;
    }
    let slow = busy.response().await;
    // Quiet for longer than the header timeout, shorter than the idle timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    busy.send(&post("{ __typename }")).await;
    let after_a_pause = busy.response().await;
    let closed_at = idle_closed.await.unwrap().expect("the idle connection was closed");

    assert_eq!(slow, (200, r#"{"data":{"__typename":"Query"}}"#.to_owned()));
    assert_eq!(after_a_pause.0, 200, "a kept-alive connection may pause longer than the header timeout");
    let idle_for = closed_at - answered;
    eprintln!("the idle connection was closed after {idle_for:?}");
    assert!(idle_for >= Duration::from_millis(1900), "closed before the idle timeout: {idle_for:?}");
    assert!(
        idle_for <= Duration::from_secs(3),
        "closed later than the idle timeout and a second: {idle_for:?}"
    );
    assert!(app.metrics().await.contains(r#"http_connections_closed_total{reason="idle_timeout"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_max_connections_is_refused_fast_and_the_server_recovers() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_connections = Some(20)).await;
    let mut established = Raw::connect(&app.address).await;
    established.send(&post("{ __typename }")).await;
    assert_eq!(established.response().await.0, 200);
    let mut held = Vec::new();
    for _ in 0..19 {
        let mut raw = Raw::connect(&app.address).await;
        raw.send(&post("{ __typename }")).await;
        assert_eq!(raw.response().await.0, 200);
        held.push(raw);
    }

    let flood_started = Instant::now();
    let mut refusals = Vec::new();
    for _ in 0..300 {
        let mut raw = Raw::connect(&app.address).await;
        let closed = raw.closed_within(Duration::from_secs(2)).await.is_some();
        refusals.push((closed, String::from_utf8_lossy(&raw.unread).into_owned()));
    }
    let flood_took = flood_started.elapsed();
    established.send(&post("{ users { totalCount } }")).await;
    let during = established.response().await;
    let metrics = metrics_over(&mut established).await;
    drop(held);
    let recovered = served_again_within(&app.address, Duration::from_secs(1)).await;

    eprintln!("300 connections past the bound refused in {flood_took:?}");
    for (closed, answer) in &refusals {
        assert!(closed, "a connection past the bound was left open");
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("retry-after: 1") && answer.contains("SERVICE_UNAVAILABLE"), "{answer}");
    }
    assert_eq!(during, (200, r#"{"data":{"users":{"totalCount":0}}}"#.to_owned()));
    assert_eq!(counter_value(&metrics, "http_connections_refused_total"), 300);
    assert!(metrics.contains("http_connections_open 20"), "{metrics}");
    assert!(recovered, "a new client is served within a second of the flood ending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_short_of_descriptors_refuses_a_flood_and_recovers_without_a_restart() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    // 256 descriptors: the default bound is 172, room left for the pool and spares.
    let server =
        Server::start_with_descriptor_limit(database.url(), &[("HTTP_HEADER_TIMEOUT_SECS", "60")], 256);
    let mut established = Raw::connect(&server.address).await;
    established.send(&post("{ __typename }")).await;
    assert_eq!(established.response().await.0, 200);

    let mut flood = Vec::new();
    for _ in 0..400 {
        flood.push(Raw::connect(&server.address).await);
    }
    // The held ones stay open and silent; the refused ones are answered and closed.
    let answers = futures::future::join_all(flood.iter_mut().map(|raw| async {
        raw.closed_within(Duration::from_millis(500))
            .await
            .map(|_| String::from_utf8_lossy(&raw.unread).into_owned())
    }))
    .await;
    let refusals: Vec<String> = answers.into_iter().flatten().collect();
    let refused = refusals.len();
    established.send(&post("{ users { totalCount } }")).await;
    let during = established.response().await;
    let metrics = metrics_over(&mut established).await;
    drop(flood);
    let recovered = served_again_within(&server.address, Duration::from_secs(1)).await;

    eprintln!("with 256 descriptors: {refused} of 400 flooding connections refused");
    assert_eq!(refused, 400 - 171, "all but the bound's 172 (one is the established client) refused");
    assert!(refusals.iter().all(|answer| answer.starts_with("HTTP/1.1 503 ")), "{refusals:?}");
    assert_eq!(during.0, 200, "the established client is still served");
    assert_eq!(counter_value(&metrics, "http_accept_errors_total"), 0, "descriptors never ran out");
    assert!(recovered, "a new client is served within a second of the flood ending");
}

/// Settings under which every `user` lookup takes `delay`: the cache is off, so each is a
/// miss, and the write-back after a miss waits (a fault-injection setting).
fn slow_lookups(delay_ms: u64) -> impl FnOnce(&mut api::config::Config) {
    move |c| {
        c.cache = CacheMode::Off;
        c.cache_write_back_delay_ms = delay_ms;
        c.max_concurrent_requests = Some(1);
    }
}

async fn look_up(app: &TestApp, id: &Value) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let response = app
        .post_graphql(
            &json!({ "query": "query($id: UUID!) { user(id: $id) { email } }", "variables": { "id": id } }),
        )
        .await;
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_a_fast_503_while_the_admitted_are_answered() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        slow_lookups(600)(c);
        c.max_queued_requests = 2;
        c.queue_timeout_ms = 10_000;
    })
    .await;
    let id = json!(app.create_user("a@example.com").await);

    let lookups = futures::future::join_all((0..12).map(|_| look_up(&app, &id)));
    let health = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.get("/healthz").await.status()
    };
    let (answers, health) = tokio::join!(lookups, health);

    let admitted: Vec<_> = answers.iter().filter(|a| a.0 == 200).collect();
    let shed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(admitted.len() + shed.len(), 12, "every answer is a 200 or a 503: {answers:?}");
    assert!((1..=3).contains(&admitted.len()), "one runs, two wait, the rest are shed: {answers:?}");
    for (_, _, body, _) in &admitted {
        assert_eq!(body["data"]["user"]["email"], "a@example.com");
    }
    for (_, retry_after, body, took) in &shed {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE", "{body}");
        assert!(body.get("data").is_none());
        assert!(*took < Duration::from_millis(600), "shed at once, not after waiting: {took:?}");
    }
    assert_eq!(health, 200, "the probes answer under overload");
    assert_eq!(app.counter("http_requests_shed_total").await, shed.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_waits_too_long_for_its_turn_is_shed() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        slow_lookups(800)(c);
        c.queue_timeout_ms = 200;
    })
    .await;
    let id = json!(app.create_user("a@example.com").await);

    let (first, second) = tokio::join!(look_up(&app, &id), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        look_up(&app, &id).await
    });

    assert_eq!(first.0, 200);
    assert_eq!(second.0, 503, "{:?}", second.2);
    assert_eq!(second.2["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE");
    assert!(second.3 >= Duration::from_millis(200), "it waited its queue time first: {:?}", second.3);
}
