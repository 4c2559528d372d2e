//! The user cache: read-through, invalidated by writes, failing open. Each test runs with
//! the in-process cache and with Redis, under a key prefix of its own.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use api::config::SecretUrl;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, CacheKind, RedisServer, TestApp, redis_connection, spawn_app_with, use_cache};

crate::cache_tests!(
    a_user_read_twice_costs_no_sql_the_second_time,
    authors_of_many_posts_cost_one_cache_lookup_and_one_statement,
    an_update_is_seen_by_the_next_read,
    a_deleted_user_is_not_served_from_the_cache,
    a_user_found_by_email_is_cached_until_the_email_changes,
    concurrent_readers_never_see_a_value_older_than_the_last_write,
);

async fn spawn(backend: Backend, cache: &CacheKind) -> TestApp {
    spawn_app_with(backend, |config| use_cache(config, cache)).await
}

const USER: &str = "query($id: UUID!) { user(id: $id) { id email name } }";

async fn a_user_read_twice_costs_no_sql_the_second_time(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let id = app.create_user("ada@example.com").await;
    let hits_before = app.counter("cache_hits_total").await;

    let (first, first_statements) = app.graphql_counting_sql(USER, json!({ "id": id })).await;
    let (second, second_statements) = app.graphql_counting_sql(USER, json!({ "id": id })).await;

    assert_eq!(first, second);
    assert_eq!(second["data"]["user"]["email"], "ada@example.com");
    assert_eq!(first_statements, 1);
    assert_eq!(second_statements, 0, "the second read is served by the cache");
    assert_eq!(app.counter("cache_hits_total").await - hits_before, 1);
    if let CacheKind::Redis(url) = &cache {
        let key = format!("{}:v1:user:{id}", app.config.cache_prefix);
        let ttl: i64 =
            ::redis::cmd("TTL").arg(&key).query_async(&mut redis_connection(url).await).await.unwrap();
        let setting = app.config.cache_ttl_secs as i64;
        assert!((setting - 1..=setting).contains(&ttl), "TTL {ttl}s, setting {setting}s");
    }
}

async fn authors_of_many_posts_cost_one_cache_lookup_and_one_statement(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    for a in 0..10 {
        let author = app.create_user(&format!("author{a}@example.com")).await;
        for p in 0..10 {
            app.create_post(author, &format!("Post {p}")).await;
        }
    }
    let query = "{ posts(first: 100) { nodes { author { email } } } }";
    let misses_before = app.counter("cache_misses_total").await;

    let (cold, cold_statements) = app.graphql_counting_sql(query, json!({})).await;
    let misses = app.counter("cache_misses_total").await - misses_before;
    let hits_before = app.counter("cache_hits_total").await;
    let (warm, warm_statements) = app.graphql_counting_sql(query, json!({})).await;
    let hits = app.counter("cache_hits_total").await - hits_before;

    assert_eq!(cold["data"]["posts"]["nodes"].as_array().unwrap().len(), 100);
    assert_eq!(cold, warm);
    assert_eq!(cold_statements, 2, "the page, then the ten authors in one statement");
    assert_eq!(misses, 10, "one lookup of the ten distinct authors");
    assert_eq!(warm_statements, 1, "only the page: the authors come from the cache");
    assert_eq!(hits, 10);
}

async fn an_update_is_seen_by_the_next_read(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let id = app.create_user("ada@example.com").await;
    app.graphql(USER, json!({ "id": id })).await; // now cached

    app.graphql(
        "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"Ada\", email: \"lovelace@example.com\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    let after = app.graphql(USER, json!({ "id": id })).await;
    let again = app.graphql(USER, json!({ "id": id })).await;

    let expected = json!({ "id": id, "email": "lovelace@example.com", "name": "Ada" });
    assert_eq!(after["data"]["user"], expected);
    assert_eq!(again["data"]["user"], expected);
}

async fn a_deleted_user_is_not_served_from_the_cache(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let id = app.create_user("ada@example.com").await;
    app.graphql(USER, json!({ "id": id })).await; // now cached

    app.graphql("mutation($id: UUID!) { deleteUser(id: $id) }", json!({ "id": id })).await;
    let after = app
        .graphql(
            "query($id: UUID!) { user(id: $id) { id } userByEmail(email: \"ada@example.com\") { id } }",
            json!({ "id": id }),
        )
        .await;

    assert_eq!(after["data"], json!({ "user": null, "userByEmail": null }));
}

async fn a_user_found_by_email_is_cached_until_the_email_changes(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let id = app.create_user("ada@example.com").await;
    let by_email = "query($e: String!) { userByEmail(email: $e) { id email } }";

    let (first, _) = app.graphql_counting_sql(by_email, json!({ "e": "ada@example.com" })).await;
    let (second, second_statements) =
        app.graphql_counting_sql(by_email, json!({ "e": "ADA@example.com" })).await;
    app.graphql(
        "mutation($id: UUID!) { updateUser(id: $id, input: { email: \"countess@example.com\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    let old = app.graphql(by_email, json!({ "e": "ada@example.com" })).await;
    let new = app.graphql(by_email, json!({ "e": "countess@example.com" })).await;

    assert_eq!(first["data"]["userByEmail"]["id"], json!(id));
    assert_eq!(second, first);
    assert_eq!(second_statements, 0);
    assert_eq!(old["data"]["userByEmail"], json!(null), "the old email no longer finds the user");
    assert_eq!(new["data"]["userByEmail"], json!({ "id": id, "email": "countess@example.com" }));
}

/// A writer renames a user `v1`, `v2`, … while readers read the name in a loop. A read
/// sent after the write of `vN` was answered must show `vN` or later: the test counts the
/// reads that do not.
async fn concurrent_readers_never_see_a_value_older_than_the_last_write(backend: Backend, cache: CacheKind) {
    // Readers wait before writing a loaded user back, so many of them load the old row,
    // then write it back after the writer has invalidated it: the race, made common.
    let app = Arc::new(
        spawn_app_with(backend, |config| {
            use_cache(config, &cache);
            config.cache_write_back_delay_ms = 15;
        })
        .await,
    );
    let id = app.create_user("ada@example.com").await;
    let rename = "mutation($id: UUID!, $n: String!) { updateUser(id: $id, input: { name: $n }) { id } }";
    app.graphql(rename, json!({ "id": id, "n": "v0" })).await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    const WRITES: u64 = 60;

    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (app, acknowledged) = (app.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let (mut reads, mut stale) = (0u64, 0u64);
                while acknowledged.load(Ordering::SeqCst) < WRITES {
                    let floor = acknowledged.load(Ordering::SeqCst);
                    let body = app.graphql(USER, json!({ "id": id })).await;
                    let version: u64 = body["data"]["user"]["name"].as_str().unwrap()[1..].parse().unwrap();
                    reads += 1;
                    if version < floor {
                        stale += 1;
                    }
                }
                (reads, stale)
            })
        })
        .collect();
    for n in 1..=WRITES {
        app.graphql(rename, json!({ "id": id, "n": format!("v{n}") })).await;
        acknowledged.store(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (mut reads, mut stale) = (0, 0);
    for reader in readers {
        let (r, s) = reader.await.unwrap();
        reads += r;
        stale += s;
    }

    eprintln!("concurrent reads: {reads}, stale: {stale}");
    assert!(reads >= WRITES / 2, "the readers overlapped the writes ({reads} reads)");
    assert_eq!(stale, 0, "{stale} of {reads} reads were stale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_every_read_goes_to_the_database() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.cache = api::config::CacheMode::Off).await;
    let id = app.create_user("ada@example.com").await;

    let (_, first) = app.graphql_counting_sql(USER, json!({ "id": id })).await;
    let (body, second) = app.graphql_counting_sql(USER, json!({ "id": id })).await;

    assert_eq!(body["data"]["user"]["email"], "ada@example.com");
    assert_eq!((first, second), (1, 1));
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["cache"], "off");
}

/// Sends `n` reads of one user, checks every answer, and returns the slowest.
async fn read_n_times(app: &TestApp, id: Uuid, n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        let body = app.graphql(USER, json!({ "id": id })).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(body["data"]["user"]["email"], "ada@example.com", "{body}");
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_refuses_connections_only_costs_the_cache() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(Backend::postgres_if_set(), |config| {
        config.redis_url = Some(SecretUrl::new(format!("redis://127.0.0.1:{closed_port}")));
    })
    .await;
    let id = app.create_user("ada@example.com").await;

    let slowest = read_n_times(&app, id, 20).await;
    let ready = app.get("/readyz").await;

    eprintln!("slowest read with Redis unreachable: {slowest:?}");
    // Generous: a hang would take the client's 30 s; the cache gives up after 50 ms.
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    assert!(app.counter("cache_errors_total").await > 0);
    assert_eq!(ready.status(), 200, "a dead cache does not take the instance out of rotation");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["cache"], "degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_or_restarts_costs_no_request() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let app = spawn_app_with(Backend::postgres_if_set(), |config| {
        config.redis_url = Some(SecretUrl::new(url.as_str()))
    })
    .await;
    let id = app.create_user("ada@example.com").await;
    read_n_times(&app, id, 3).await;
    let hits_before = app.counter("cache_hits_total").await;
    assert!(hits_before >= 2, "the cache works before the outage");

    // A Redis that hangs: every call meets the timeout.
    let mut blocker = redis_connection(&url).await;
    let hang = tokio::spawn(async move {
        let _: ::redis::RedisResult<()> =
            ::redis::cmd("DEBUG").arg("SLEEP").arg(1.5).query_async(&mut blocker).await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let slowest_hung = read_n_times(&app, id, 5).await;
    hang.await.unwrap();

    // A Redis that is gone, then back on the same port.
    redis.stop();
    let slowest_down = read_n_times(&app, id, 5).await;
    let errors = app.counter("cache_errors_total").await;
    redis.restart().await;
    let mut recovered_after = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let before = app.counter("cache_hits_total").await;
        read_n_times(&app, id, 2).await;
        if app.counter("cache_hits_total").await > before {
            recovered_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!(
        "slowest read: Redis hung {slowest_hung:?}, Redis down {slowest_down:?}; recovered after {recovered_after:?}"
    );
    assert!(slowest_hung < Duration::from_secs(1), "{slowest_hung:?}: the timeout bounds a hung Redis");
    assert!(slowest_down < Duration::from_secs(2), "{slowest_down:?}");
    assert!(errors > 0);
    assert!(recovered_after.is_some(), "the cache serves hits again after Redis returns, with no restart");
}

// Cached users are read back with a strict RFC 3339 parser: an entry it cannot read (a
// timestamp in another format, as another writer might leave) is a miss answered from
// the database, never an error. The entry is left to its TTL: the write-back is `SET NX`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_user_that_cannot_be_read_is_a_miss_answered_from_the_database() {
    let Some(url) = crate::helpers::redis_url() else { return };
    let app = spawn(Backend::postgres_if_set(), &CacheKind::Redis(url.clone())).await;
    let id = app.create_user("ada@example.com").await;
    let key = format!("{}:v1:user:{id}", app.config.cache_prefix);
    let unreadable = json!({
        "id": id, "email": "stale@example.com", "name": null,
        "created_at": "2026-12-06 00:00:00 UTC", "updated_at": "2026-12-06 00:00:00 UTC",
    });
    let mut redis = redis_connection(&url).await;
    let _: () =
        ::redis::cmd("SET").arg(&key).arg(unreadable.to_string()).query_async(&mut redis).await.unwrap();
    let misses_before = app.counter("cache_misses_total").await;

    let (body, statements) = app.graphql_counting_sql(USER, json!({ "id": id })).await;
    let cached: String = ::redis::cmd("GET").arg(&key).query_async(&mut redis).await.unwrap();

    assert_eq!(body["data"]["user"]["email"], "ada@example.com", "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(statements, 1, "the user is read from the database");
    assert_eq!(app.counter("cache_misses_total").await - misses_before, 1);
    assert_eq!(cached, unreadable.to_string(), "written back only where nothing is (SET NX)");
}
