//! Bad input gets a clear error with a code, and nothing is written.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, error_codes, spawn_app};

crate::backend_tests!(
    a_malformed_uuid_is_refused_before_anything_runs,
    an_invalid_email_is_rejected_and_nothing_is_written,
    a_taken_email_is_a_conflict_on_create_and_on_update,
    page_sizes_out_of_range_are_bad_user_input,
    a_cursor_that_is_not_ours_is_bad_user_input,
    a_post_for_a_missing_author_is_not_found_and_not_written,
    changing_or_deleting_a_missing_row_is_not_found,
    invalid_fields_are_rejected_before_any_write,
    a_failing_statement_shows_no_database_text,
);

/// The one error code of a response whose data is absent.
fn only_code(body: &Value) -> String {
    let codes = error_codes(body);
    assert_eq!(codes.len(), 1, "expected one error in {body}");
    codes[0].clone()
}

async fn table_sizes(app: &TestApp) -> (i64, i64, i64) {
    (app.rows("users").await, app.rows("posts").await, app.rows("profiles").await)
}

async fn a_malformed_uuid_is_refused_before_anything_runs(backend: Backend) {
    let app = spawn_app(backend).await;

    let literal = app.graphql(r#"{ user(id: "not-a-uuid") { id } }"#, json!({})).await;
    let in_mutation = app.graphql(r#"mutation { deleteUser(id: "zzz") }"#, json!({})).await;
    let variable = app.graphql("query($id: UUID!) { post(id: $id) { id } }", json!({ "id": "1234" })).await;

    // A literal is checked by validation, a variable by variable coercion; neither runs.
    for body in [&literal, &in_mutation] {
        assert_eq!(only_code(body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    }
    assert_eq!(only_code(&variable), "BAD_USER_INPUT", "{variable}");
    for body in [&literal, &in_mutation, &variable] {
        assert!(body.get("data").is_none(), "{body}");
    }
}

async fn an_invalid_email_is_rejected_and_nothing_is_written(backend: Backend) {
    let app = spawn_app(backend).await;

    for email in ["", "ada", "ada@", "@example.com", "ada@localhost", "a da@example.com", "ada@@example.com"]
    {
        let body = app
            .graphql(
                "mutation($e: String!) { createUser(input: { email: $e, profile: { bio: \"x\" } }) { id } }",
                json!({ "e": email }),
            )
            .await;
        assert_eq!(only_code(&body), "BAD_USER_INPUT", "{email:?}: {body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("email"), "{body}");
    }
    let lookup = app.graphql(r#"{ userByEmail(email: "nope") { id } }"#, json!({})).await;

    assert_eq!(only_code(&lookup), "BAD_USER_INPUT");
    assert_eq!(table_sizes(&app).await, (0, 0, 0));
}

async fn a_taken_email_is_a_conflict_on_create_and_on_update(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("ada@example.com").await;
    let bob = app.create_user("bob@example.com").await;

    let create = app
        .graphql(
            r#"mutation { createUser(input: { email: "ADA@example.com", profile: { bio: "x" } }) { id } }"#,
            json!({}),
        )
        .await;
    let update = app
        .graphql(
            "mutation($id: UUID!) { updateUser(id: $id, input: { email: \"ada@example.com\" }) { id } }",
            json!({ "id": bob }),
        )
        .await;
    let bob_now = app.graphql("query($id: UUID!) { user(id: $id) { email } }", json!({ "id": bob })).await;

    assert_eq!(only_code(&create), "CONFLICT");
    assert!(create["errors"][0]["message"].as_str().unwrap().contains("ada@example.com"));
    assert_eq!(only_code(&update), "CONFLICT");
    assert_eq!(bob_now["data"]["user"]["email"], "bob@example.com");
    assert_eq!(table_sizes(&app).await, (2, 0, 0), "the conflicting profile was not written either");
}

async fn page_sizes_out_of_range_are_bad_user_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("ada@example.com").await;

    for args in ["first: 1000", "first: -1", "first: 0", "last: 101", "first: 5, last: 5"] {
        let users = app.graphql(&format!("{{ users({args}) {{ nodes {{ id }} }} }}"), json!({})).await;
        let posts = app.graphql(&format!("{{ posts({args}) {{ nodes {{ id }} }} }}"), json!({})).await;
        let nested = app
            .graphql(
                &format!("query($id: UUID!) {{ user(id: $id) {{ posts({args}) {{ nodes {{ id }} }} }} }}"),
                json!({ "id": id }),
            )
            .await;
        for body in [&users, &posts, &nested] {
            assert_eq!(only_code(body), "BAD_USER_INPUT", "{args}: {body}");
        }
    }
    let huge = app.graphql("{ users(first: 99999999999) { nodes { id } } }", json!({})).await;
    assert!(!error_codes(&huge).is_empty(), "an Int out of 32 bits is refused: {huge}");
}

async fn a_cursor_that_is_not_ours_is_bad_user_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_cursor = app.graphql("{ users { pageInfo { endCursor } } }", json!({})).await;
    assert_eq!(user_cursor["data"]["users"]["pageInfo"]["endCursor"], json!(null));
    app.create_user("ada@example.com").await;
    let users = app.graphql("{ users { edges { cursor } } }", json!({})).await;
    let a_user_cursor = users["data"]["users"]["edges"][0]["cursor"].as_str().unwrap().to_owned();

    for cursor in ["garbage", "", "!!!!", "MTIz", a_user_cursor.as_str(), &"A".repeat(10_000)] {
        let body = app
            .graphql("query($c: String) { posts(after: $c) { nodes { id } } }", json!({ "c": cursor }))
            .await;
        assert_eq!(only_code(&body), "BAD_USER_INPUT", "{cursor:.40}: {body}");
    }
}

async fn a_post_for_a_missing_author_is_not_found_and_not_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let nobody = uuid::Uuid::now_v7();

    let body = app
        .graphql(
            "mutation($a: UUID!) { createPost(input: { authorId: $a, title: \"Orphan\" }) { id } }",
            json!({ "a": nobody }),
        )
        .await;

    assert_eq!(only_code(&body), "NOT_FOUND");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains(&nobody.to_string()));
    assert_eq!(table_sizes(&app).await, (0, 0, 0));
}

async fn changing_or_deleting_a_missing_row_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = uuid::Uuid::now_v7();

    for mutation in [
        "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"x\" }) { id } }",
        "mutation($id: UUID!) { updateUser(id: $id, input: { profile: { bio: \"x\" } }) { id } }",
        "mutation($id: UUID!) { deleteUser(id: $id) }",
        "mutation($id: UUID!) { updatePost(id: $id, input: { title: \"x\" }) { id } }",
        "mutation($id: UUID!) { deletePost(id: $id) }",
    ] {
        let body = app.graphql(mutation, json!({ "id": missing })).await;
        assert_eq!(only_code(&body), "NOT_FOUND", "{mutation}: {body}");
    }
    assert_eq!(table_sizes(&app).await, (0, 0, 0));
}

async fn invalid_fields_are_rejected_before_any_write(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = app.create_user("ada@example.com").await;
    let long = "x".repeat(100_001);

    let cases = [
        (
            "mutation($v: String) { createUser(input: { email: \"b@example.com\", name: $v }) { id } }",
            json!("n".repeat(201)),
        ),
        (
            "mutation($v: String) { createUser(input: { email: \"b@example.com\", profile: { bio: $v } }) { id } }",
            json!("b".repeat(2001)),
        ),
        ("mutation($v: String!) { createUser(input: { email: $v }) { id } }", json!("nul\u{0}@example.com")),
        (
            "mutation($v: String!) { createPost(input: { authorId: \"AUTHOR\", title: $v }) { id } }",
            json!("   "),
        ),
        (
            "mutation($v: String!) { createPost(input: { authorId: \"AUTHOR\", title: $v }) { id } }",
            json!("t\u{0}"),
        ),
        (
            "mutation($v: String) { createPost(input: { authorId: \"AUTHOR\", title: \"ok\", content: $v }) { id } }",
            json!(long),
        ),
        (
            "mutation($v: UpdateUserInput!) { updateUser(id: \"AUTHOR\", input: $v) { id } }",
            json!({ "email": null }),
        ),
        (
            "mutation($v: UpdateUserInput!) { updateUser(id: \"AUTHOR\", input: $v) { id } }",
            json!({ "profile": null }),
        ),
    ];
    for (mutation, value) in cases {
        let mutation = mutation.replace("AUTHOR", &author.to_string());
        let body = app.graphql(&mutation, json!({ "v": value })).await;
        assert_eq!(only_code(&body), "BAD_USER_INPUT", "{mutation}: {body}");
    }
    assert_eq!(table_sizes(&app).await, (1, 0, 0));
    let ada = app.graphql("query($id: UUID!) { user(id: $id) { email } }", json!({ "id": author })).await;
    assert_eq!(ada["data"]["user"]["email"], "ada@example.com");
}

async fn a_failing_statement_shows_no_database_text(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("ada@example.com").await;
    // Break the schema behind the server's back, so the next statement fails inside the
    // database: the client must learn only that it was our fault.
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, "DROP TABLE profiles").await.unwrap();

    let body = app.graphql("{ users { nodes { email profile { bio } } } }", json!({})).await;

    assert_eq!(error_codes(&body), ["INTERNAL_SERVER_ERROR"], "{body}");
    let request_id = body["errors"][0]["extensions"]["requestId"].as_str().expect("a request id to quote");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains(request_id));
    let text = body.to_string().to_lowercase();
    for leak in ["profiles", "relation", "no such table", "sql", "select"] {
        assert!(!text.contains(leak), "{leak:?} leaked in {body}");
    }
}
