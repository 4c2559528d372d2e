//! Persisted queries as Apollo's link speaks them: a hash alone is "not found" until the
//! document comes with it, then the hash alone runs it, over POST and over GET, on one
//! instance or any instance sharing its Redis.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, CacheKind, TestApp, spawn_app_with, use_cache};
use api::{
    config::{PersistedQueryMode, SecretUrl},
    persisted::sha256_hex,
};

crate::cache_tests!(
    a_hash_alone_is_not_found_until_the_document_comes_with_it,
    a_hash_that_is_not_the_documents_is_refused_and_nothing_is_kept,
    a_persisted_mutation_runs_over_post_but_never_over_get,
    a_document_larger_than_the_bound_runs_but_is_not_kept,
);

const QUERY: &str = "{ users { totalCount } }";
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const NOT_FOUND: &str =
    r#"{"errors":[{"message":"PersistedQueryNotFound","extensions":{"code":"PERSISTED_QUERY_NOT_FOUND"}}]}"#;

fn extension(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// POSTs `body` as Apollo Client 4 does (it accepts `graphql-response+json` first).
async fn post(app: &TestApp, body: &Value) -> (StatusCode, String) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("accept", format!("{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9"))
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// GETs a hash alone, with the header the CSRF rule asks of a GET.
async fn get(app: &TestApp, hash: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("extensions", extension(hash).to_string())])
        .header("apollo-require-preflight", "true")
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn app_with(
    backend: Backend,
    cache: &CacheKind,
    adjust: impl FnOnce(&mut api::config::Config),
) -> TestApp {
    spawn_app_with(backend, |c| {
        use_cache(c, cache);
        adjust(c);
    })
    .await
}

async fn a_hash_alone_is_not_found_until_the_document_comes_with_it(backend: Backend, cache: CacheKind) {
    let app = app_with(backend, &cache, |_| {}).await;
    let hash = sha256_hex(QUERY);

    let before = post(&app, &json!({ "extensions": extension(&hash) })).await;
    let registered = post(&app, &json!({ "query": QUERY, "extensions": extension(&hash) })).await;
    let by_hash = post(&app, &json!({ "extensions": extension(&hash) })).await;
    let by_get = get(&app, &hash).await;

    // A 200 under either media type: Apollo's link takes a 400 to mean "not spoken here".
    assert_eq!(before, (StatusCode::OK, NOT_FOUND.to_owned()));
    let data = r#"{"data":{"users":{"totalCount":0}}}"#.to_owned();
    assert_eq!(registered, (StatusCode::OK, data.clone()));
    assert_eq!(by_hash, (StatusCode::OK, data.clone()));
    assert_eq!(by_get, (StatusCode::OK, data));
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"persisted_queries_total{outcome="hit"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"persisted_queries_total{outcome="miss"} 1"#), "{metrics}");
}

async fn a_hash_that_is_not_the_documents_is_refused_and_nothing_is_kept(backend: Backend, cache: CacheKind) {
    let app = app_with(backend, &cache, |_| {}).await;
    let other = sha256_hex("{ __typename }");

    let mismatch = post(&app, &json!({ "query": QUERY, "extensions": extension(&other) })).await;
    let afterwards = post(&app, &json!({ "extensions": extension(&other) })).await;
    let wrong_version = post(
        &app,
        &json!({ "query": QUERY, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": sha256_hex(QUERY) } } }),
    )
    .await;
    let not_hex = post(&app, &json!({ "extensions": extension("not a hash") })).await;

    assert_eq!(mismatch.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        mismatch.1,
        r#"{"errors":[{"message":"provided sha does not match query","extensions":{"code":"BAD_REQUEST"}}]}"#
    );
    assert_eq!(afterwards, (StatusCode::OK, NOT_FOUND.to_owned()), "the mismatched pair was not kept");
    for (status, body) in [wrong_version, not_hex] {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains(r#""code":"BAD_REQUEST""#) && !body.contains("data"), "{body}");
    }
}

async fn a_persisted_mutation_runs_over_post_but_never_over_get(backend: Backend, cache: CacheKind) {
    let app = app_with(backend, &cache, |_| {}).await;
    let mutation = r#"mutation { createUser(input: { email: "a@example.com" }) { email } }"#;
    let hash = sha256_hex(mutation);

    let posted = post(&app, &json!({ "query": mutation, "extensions": extension(&hash) })).await;
    let over_get = get(&app, &hash).await;

    assert_eq!(posted, (StatusCode::OK, r#"{"data":{"createUser":{"email":"a@example.com"}}}"#.to_owned()));
    assert_eq!(over_get.0, StatusCode::METHOD_NOT_ALLOWED, "{}", over_get.1);
    assert_eq!(app.rows("users").await, 1, "the GET wrote nothing");
}

async fn a_document_larger_than_the_bound_runs_but_is_not_kept(backend: Backend, cache: CacheKind) {
    let app = app_with(backend, &cache, |c| c.max_persisted_query_bytes = 10).await;
    let hash = sha256_hex(QUERY);

    let registered = post(&app, &json!({ "query": QUERY, "extensions": extension(&hash) })).await;
    let by_hash = post(&app, &json!({ "extensions": extension(&hash) })).await;

    assert_eq!(registered, (StatusCode::OK, r#"{"data":{"users":{"totalCount":0}}}"#.to_owned()));
    assert_eq!(by_hash, (StatusCode::OK, NOT_FOUND.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_redis_share_their_persisted_queries() {
    let Some(url) = crate::helpers::redis_url() else { return };
    let cache = CacheKind::Redis(url);
    let a = app_with(Backend::Sqlite, &cache, |_| {}).await;
    let prefix = a.config.cache_prefix.clone();
    let b = app_with(Backend::Sqlite, &cache, |c| c.cache_prefix = prefix).await;
    let hash = sha256_hex(QUERY);

    post(&a, &json!({ "query": QUERY, "extensions": extension(&hash) })).await;
    let on_b = post(&b, &json!({ "extensions": extension(&hash) })).await;

    assert_eq!(on_b, (StatusCode::OK, r#"{"data":{"users":{"totalCount":0}}}"#.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_persisted_queries_off_a_hash_is_not_supported_and_documents_still_run() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.persisted_queries = PersistedQueryMode::Off).await;
    let hash = sha256_hex(QUERY);

    let by_hash = post(&app, &json!({ "query": QUERY, "extensions": extension(&hash) })).await;
    let plain = post(&app, &json!({ "query": QUERY })).await;

    assert_eq!(
        by_hash,
        (
            StatusCode::OK,
            r#"{"errors":[{"message":"PersistedQueryNotSupported","extensions":{"code":"PERSISTED_QUERY_NOT_SUPPORTED"}}]}"#
                .to_owned()
        )
    );
    assert_eq!(plain, (StatusCode::OK, r#"{"data":{"users":{"totalCount":0}}}"#.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_the_documents_of_the_manifest_run() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("persisted-query-manifest.json");
    let listed = "query Count { users { totalCount } }";
    std::fs::write(
        &manifest,
        json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": sha256_hex(listed), "name": "Count", "type": "query", "body": listed }]
        })
        .to_string(),
    )
    .unwrap();
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.persisted_queries = PersistedQueryMode::Only;
        c.persisted_queries_manifest = Some(manifest);
    })
    .await;
    let unlisted = "{ __typename }";

    let by_hash = post(&app, &json!({ "extensions": extension(&sha256_hex(listed)) })).await;
    let listed_in_full = post(&app, &json!({ "query": listed })).await;
    let unlisted_in_full = post(&app, &json!({ "query": unlisted })).await;
    let registering =
        post(&app, &json!({ "query": unlisted, "extensions": extension(&sha256_hex(unlisted)) })).await;
    let unknown_hash = post(&app, &json!({ "extensions": extension(&sha256_hex(unlisted)) })).await;

    let data = r#"{"data":{"users":{"totalCount":0}}}"#.to_owned();
    assert_eq!(by_hash, (StatusCode::OK, data.clone()));
    assert_eq!(listed_in_full, (StatusCode::OK, data));
    for (status, body) in [unlisted_in_full, registering] {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("only persisted queries are accepted"), "{body}");
    }
    assert_eq!(unknown_hash, (StatusCode::OK, NOT_FOUND.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_without_a_valid_manifest_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let forged = dir.path().join("forged.json");
    std::fs::write(
        &forged,
        json!({ "format": "apollo-persisted-query-manifest", "version": 1,
                "operations": [{ "id": sha256_hex("{ a }"), "body": "{ b }" }] })
        .to_string(),
    )
    .unwrap();
    let database = crate::helpers::TestDatabase::create(&Backend::Sqlite).await;

    for manifest in [None, Some(dir.path().join("missing.json")), Some(forged)] {
        let mut config = crate::helpers::test_config(database.url());
        config.persisted_queries = PersistedQueryMode::Only;
        config.persisted_queries_manifest = manifest.clone();

        let error = api::startup::Application::build(&config).await.err().expect("refused at start");

        eprintln!("{manifest:?}: {error:#}");
        assert!(
            format!("{error:#}").contains("manifest") || format!("{error:#}").contains("MANIFEST"),
            "{error:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_costs_persisted_queries_a_retry_never_an_error() {
    let app =
        spawn_app_with(Backend::Sqlite, |c| c.redis_url = Some(SecretUrl::new("redis://127.0.0.1:1"))).await;
    let hash = sha256_hex(QUERY);

    let unknown = post(&app, &json!({ "extensions": extension(&hash) })).await;
    let registered = post(&app, &json!({ "query": QUERY, "extensions": extension(&hash) })).await;
    let by_hash = post(&app, &json!({ "extensions": extension(&hash) })).await;

    assert_eq!(unknown, (StatusCode::OK, NOT_FOUND.to_owned()), "the client sends the document again");
    let data = r#"{"data":{"users":{"totalCount":0}}}"#.to_owned();
    assert_eq!(registered, (StatusCode::OK, data.clone()));
    assert_eq!(by_hash, (StatusCode::OK, data), "this instance kept its own copy");
}
