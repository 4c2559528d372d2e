//! Conformance to the GraphQL specification and to GraphQL over HTTP, one test per rule a
//! client relies on. Answers are compared as the exact bytes on the wire: key order,
//! absent keys and error texts included, as HTTP caches and snapshot tests see them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, id_at, spawn_app};

crate::backend_tests!(
    a_field_bound_to_a_variable_the_client_did_not_send_is_left_unchanged,
    an_argument_bound_to_a_variable_the_client_did_not_send_takes_its_default,
    response_keys_follow_the_selection_and_identical_requests_get_identical_bytes,
    keys_follow_the_selection_through_fragments_and_fields_that_wait_on_loaders,
    skip_and_include_use_the_defaults_of_variables,
    an_operation_whose_root_fields_are_all_skipped_answers_an_empty_object,
    a_variable_used_only_in_a_directive_on_typename_is_used,
    an_invalid_literal_is_a_validation_error_and_nothing_executes,
    a_nullable_field_that_errors_keeps_its_key_with_null,
    a_non_null_field_that_errors_nulls_its_parent,
    a_mutation_that_fails_stops_the_mutations_after_it,
    variable_coercion_failures_are_request_errors,
    the_response_media_type_follows_accept,
    request_errors_have_no_data_key,
    every_document_too_deep_gets_the_same_code,
    a_subscription_over_post_is_refused_with_one_error,
    names_and_titles_are_trimmed_and_content_is_kept_as_written,
    a_batch_runs_its_operations_in_order,
    variables_or_extensions_that_are_not_objects_are_refused_and_nothing_runs,
);

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// What the client got: status, `Content-Type` and the body's exact text.
struct Raw {
    status: StatusCode,
    content_type: String,
    body: String,
}

/// POSTs `body` with the given `Accept` header (none when `None`).
async fn post(app: &TestApp, accept: Option<&str>, body: &Value) -> Raw {
    let mut request = app.client.post(format!("{}/graphql", app.address)).json(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("sending the request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("an ASCII content type").to_owned())
        .unwrap_or_default();
    Raw { status, content_type, body: response.text().await.expect("a text body") }
}

/// POSTs an operation as a GraphQL-over-HTTP client does, and returns the body's text
/// (asserting a 200).
async fn text(app: &TestApp, query: &str, variables: Value) -> String {
    let raw =
        post(app, Some(GRAPHQL_RESPONSE_JSON), &json!({ "query": query, "variables": variables })).await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    raw.body
}

async fn user_named(app: &TestApp, email: &str, name: &str) -> String {
    let body = app
        .graphql(
            "mutation($e: String!, $n: String) { createUser(input: { email: $e, name: $n }) { id } }",
            json!({ "e": email, "n": name }),
        )
        .await;
    id_at(&body, "/data/createUser/id").to_string()
}

async fn a_field_bound_to_a_variable_the_client_did_not_send_is_left_unchanged(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = user_named(&app, "ada@example.com", "Ada").await;
    let update = "mutation($id: UUID!, $n: String) { updateUser(id: $id, input: { name: $n }) { name } }";

    let omitted = text(&app, update, json!({ "id": id })).await;
    let stored = text(&app, "query($id: UUID!) { user(id: $id) { name } }", json!({ "id": id })).await;
    let cleared = text(&app, update, json!({ "id": id, "n": null })).await;

    assert_eq!(omitted, r#"{"data":{"updateUser":{"name":"Ada"}}}"#);
    assert_eq!(stored, r#"{"data":{"user":{"name":"Ada"}}}"#);
    assert_eq!(cleared, r#"{"data":{"updateUser":{"name":null}}}"#);
}

async fn an_argument_bound_to_a_variable_the_client_did_not_send_takes_its_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = app.create_user("ada@example.com").await;
    let post = app.create_post(author, "Notes").await;
    app.graphql(
        "mutation($id: UUID!) { updatePost(id: $id, input: { content: \"On the engine\" }) { id } }",
        json!({ "id": post }),
    )
    .await;

    let update = "mutation($id: UUID!, $t: String, $c: String) { \
                  updatePost(id: $id, input: { title: $t, content: $c }) { title content } }";
    let untouched = text(&app, update, json!({ "id": post })).await;
    let paged = text(&app, "query($n: Int) { posts(first: $n) { nodes { title } } }", json!({})).await;

    assert_eq!(untouched, r#"{"data":{"updatePost":{"title":"Notes","content":"On the engine"}}}"#);
    assert_eq!(paged, r#"{"data":{"posts":{"nodes":[{"title":"Notes"}]}}}"#);
}

async fn response_keys_follow_the_selection_and_identical_requests_get_identical_bytes(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = app.create_user("ada@example.com").await;
    app.create_post(author, "Notes").await;
    let query = "{ users(first: 1) { totalCount nodes { name id } } __typename \
                 posts(first: 1) { nodes { title } totalCount } zz: __typename }";

    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(text(&app, query, json!({})).await);
    }

    let expected = format!(
        r#"{{"data":{{"users":{{"totalCount":1,"nodes":[{{"name":null,"id":"{author}"}}]}},"__typename":"Query","posts":{{"nodes":[{{"title":"Notes"}}],"totalCount":1}},"zz":"Query"}}}}"#
    );
    for answer in answers {
        assert_eq!(answer, expected);
    }
}

async fn keys_follow_the_selection_through_fragments_and_fields_that_wait_on_loaders(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = user_named(&app, "ada@example.com", "Ada").await;
    let query = "query($id: UUID!) { user(id: $id) { posts(first: 1) { totalCount } ...Card \
                 profile { bio } ... on User { __typename id } } } \
                 fragment Card on User { name email }";

    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(text(&app, query, json!({ "id": id })).await);
    }

    let expected = format!(
        r#"{{"data":{{"user":{{"posts":{{"totalCount":0}},"name":"Ada","email":"ada@example.com","profile":null,"__typename":"User","id":"{id}"}}}}}}"#
    );
    for answer in answers {
        assert_eq!(answer, expected);
    }
}

async fn skip_and_include_use_the_defaults_of_variables(backend: Backend) {
    let app = spawn_app(backend).await;
    let query = "query($s: Boolean = true) { users(first: 1) @skip(if: $s) { totalCount } x: __typename }";

    let defaulted = text(&app, query, json!({})).await;
    let given = text(&app, query, json!({ "s": false })).await;

    assert_eq!(defaulted, r#"{"data":{"x":"Query"}}"#);
    assert_eq!(given, r#"{"data":{"users":{"totalCount":0},"x":"Query"}}"#);
}

async fn an_operation_whose_root_fields_are_all_skipped_answers_an_empty_object(backend: Backend) {
    let app = spawn_app(backend).await;

    let root = text(&app, "{ users(first: 1) @skip(if: true) { totalCount } }", json!({})).await;
    let nested = text(&app, "{ users(first: 1) { totalCount @include(if: false) } }", json!({})).await;

    assert_eq!(root, r#"{"data":{}}"#);
    assert_eq!(nested, r#"{"data":{"users":{}}}"#);
}

async fn a_variable_used_only_in_a_directive_on_typename_is_used(backend: Backend) {
    let app = spawn_app(backend).await;
    let query = "query($s: Boolean = true) { a: __typename @include(if: $s) }";

    let included = text(&app, query, json!({})).await;
    let left_out = text(&app, query, json!({ "s": false })).await;

    assert_eq!(included, r#"{"data":{"a":"Query"}}"#);
    assert_eq!(left_out, r#"{"data":{}}"#);
}

async fn an_invalid_literal_is_a_validation_error_and_nothing_executes(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("ada@example.com").await;
    let before = app.counter("db_queries_total").await;

    let raw = post(
        &app,
        Some(GRAPHQL_RESPONSE_JSON),
        &json!({ "query": format!(r#"{{ a: user(id: "{id}") {{ id }} b: user(id: "x") {{ id }} }}"#) }),
    )
    .await;

    assert_eq!(raw.status, 400);
    assert_eq!(
        raw.body,
        r#"{"errors":[{"message":"Invalid value for argument \"id\", expected type \"UUID\"","locations":[{"line":1,"column":70}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}"#
    );
    assert_eq!(app.counter("db_queries_total").await, before, "nothing executed");
}

async fn a_nullable_field_that_errors_keeps_its_key_with_null(backend: Backend) {
    let app = spawn_app(backend).await;

    let body = text(&app, r#"{ a: userByEmail(email: "nobody") { id } b: __typename }"#, json!({})).await;

    assert_eq!(
        body,
        r#"{"data":{"a":null,"b":"Query"},"errors":[{"message":"`email` is not a valid address: \"nobody\"","locations":[{"line":1,"column":3}],"path":["a"],"extensions":{"code":"BAD_USER_INPUT"}}]}"#
    );
}

async fn a_non_null_field_that_errors_nulls_its_parent(backend: Backend) {
    let app = spawn_app(backend).await;

    // `users` is non-null, so its error takes the whole of `data` with it.
    let body = text(&app, "{ a: __typename users(first: 1000) { totalCount } }", json!({})).await;

    assert_eq!(
        body,
        r#"{"data":null,"errors":[{"message":"`first` must be between 1 and 100, got 1000","locations":[{"line":1,"column":17}],"path":["users"],"extensions":{"code":"BAD_USER_INPUT"}}]}"#
    );
}

async fn a_mutation_that_fails_stops_the_mutations_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = uuid::Uuid::now_v7();

    // Root mutation fields run one after another; `deletePost` may not be null, so its
    // error nulls `data`, and the mutation after it never runs.
    let body = text(
        &app,
        &format!(
            r#"mutation {{ a: createUser(input: {{ email: "a@example.com" }}) {{ email }} b: deletePost(id: "{missing}") c: createUser(input: {{ email: "c@example.com" }}) {{ email }} }}"#
        ),
        json!({}),
    )
    .await;

    assert_eq!(
        body,
        format!(
            r#"{{"data":null,"errors":[{{"message":"no post with id {missing}","locations":[{{"line":1,"column":71}}],"path":["b"],"extensions":{{"code":"NOT_FOUND"}}}}]}}"#
        )
    );
    assert_eq!(app.rows("users").await, 1, "only the mutation before the failure ran");
}

async fn variable_coercion_failures_are_request_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.counter("db_queries_total").await;
    let query = "query($id: UUID!) { user(id: $id) { id } }";

    let invalid =
        post(&app, Some(GRAPHQL_RESPONSE_JSON), &json!({ "query": query, "variables": { "id": "x" } })).await;
    let missing = post(&app, Some(GRAPHQL_RESPONSE_JSON), &json!({ "query": query })).await;
    let null =
        post(&app, Some(GRAPHQL_RESPONSE_JSON), &json!({ "query": query, "variables": { "id": null } }))
            .await;
    let legacy = post(&app, Some("application/json"), &json!({ "query": query })).await;

    assert_eq!(
        (invalid.status, missing.status, null.status),
        (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST)
    );
    assert_eq!(
        invalid.body,
        r#"{"errors":[{"message":"Variable \"$id\" got invalid value \"x\"; \"id\", expected type \"UUID\".","locations":[{"line":1,"column":7}],"extensions":{"code":"BAD_USER_INPUT"}}]}"#
    );
    assert_eq!(
        missing.body,
        r#"{"errors":[{"message":"Variable \"$id\" of required type \"UUID!\" was not provided.","locations":[{"line":1,"column":7}],"extensions":{"code":"BAD_USER_INPUT"}}]}"#
    );
    assert_eq!(
        null.body,
        r#"{"errors":[{"message":"Variable \"$id\" of non-null type \"UUID!\" must not be null.","locations":[{"line":1,"column":7}],"extensions":{"code":"BAD_USER_INPUT"}}]}"#
    );
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.body, missing.body);
    assert_eq!(app.counter("db_queries_total").await, before, "nothing executed");
}

async fn the_response_media_type_follows_accept(backend: Backend) {
    let app = spawn_app(backend).await;
    let unparsable = json!({ "query": "{ users { " });
    let json_type = "application/json; charset=utf-8";
    let graphql_type = "application/graphql-response+json; charset=utf-8";

    let cases = [
        (None, StatusCode::OK, json_type),
        (Some("application/json"), StatusCode::OK, json_type),
        (Some("*/*"), StatusCode::OK, json_type),
        (Some("application/*"), StatusCode::OK, json_type),
        (Some(GRAPHQL_RESPONSE_JSON), StatusCode::BAD_REQUEST, graphql_type),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            StatusCode::BAD_REQUEST,
            graphql_type,
        ),
        (Some("application/json, application/graphql-response+json;q=0.5"), StatusCode::OK, json_type),
        (Some("application/graphql-response+json;q=0, application/json"), StatusCode::OK, json_type),
    ];
    for (accept, status, content_type) in cases {
        let raw = post(&app, accept, &unparsable).await;
        assert_eq!((raw.status, raw.content_type.as_str()), (status, content_type), "Accept: {accept:?}");
        assert!(raw.body.starts_with(r#"{"errors":[{"message":"#), "{}", raw.body);
    }

    let refused = post(&app, Some("text/html"), &json!({ "query": "{ __typename }" })).await;
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
}

async fn request_errors_have_no_data_key(backend: Backend) {
    let app = spawn_app(backend).await;

    let unparsable = post(&app, None, &json!({ "query": "{ users { " })).await;
    let invalid = post(&app, None, &json!({ "query": "{ nope }" })).await;
    let unknown_operation =
        post(&app, None, &json!({ "query": "query A { __typename }", "operationName": "B" })).await;

    for raw in [unparsable, invalid, unknown_operation] {
        let body: Value = serde_json::from_str(&raw.body).expect("a JSON body");
        assert!(body.get("data").is_none(), "{}", raw.body);
        assert!(body["errors"][0]["extensions"]["code"].is_string(), "{}", raw.body);
    }
}

async fn every_document_too_deep_gets_the_same_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let nested = |levels: usize| {
        let mut query = "{ users { nodes { ".to_owned();
        for _ in 0..levels {
            query.push_str("posts { nodes { author { ");
        }
        query.push_str("id");
        query.push_str(&" } } }".repeat(levels));
        query.push_str(" } } }");
        query
    };

    // Fragments nested past async-graphql's own recursion limit, with no field deep at all.
    let fragments = format!("{{ {} __typename {} }}", "... on Query { ".repeat(35), "} ".repeat(35));

    let mut answers = Vec::new();
    // Measured by Quill, found by async-graphql's parser, found by its recursion check.
    for query in [nested(5), nested(12), nested(40), fragments] {
        let raw = post(&app, Some(GRAPHQL_RESPONSE_JSON), &json!({ "query": query })).await;
        answers.push((raw.status, raw.body));
    }

    for (status, body) in answers {
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            r#"{"errors":[{"message":"the query is nested too deep: at most 16 levels of fields are allowed","extensions":{"code":"QUERY_TOO_COMPLEX"}}]}"#
        );
    }
}

async fn a_subscription_over_post_is_refused_with_one_error(backend: Backend) {
    let app = spawn_app(backend).await;

    let raw =
        post(&app, Some(GRAPHQL_RESPONSE_JSON), &json!({ "query": "subscription { postCreated { id } }" }))
            .await;

    assert_eq!(raw.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        raw.body,
        r#"{"errors":[{"message":"subscriptions are served over WebSocket at this same path (graphql-transport-ws or graphql-ws), not over HTTP","extensions":{"code":"BAD_REQUEST"}}]}"#
    );
}

async fn names_and_titles_are_trimmed_and_content_is_kept_as_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = user_named(&app, "ada@example.com", "  Ada  ").await;

    let body = text(
        &app,
        "mutation($a: UUID!) { createPost(input: { authorId: $a, title: \"  Notes \", content: \"  indented\" }) \
         { title content author { name } } }",
        json!({ "a": author }),
    )
    .await;

    assert_eq!(
        body,
        r#"{"data":{"createPost":{"title":"Notes","content":"  indented","author":{"name":"Ada"}}}}"#
    );
}

async fn a_batch_runs_its_operations_in_order(backend: Backend) {
    let app = spawn_app(backend).await;

    for round in 0..10 {
        let email = format!("user{round}@example.com");
        let raw = post(
            &app,
            None,
            &json!([
                { "query": "mutation($e: String!) { createUser(input: { email: $e }) { email } }", "variables": { "e": email } },
                { "query": "query($e: String!) { userByEmail(email: $e) { email } }", "variables": { "e": email } },
            ]),
        )
        .await;

        assert_eq!(raw.status, 200);
        assert_eq!(
            raw.body,
            format!(
                r#"[{{"data":{{"createUser":{{"email":"{email}"}}}}}},{{"data":{{"userByEmail":{{"email":"{email}"}}}}}}]"#
            )
        );
    }
}

async fn variables_or_extensions_that_are_not_objects_are_refused_and_nothing_runs(backend: Backend) {
    let app = spawn_app(backend).await;
    let create = r#"mutation { createUser(input: { email: "a@example.com" }) { id } }"#;

    // GraphQL over HTTP, "Request Parameters": `variables` and `extensions` are maps; any
    // other JSON value is a malformed request, whatever the client meant by it.
    for (key, value) in [
        ("variables", json!("{}")),
        ("variables", json!([])),
        ("variables", json!(1)),
        ("extensions", json!("x")),
        ("extensions", json!([1])),
    ] {
        for accept in [None, Some(GRAPHQL_RESPONSE_JSON)] {
            let raw = post(&app, accept, &json!({ "query": create, key: value })).await;

            assert_eq!(raw.status, StatusCode::BAD_REQUEST, "{key}: {value} ({accept:?}): {}", raw.body);
            let body: Value = serde_json::from_str(&raw.body).expect("a JSON body");
            assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{}", raw.body);
            assert!(body.get("data").is_none(), "{}", raw.body);
        }
    }
    assert_eq!(app.rows("users").await, 0, "no malformed request ran its mutation");
    // `null` is the same as leaving the parameter out.
    let raw = post(&app, None, &json!({ "query": create, "variables": null, "extensions": null })).await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.body);
    assert_eq!(app.rows("users").await, 1);
}
