//! What crosses the wire to PostgreSQL: every round trip carries a statement, and a
//! connection lost while it sat idle in the pool is replaced before a request uses it.
//! The messages are read off a relay between the server and PostgreSQL.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait as _, Database};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::helpers::{Backend, spawn_app_with};

const FEED: &str =
    "{ users(first: 5) { nodes { id email posts(first: 3) { nodes { id title author { id } } } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_trip_to_postgresql_carries_a_statement() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else { return };
    let relay = Relay::start(&url).await;
    let app = spawn_app_with(Backend::Postgres(relay.url.clone()), |c| {
        c.cache = api::config::CacheMode::Off;
    })
    .await;
    api::seed::run(&app.db, &api::config::SeedArgs { users: 5, posts_per_user: 3 }).await.expect("seeding");
    // Every statement prepared, and every pooled connection used since it last sat idle.
    for _ in 0..10 {
        app.graphql(FEED, json!({})).await;
    }

    relay.sent.reset();
    let mut statements = 0;
    for _ in 0..20 {
        let (body, counted) = app.graphql_counting_sql(FEED, json!({})).await;
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["users"]["nodes"].as_array().unwrap().len(), 5, "{body}");
        statements += counted;
    }

    let syncs = relay.sent.syncs.load(Ordering::SeqCst);
    let executes = relay.sent.executes.load(Ordering::SeqCst);
    eprintln!("20 requests: {statements} statements counted, {executes} executed, {syncs} round trips");
    assert_eq!(executes, statements, "the relay saw the statements the server counted");
    assert_eq!(
        syncs,
        executes,
        "{} round trips carried no statement (pings)",
        syncs.saturating_sub(executes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_while_idle_in_the_pool_is_replaced_before_a_request_uses_it() {
    let Some(backend) = Backend::postgres() else { return };
    let app = spawn_app_with(backend, |c| c.cache = api::config::CacheMode::Off).await;
    let id = app.create_user("ada@example.com").await;
    let query = "query($id: UUID!) { user(id: $id) { email } }";
    assert_eq!(app.graphql(query, json!({ "id": id })).await["data"]["user"]["email"], "ada@example.com");

    // The server's connections end behind the pool's back, as on a database restart or a
    // dropped socket, and are left idle past the pool's trust in them.
    let other = Database::connect(app.config.database_url.expose()).await.unwrap();
    let ended = other
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap()
        .rows_affected();
    other.close().await.unwrap();
    assert!(ended > 0, "the server held connections");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let body = app.graphql(query, json!({ "id": id })).await;
    assert_eq!(body["data"]["user"]["email"], "ada@example.com", "{body}");
    assert!(body.get("errors").is_none(), "{body}");
}

/// The frontend messages the server sent, by the two kinds that matter here: an Execute
/// runs a statement; a Sync ends a round trip (a statement's, or a ping's alone).
#[derive(Default)]
struct Sent {
    syncs: AtomicU64,
    executes: AtomicU64,
}

impl Sent {
    fn reset(&self) {
        self.syncs.store(0, Ordering::SeqCst);
        self.executes.store(0, Ordering::SeqCst);
    }
}

/// A TCP relay in front of PostgreSQL that reads the messages sent to it.
struct Relay {
    /// `TEST_POSTGRES_URL` pointed at the relay, without TLS so the messages can be read.
    url: String,
    sent: Arc<Sent>,
}

impl Relay {
    async fn start(postgres_url: &str) -> Relay {
        let (scheme, rest) = postgres_url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, host) = authority.rsplit_once('@').map_or(("", authority), |(u, h)| (u, h));
        let upstream = if host.contains(':') { host.to_owned() } else { format!("{host}:5432") };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let at = if user.is_empty() { String::new() } else { format!("{user}@") };
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let query =
            if query.is_empty() { "sslmode=disable".to_owned() } else { format!("{query}&sslmode=disable") };
        let url = format!("{scheme}://{at}{address}/{path}?{query}");

        let sent = Arc::new(Sent::default());
        let counts = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                tokio::spawn(relay(client, server, counts.clone()));
            }
        });
        Relay { url, sent }
    }
}

/// Copies both ways until either side closes, reading what the client sends.
async fn relay(client: TcpStream, server: TcpStream, sent: Arc<Sent>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    let mut reader = Frontend::default();
    let mut chunk = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from_client.read(&mut chunk).await {
        reader.read(&chunk[..n], &sent);
        if to_server.write_all(&chunk[..n]).await.is_err() {
            break;
        }
    }
    drop(to_server);
    let _ = down.await;
}

/// The frontend side of the protocol, message by message: first the untyped startup
/// messages (a request for TLS or GSS encryption, then the startup message), then typed
/// ones (a byte of kind, a length that counts itself).
#[derive(Default)]
struct Frontend {
    buffered: Vec<u8>,
    started: bool,
}

impl Frontend {
    const SSL_REQUEST: u32 = 80_877_103;
    const GSSENC_REQUEST: u32 = 80_877_104;

    fn read(&mut self, bytes: &[u8], sent: &Sent) {
        self.buffered.extend_from_slice(bytes);
        loop {
            let (kind, header) = if self.started { (self.buffered.first().copied(), 1) } else { (None, 0) };
            let Some(length) = self.buffered.get(header..header + 4) else { return };
            let end = header + u32::from_be_bytes(length.try_into().unwrap()) as usize;
            // An untyped message is at least its length and a code.
            let needed = if self.started { end } else { end.max(8) };
            if self.buffered.len() < needed {
                return;
            }
            match kind {
                Some(b'S') => _ = sent.syncs.fetch_add(1, Ordering::SeqCst),
                Some(b'E') => _ = sent.executes.fetch_add(1, Ordering::SeqCst),
                Some(_) => {}
                None => {
                    let code = u32::from_be_bytes(self.buffered[4..8].try_into().unwrap());
                    self.started = code != Self::SSL_REQUEST && code != Self::GSSENC_REQUEST;
                }
            }
            self.buffered.drain(..end);
        }
    }
}
