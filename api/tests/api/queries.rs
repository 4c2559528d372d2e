//! Reading users, posts and profiles, and walking their relations.

use serde_json::json;

use crate::helpers::{Backend, id_at, spawn_app};

crate::backend_tests!(
    a_user_is_found_by_id_and_by_email_in_any_case,
    a_missing_user_or_post_is_null_not_an_error,
    a_user_shows_their_profile_and_posts_and_a_post_its_author,
    posts_can_be_listed_for_one_author,
);

async fn a_user_is_found_by_id_and_by_email_in_any_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("ada@example.com").await;

    let by_id = app.graphql("query($id: UUID!) { user(id: $id) { id email } }", json!({ "id": id })).await;
    let by_email = app
        .graphql(
            "query($e: String!) { userByEmail(email: $e) { id email } }",
            json!({ "e": "  ADA@Example.com " }),
        )
        .await;

    assert_eq!(by_id["data"]["user"], json!({ "id": id, "email": "ada@example.com" }));
    assert_eq!(by_email["data"]["userByEmail"], by_id["data"]["user"]);
}

async fn a_missing_user_or_post_is_null_not_an_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = uuid::Uuid::now_v7();

    let body = app
        .graphql(
            "query($id: UUID!) { user(id: $id) { id } post(id: $id) { id } userByEmail(email: \"nobody@example.com\") { id } }",
            json!({ "id": missing }),
        )
        .await;

    assert_eq!(body, json!({ "data": { "user": null, "post": null, "userByEmail": null } }));
}

async fn a_user_shows_their_profile_and_posts_and_a_post_its_author(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .graphql(
            r#"mutation { createUser(input: { email: "grace@example.com", name: "Grace", profile: { bio: "Compilers." } }) { id } }"#,
            json!({}),
        )
        .await;
    let grace = id_at(&created, "/data/createUser/id");
    let first = app.create_post(grace, "First").await;
    let second = app.create_post(grace, "Second").await;

    let body = app
        .graphql(
            "query($id: UUID!) { user(id: $id) { name profile { bio } posts { totalCount nodes { id title author { id name } } } } }",
            json!({ "id": grace }),
        )
        .await;

    assert_eq!(
        body["data"]["user"],
        json!({
            "name": "Grace",
            "profile": { "bio": "Compilers." },
            "posts": {
                "totalCount": 2,
                "nodes": [
                    { "id": second, "title": "Second", "author": { "id": grace, "name": "Grace" } },
                    { "id": first, "title": "First", "author": { "id": grace, "name": "Grace" } },
                ]
            }
        }),
        "posts come newest first, each with its author"
    );
}

async fn posts_can_be_listed_for_one_author(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.create_user("ada@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let ada_post = app.create_post(ada, "By Ada").await;
    app.create_post(bob, "By Bob").await;

    let body = app
        .graphql(
            "query($a: UUID!) { mine: posts(authorId: $a) { totalCount nodes { id } } all: posts { totalCount } }",
            json!({ "a": ada }),
        )
        .await;

    assert_eq!(body["data"]["mine"], json!({ "totalCount": 1, "nodes": [{ "id": ada_post }] }));
    assert_eq!(body["data"]["all"]["totalCount"], 2);
}
