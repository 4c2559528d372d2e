//! Cross-origin web apps: the origins `CORS_ALLOWED_ORIGINS` names may call Quill from a
//! browser, every other page may not, and without the setting nothing changes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};
use api::config::parse_origins;

const APP: &str = "http://localhost:5173";

/// What a browser sends before a cross-origin JSON POST carrying a token.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, format!("{}/graphql", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,authorization,apollo-require-preflight")
        .send()
        .await
        .unwrap()
}

async fn post_from(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/graphql", app.address))
        .header("origin", origin)
        .json(&json!({ "query": "{ users { totalCount } }" }))
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_setting_no_other_origin_may_call() {
    let app = spawn_app(Backend::Sqlite).await;

    let preflight = preflight(&app, APP).await;
    let post = post_from(&app, APP).await;

    assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&preflight, "access-control-allow-origin"), None);
    assert_eq!(header(&post, "access-control-allow-origin"), None, "the browser withholds the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_gets_a_cached_preflight_and_its_answers() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.cors_allowed_origins = Some(parse_origins(&format!("https://app.example.com,{APP}")).unwrap());
    })
    .await;

    let allowed = preflight(&app, APP).await;
    let other = preflight(&app, "http://evil.example").await;
    let post = post_from(&app, APP).await;
    let post_from_other = post_from(&app, "http://evil.example").await;

    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&allowed, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&allowed, "access-control-max-age"), Some("7200"));
    let allowed_headers = header(&allowed, "access-control-allow-headers").unwrap();
    for name in ["content-type", "authorization", "apollo-require-preflight", "x-requested-with"] {
        assert!(allowed_headers.contains(name), "{name} not in {allowed_headers}");
    }
    assert!(header(&allowed, "access-control-allow-methods").unwrap().contains("POST"));
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    assert_eq!(post.status(), StatusCode::OK);
    assert_eq!(header(&post, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&post, "access-control-expose-headers"), Some("x-request-id"));
    assert!(header(&post, "vary").is_some_and(|v| v.contains("origin")), "caches keep origins apart");
    let body: Value = post.json().await.unwrap();
    assert_eq!(body["data"]["users"]["totalCount"], 0);
    assert_eq!(header(&post_from_other, "access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_allows_any_origin_without_credentials() {
    let app =
        spawn_app_with(Backend::Sqlite, |c| c.cors_allowed_origins = Some(parse_origins("*").unwrap())).await;

    let preflight = preflight(&app, "http://anywhere.example").await;
    let post = post_from(&app, "http://anywhere.example").await;

    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&preflight, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&preflight, "access-control-allow-credentials"), None);
    assert_eq!(header(&post, "access-control-allow-origin"), Some("*"));
}
