//! The HTTP surface: GraphiQL, probes, metrics, and requests that are not GraphQL.

use serde_json::{Value, json};

use crate::helpers::{Backend, error_codes, spawn_app};

crate::backend_tests!(
    get_graphql_in_a_browser_serves_graphiql,
    get_graphql_with_a_query_executes_it_but_never_a_mutation,
    a_get_query_picks_its_operation_and_checks_its_variables,
    health_and_readiness_answer,
    metrics_are_exposed_in_prometheus_text,
    invented_methods_do_not_grow_the_metric_labels,
    a_body_that_is_not_json_graphql_is_a_client_error,
    every_response_carries_a_request_id,
    a_batch_of_operations_is_answered_in_order,
    text_that_json_must_escape_is_answered_as_standard_json_writes_it,
    a_large_answer_comes_whole_with_its_length,
    a_stopped_server_refuses_new_connections,
);

async fn get_graphql_in_a_browser_serves_graphiql(backend: Backend) {
    let app = spawn_app(backend).await;

    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("default-src 'self'") && policy.contains("script-src 'self';"), "{policy}");
    let page = response.text().await.unwrap();
    // Served from Quill itself: nothing on the page comes from another origin.
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src=\"//"), "{page}");
    let urls: Vec<&str> = page.split('"').filter(|part| part.starts_with("/graphiql/assets/")).collect();
    assert_eq!(urls.len(), 2, "the entry script and its style sheet: {page}");
    for url in urls {
        let asset = app.get(url).await;
        assert_eq!(asset.status(), 200, "{url}");
        let content_type = asset.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with(if url.ends_with(".js") { "text/javascript" } else { "text/css" }));
        assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert!(asset.bytes().await.unwrap().len() > 10_000, "{url} is the bundle, not a stub");
    }
    assert_eq!(app.get("/graphiql/assets/missing.js").await.status(), 404);
}

async fn get_graphql_with_a_query_executes_it_but_never_a_mutation(backend: Backend) {
    let app = spawn_app(backend).await;

    let get = |path: &str| {
        app.client.get(format!("{}{path}", app.address)).header("apollo-require-preflight", "true").send()
    };

    let query = get("/graphql?query=%7B%20users%20%7B%20totalCount%20%7D%20%7D").await.unwrap();
    let query_body: Value = query.json().await.unwrap();
    let mutation = get(
        "/graphql?query=mutation%20%7B%20createUser(input%3A%20%7Bemail%3A%20%22a%40example.com%22%7D)%20%7B%20id%20%7D%20%7D",
    )
    .await
    .unwrap();
    let without_header = app.get("/graphql?query=%7B%20users%20%7B%20totalCount%20%7D%20%7D").await;

    assert_eq!(query_body["data"]["users"]["totalCount"], 0);
    assert_eq!(mutation.status(), 405);
    assert_eq!(without_header.status(), 400, "a GET a browser could send cross-site is refused");
    assert_eq!(app.rows("users").await, 0);
}

async fn a_get_query_picks_its_operation_and_checks_its_variables(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("a@example.com").await;
    let document = "query Count { users { totalCount } } query One($id: UUID!) { user(id: $id) { email } }";
    let get = |params: Vec<(&'static str, String)>| {
        app.client
            .get(format!("{}/graphql", app.address))
            .query(&params)
            .header("apollo-require-preflight", "true")
            .send()
    };

    let one = get(vec![
        ("query", document.to_owned()),
        ("operationName", "One".to_owned()),
        ("variables", json!({ "id": id }).to_string()),
    ])
    .await
    .unwrap();
    let not_an_object = get(vec![
        ("query", document.to_owned()),
        ("operationName", "Count".to_owned()),
        ("variables", "[1]".to_owned()),
    ])
    .await
    .unwrap();
    let not_json =
        get(vec![("query", "{ __typename }".to_owned()), ("extensions", "{".to_owned())]).await.unwrap();

    assert_eq!(one.status(), 200);
    let body: Value = one.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "user": { "email": "a@example.com" } } }));
    for response in [not_an_object, not_json] {
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_codes(&body), ["BAD_REQUEST"], "{body}");
    }
}

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend).await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "up");
}

async fn metrics_are_exposed_in_prometheus_text(backend: Backend) {
    let app = spawn_app(backend).await;
    app.graphql("{ users { totalCount } }", json!({})).await;
    app.graphql("query($id: UUID!) { user(id: $id) { id } }", json!({ "id": "bad" })).await;

    let metrics = app.metrics().await;

    for name in ["db_queries_total", "graphql_requests_total", "http_request_duration_seconds_bucket"] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    assert!(metrics.contains(r#"graphql_errors_total{code="BAD_USER_INPUT"}"#), "{metrics}");
}

async fn invented_methods_do_not_grow_the_metric_labels(backend: Backend) {
    let app = spawn_app(backend).await;

    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let response = app.client.request(method, format!("{}/graphql", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 405);
    }
    let metrics = app.metrics().await;

    assert!(!metrics.contains("INVENTED"), "{metrics}");
    let other = metrics
        .lines()
        .find(|l| l.starts_with("http_request_duration_seconds_count") && l.contains(r#"method="other""#))
        .unwrap_or_else(|| panic!("no count for other methods in\n{metrics}"));
    assert!(other.ends_with(" 20"), "{other}");
}

async fn a_body_that_is_not_json_graphql_is_a_client_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = format!("{}/graphql", app.address);

    let broken = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    let no_query = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"variables\": {}}")
        .send()
        .await
        .unwrap();
    let plain_text = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"query":"mutation { createUser(input: {email: \"a@example.com\"}) { id } }"}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(broken.status(), 400);
    assert_eq!(error_codes(&broken.json().await.unwrap()), ["BAD_REQUEST"]);
    assert_eq!(no_query.status(), 400);
    assert_eq!(plain_text.status(), 415);
    assert_eq!(app.rows("users").await, 0);
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;

    let response = app.get("/healthz").await;

    let id = response.headers().get("x-request-id").expect("an x-request-id header");
    assert!(!id.is_empty());
}

async fn a_batch_of_operations_is_answered_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("a@example.com").await;

    let response = app
        .post_graphql(&json!([
            { "query": "query($id: UUID!) { user(id: $id) { email } }", "variables": { "id": id } },
            { "query": "{ users { totalCount } }" },
            { "query": "{ nope }" },
        ]))
        .await;
    let body: Value = response.json().await.unwrap();

    assert_eq!(body[0]["data"]["user"]["email"], "a@example.com");
    assert_eq!(body[1]["data"]["users"]["totalCount"], 1);
    assert_eq!(error_codes(&body[2]), ["GRAPHQL_VALIDATION_FAILED"]);
}

async fn a_stopped_server_refuses_new_connections(backend: Backend) {
    let app = spawn_app(backend).await;
    let address = app.address.clone();
    let client = app.client.clone();
    assert_eq!(app.get("/healthz").await.status(), 200);

    app.stop().await.expect("a clean stop");

    assert!(client.get(format!("{address}/healthz")).send().await.is_err());
}

// Responses are written by a serialiser of their own (sonic-rs); every character that JSON
// escapes must come out as serde_json writes it, lengths on both sides of its 16-byte
// blocks included, so the bytes never change with the serialiser.
async fn text_that_json_must_escape_is_answered_as_standard_json_writes_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = app.create_user("ada@example.com").await;
    let mut hostile: String = ('\u{1}'..='\u{7f}').collect();
    hostile.push_str("é€😀\u{2028}\u{2029}\u{ffff}");
    let titles =
        [hostile, format!("{}\"", "a".repeat(15)), format!("{}\u{1f}{}", "b".repeat(31), "c".repeat(40))];
    for title in titles {
        let id = app.create_post(author, &title).await;
        let query =
            json!({ "query": "query($id: UUID!) { post(id: $id) { title } }", "variables": { "id": id } });

        let body = app.post_graphql(&query).await.bytes().await.unwrap();

        let expected = serde_json::to_vec(&json!({ "data": { "post": { "title": title } } })).unwrap();
        assert_eq!(String::from_utf8_lossy(&body), String::from_utf8_lossy(&expected));
    }
}

// A large answer is written in several chunks (`http/json_body.rs`); it still goes out as
// one body with a `Content-Length`, not in HTTP chunks, and reads as the value it is.
async fn a_large_answer_comes_whole_with_its_length(backend: Backend) {
    let app = spawn_app(backend).await;
    let schema =
        "__schema { types { name description fields { name description type { name ofType { name } } } } }";
    let aliases: Vec<String> = (0..8).map(|i| format!("s{i}: {schema}")).collect();
    let query = json!({ "query": format!("{{ {} }}", aliases.join(" ")) });

    let response = app.post_graphql(&query).await;

    assert_eq!(response.status(), 200);
    assert!(response.headers().get("transfer-encoding").is_none());
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(length > 32 * 1024, "{length} bytes: too small to take several chunks");
    let body: Value = serde_json::from_slice(&body).expect("one JSON value");
    assert_eq!(body["data"]["s0"], body["data"]["s7"]);
    let types = body["data"]["s7"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "User"));
}
