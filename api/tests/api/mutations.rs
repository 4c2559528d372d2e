//! Creating, changing and deleting users and posts.

use serde_json::json;

use crate::helpers::{Backend, error_codes, id_at, spawn_app};

crate::backend_tests!(
    creating_a_user_normalises_the_email_and_stores_the_profile,
    updating_a_user_changes_only_the_fields_given,
    an_explicit_null_clears_the_name,
    updating_the_profile_creates_or_replaces_the_bio,
    deleting_a_user_removes_their_posts_and_profile,
    posts_are_created_updated_and_deleted,
    concurrent_creates_of_one_email_let_exactly_one_win,
    concurrent_posts_for_one_author_are_all_kept,
);

async fn creating_a_user_normalises_the_email_and_stores_the_profile(backend: Backend) {
    let app = spawn_app(backend).await;

    let body = app
        .graphql(
            r#"mutation { createUser(input: { email: "  Ada@Example.COM ", name: " Ada ", profile: { bio: "Engines." } }) { id email name profile { bio } createdAt updatedAt } }"#,
            json!({}),
        )
        .await;

    let user = &body["data"]["createUser"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["profile"]["bio"], "Engines.");
    assert_eq!(user["createdAt"], user["updatedAt"]);
    let id = id_at(&body, "/data/createUser/id");
    assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    assert_eq!(app.rows("users").await, 1);
    assert_eq!(app.rows("profiles").await, 1);
}

async fn updating_a_user_changes_only_the_fields_given(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .graphql(
            r#"mutation { createUser(input: { email: "ada@example.com", name: "Ada" }) { id updatedAt } }"#,
            json!({}),
        )
        .await;
    let id = id_at(&created, "/data/createUser/id");

    let body = app
        .graphql(
            "mutation($id: UUID!) { updateUser(id: $id, input: { email: \"Lovelace@Example.com\" }) { email name updatedAt } }",
            json!({ "id": id }),
        )
        .await;

    let user = &body["data"]["updateUser"];
    assert_eq!(user["email"], "lovelace@example.com");
    assert_eq!(user["name"], "Ada", "an omitted field is untouched");
    assert_ne!(user["updatedAt"], created["data"]["createUser"]["updatedAt"]);
}

async fn an_explicit_null_clears_the_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .graphql(
            r#"mutation { createUser(input: { email: "ada@example.com", name: "Ada" }) { id } }"#,
            json!({}),
        )
        .await;
    let id = id_at(&created, "/data/createUser/id");

    let body = app
        .graphql(
            "mutation($id: UUID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { email name } }",
            json!({ "id": id, "input": { "name": null } }),
        )
        .await;

    assert_eq!(body["data"]["updateUser"], json!({ "email": "ada@example.com", "name": null }));
}

async fn updating_the_profile_creates_or_replaces_the_bio(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("ada@example.com").await;
    let update = "mutation($id: UUID!, $bio: String) { updateUser(id: $id, input: { profile: { bio: $bio } }) { profile { bio } } }";

    let created = app.graphql(update, json!({ "id": id, "bio": "First." })).await;
    let replaced = app.graphql(update, json!({ "id": id, "bio": "Second." })).await;

    assert_eq!(created["data"]["updateUser"]["profile"]["bio"], "First.");
    assert_eq!(replaced["data"]["updateUser"]["profile"]["bio"], "Second.");
    assert_eq!(app.rows("profiles").await, 1);
}

async fn deleting_a_user_removes_their_posts_and_profile(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .graphql(
            r#"mutation { createUser(input: { email: "ada@example.com", profile: { bio: "x" } }) { id } }"#,
            json!({}),
        )
        .await;
    let id = id_at(&created, "/data/createUser/id");
    app.create_post(id, "Doomed").await;
    let keeper = app.create_user("bob@example.com").await;
    app.create_post(keeper, "Kept").await;

    let deleted = app.graphql("mutation($id: UUID!) { deleteUser(id: $id) }", json!({ "id": id })).await;
    let after = app.graphql("query($id: UUID!) { user(id: $id) { id } }", json!({ "id": id })).await;

    assert_eq!(deleted["data"]["deleteUser"], json!(id));
    assert_eq!(after["data"]["user"], json!(null));
    assert_eq!(app.rows("users").await, 1);
    assert_eq!(app.rows("posts").await, 1, "only the deleted user's post is gone");
    assert_eq!(app.rows("profiles").await, 0);
}

async fn posts_are_created_updated_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = app.create_user("ada@example.com").await;
    let created = app
        .graphql(
            "mutation($a: UUID!) { createPost(input: { authorId: $a, title: \" Notes \", content: \"On the engine\" }) { id title content author { email } } }",
            json!({ "a": author }),
        )
        .await;
    let post = id_at(&created, "/data/createPost/id");

    let renamed = app
        .graphql(
            "mutation($id: UUID!) { updatePost(id: $id, input: { title: \"Notes, revised\" }) { title content } }",
            json!({ "id": post }),
        )
        .await;
    let cleared = app
        .graphql(
            "mutation($id: UUID!) { updatePost(id: $id, input: { content: null }) { title content } }",
            json!({ "id": post }),
        )
        .await;
    let deleted = app.graphql("mutation($id: UUID!) { deletePost(id: $id) }", json!({ "id": post })).await;

    assert_eq!(
        created["data"]["createPost"],
        json!({ "id": post, "title": "Notes", "content": "On the engine", "author": { "email": "ada@example.com" } })
    );
    assert_eq!(
        renamed["data"]["updatePost"],
        json!({ "title": "Notes, revised", "content": "On the engine" })
    );
    assert_eq!(cleared["data"]["updatePost"], json!({ "title": "Notes, revised", "content": null }));
    assert_eq!(deleted["data"]["deletePost"], json!(post));
    assert_eq!(app.rows("posts").await, 0);
}

async fn concurrent_creates_of_one_email_let_exactly_one_win(backend: Backend) {
    let app = spawn_app(backend).await;
    let attempts = (0..16).map(|i| {
        let app = &app;
        async move {
            let email = if i % 2 == 0 { "race@example.com" } else { "RACE@example.com " };
            app.graphql(
                "mutation($e: String!) { createUser(input: { email: $e }) { id } }",
                json!({ "e": email }),
            )
            .await
        }
    });

    let results = futures::future::join_all(attempts).await;

    let winners = results.iter().filter(|b| b["data"]["createUser"]["id"].is_string()).count();
    let conflicts = results.iter().filter(|b| error_codes(b) == ["CONFLICT"]).count();
    assert_eq!((winners, conflicts), (1, 15), "{results:#?}");
    assert_eq!(app.rows("users").await, 1);
}

async fn concurrent_posts_for_one_author_are_all_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = app.create_user("ada@example.com").await;

    let titles: Vec<String> = (0..20).map(|i| format!("Post {i}")).collect();

    let posts = futures::future::join_all(titles.iter().map(|t| app.create_post(author, t))).await;

    assert_eq!(posts.iter().collect::<std::collections::HashSet<_>>().len(), 20);
    assert_eq!(app.rows("posts").await, 20);
}
