//! Faults: shutdown under load, a Redis and a PostgreSQL that go away and come back, a
//! pool with no free connection. The server keeps its promises through each.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use api::config::SecretUrl;
use serde_json::{Value, json};

use crate::helpers::{Backend, PostgresServer, RedisServer, TestDatabase, error_codes, spawn_app_with};

/// The `api` binary serving `database_url` on a free port, until it is signalled.
pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Server {
    pub fn start(database_url: &str, extra_env: &[(&str, &str)]) -> Server {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_api")), database_url, extra_env)
    }

    /// Like [`Server::start`], with at most `descriptors` open files (`prlimit --nofile`).
    pub fn start_with_descriptor_limit(
        database_url: &str,
        extra_env: &[(&str, &str)],
        descriptors: u64,
    ) -> Server {
        let mut prlimit = Command::new("prlimit");
        prlimit.arg(format!("--nofile={descriptors}:{descriptors}")).arg(env!("CARGO_BIN_EXE_api"));
        Self::start_with(prlimit, database_url, extra_env)
    }

    fn start_with(mut command: Command, database_url: &str, extra_env: &[(&str, &str)]) -> Server {
        let mut child = command
            .arg("serve")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", database_url)
            .env("AUTH_JWT_SECRET", crate::helpers::TEST_SECRET)
            .env_remove("REDIS_URL")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the api binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reading the listening line");
        let address = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches("/graphql")
            .to_owned();
        Server { child, address }
    }

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PAGE: &str = "{ users(first: 50) { nodes { id email profile { bio } posts(first: 10) { nodes { id title author { id } } } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_every_in_flight_request_finish_then_exits_cleanly() {
    let database = TestDatabase::create(&Backend::postgres_if_set()).await;
    let seeded = Command::new(env!("CARGO_BIN_EXE_api"))
        .args(["seed", "--users", "200", "--posts-per-user", "10"])
        .env("DATABASE_URL", database.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(seeded.success());
    let mut server = Server::start(database.url(), &[]);
    // A fresh connection per request: each one is either refused at connect (after the
    // listener closed) or accepted and owed a complete answer.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let url = format!("{}/graphql", server.address);

    let in_flight: Vec<_> = (0..40)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.post(&url).json(&json!({ "query": PAGE })).send().await })
        })
        .collect();
    // Long enough for every request to be connected and accepted, short of their ends.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let signalled = Instant::now();
    server.terminate();
    let mut completed = 0;
    for request in in_flight {
        let response = request.await.unwrap().expect("an in-flight request got its answer");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["users"]["nodes"].as_array().unwrap().len(), 50);
        completed += 1;
    }
    let status = tokio::task::spawn_blocking(move || server.child.wait()).await.unwrap().unwrap();

    eprintln!(
        "{completed} in-flight requests completed; exited {status} {:?} after SIGTERM",
        signalled.elapsed()
    );
    assert!(status.success(), "exit status {status}");
    assert!(
        client.post(&url).json(&json!({ "query": "{ __typename }" })).send().await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_shutdown_delay_the_server_is_unready_but_still_serves() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let mut server = Server::start(database.url(), &[("SHUTDOWN_DELAY_SECS", "2")]);
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{}/readyz", server.address)).send().await.unwrap().status(), 200);

    server.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = client.get(format!("{}/readyz", server.address)).send().await.unwrap();
    let ready_status = ready.status();
    let body: Value = ready.json().await.unwrap();
    let query = client
        .post(format!("{}/graphql", server.address))
        .json(&json!({ "query": "{ users { totalCount } }" }))
        .send()
        .await
        .unwrap();
    let served: Value = query.json().await.unwrap();
    let status = tokio::task::spawn_blocking(move || server.child.wait()).await.unwrap().unwrap();

    assert_eq!(ready_status, 503);
    assert_eq!(body["status"], "draining");
    assert_eq!(served["data"]["users"]["totalCount"], 0);
    assert!(status.success());
}

/// Runs `workers` loops of reads until `stop`, counting answers that are not a full,
/// error-free response.
fn read_load(
    client: reqwest::Client,
    url: String,
    id: uuid::Uuid,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(u64, u64)>> {
    (0..workers)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let query = json!({ "query": "query($id: UUID!) { user(id: $id) { email posts { nodes { author { email } } } } }", "variables": { "id": id } });
                    let good = match client.post(&url).json(&query).send().await {
                        Ok(response) if response.status() == 200 => response
                            .json::<Value>()
                            .await
                            .is_ok_and(|b| b.get("errors").is_none() && b["data"]["user"]["email"] == "ada@example.com"),
                        _ => false,
                    };
                    if good { ok += 1 } else { failed += 1 }
                }
                (ok, failed)
            })
        })
        .collect()
}

async fn totals(workers: Vec<tokio::task::JoinHandle<(u64, u64)>>) -> (u64, u64) {
    let mut totals = (0, 0);
    for worker in workers {
        let (ok, failed) = worker.await.unwrap();
        totals.0 += ok;
        totals.1 += failed;
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_fails_no_request() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let app =
        spawn_app_with(Backend::postgres_if_set(), |c| c.redis_url = Some(SecretUrl::new(url.as_str())))
            .await;
    let id = app.create_user("ada@example.com").await;
    app.create_post(id, "Notes").await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = read_load(app.client.clone(), format!("{}/graphql", app.address), id, 8, stop.clone());

    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = totals(load).await;

    eprintln!("Redis killed and restarted under load: {ok} requests served, {failed} failed");
    assert!(ok > 50, "the load ran ({ok} requests)");
    assert_eq!(failed, 0);
    assert!(app.counter("cache_errors_total").await > 0, "the outage was noticed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_fails_requests_cleanly_and_service_returns_by_itself() {
    let Some(mut postgres) = PostgresServer::start().await else { return };
    let app =
        spawn_app_with(Backend::Postgres(postgres.url()), |c| c.cache = api::config::CacheMode::Off).await;
    let id = app.create_user("ada@example.com").await;
    let query =
        json!({ "query": "query($id: UUID!) { user(id: $id) { email } }", "variables": { "id": id } });
    let codes_seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let outage_started = Instant::now();

    postgres.stop();
    // During the outage: every answer comes, as a clean error with a code.
    for _ in 0..5 {
        let started = Instant::now();
        let response = app.post_graphql(&query).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "an answer within the connect timeout");
        codes_seen.lock().unwrap().extend(error_codes(&body));
        let text = body.to_string().to_lowercase();
        assert!(!text.contains("connection refused") && !text.contains("sqlx"), "{body}");
    }
    let ready = app.get("/readyz").await;
    postgres.start_again().await;
    let back_at = Instant::now();
    let mut recovered_after = None;
    while back_at.elapsed() < Duration::from_secs(20) {
        let body: Value = app.post_graphql(&query).await.json().await.unwrap();
        if body["data"]["user"]["email"] == "ada@example.com" {
            recovered_after = Some(back_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!(
        "PostgreSQL down for {:?}: codes {:?}; served again {:?} after it came back",
        back_at - outage_started,
        codes_seen.lock().unwrap(),
        recovered_after
    );
    assert_eq!(ready.status(), 503, "not ready while the database is down");
    assert_eq!(*codes_seen.lock().unwrap(), ["SERVICE_UNAVAILABLE".to_owned()].into());
    assert!(recovered_after.is_some(), "requests succeed again with no restart of Quill");
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_with_a_clear_error_instead_of_hanging() {
    let app = spawn_app_with(Backend::postgres_if_set(), |c| {
        c.db_max_connections = 1;
        c.db_connect_timeout_secs = 1;
        c.cache = api::config::CacheMode::Off;
    })
    .await;
    let id = app.create_user("ada@example.com").await;
    let query =
        json!({ "query": "query($id: UUID!) { user(id: $id) { email } }", "variables": { "id": id } });
    let held = sea_orm::TransactionTrait::begin(&app.db).await.unwrap(); // the only connection

    let started = Instant::now();
    let body: Value = app.post_graphql(&query).await.json().await.unwrap();
    let waited = started.elapsed();
    drop(held);
    let after: Value = app.post_graphql(&query).await.json().await.unwrap();

    eprintln!("pool exhausted: answered after {waited:?}");
    assert_eq!(error_codes(&body), ["SERVICE_UNAVAILABLE"], "{body}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(after["data"]["user"]["email"], "ada@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_is_answered_408() {
    let app = spawn_app_with(Backend::postgres_if_set(), |c| {
        c.db_max_connections = 1;
        c.db_connect_timeout_secs = 5;
        c.request_timeout_secs = 1;
        c.cache = api::config::CacheMode::Off;
    })
    .await;
    let id = app.create_user("ada@example.com").await;
    let query =
        json!({ "query": "query($id: UUID!) { user(id: $id) { email } }", "variables": { "id": id } });
    // Holding the only connection makes the request wait longer than the time limit.
    let held = sea_orm::TransactionTrait::begin(&app.db).await.unwrap();

    let started = Instant::now();
    let response = app.post_graphql(&query).await;
    let waited = started.elapsed();
    drop(held);

    assert_eq!(response.status(), 408);
    assert_eq!(error_codes(&response.json().await.unwrap()), ["TIMEOUT"]);
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    let after: Value = app.post_graphql(&query).await.json().await.unwrap();
    assert_eq!(after["data"]["user"]["email"], "ada@example.com", "the server goes on serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_lose_no_rows_under_load() {
    let app = Arc::new(spawn_app_with(Backend::postgres_if_set(), |_| {}).await);
    let author = app.create_user("ada@example.com").await;
    let created = Arc::new(AtomicU64::new(0));

    let writers: Vec<_> = (0..10)
        .map(|w| {
            let (app, created) = (app.clone(), created.clone());
            tokio::spawn(async move {
                for i in 0..20 {
                    app.create_post(author, &format!("w{w} p{i}")).await;
                    created.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    assert_eq!(created.load(Ordering::Relaxed), 200);
    assert_eq!(app.rows("posts").await, 200);
}
