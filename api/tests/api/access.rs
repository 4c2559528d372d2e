//! Who may do what: every rule for anonymous callers, users and admins, and `User.email`
//! private through every path (fragments, aliases, relations, `userByEmail`, batches, the
//! cache warmed by an admin). A refused action is `FORBIDDEN` and changes no row.

use api::config::TokenRole;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, CacheKind, TestApp, error_codes, id_at, spawn_app, spawn_app_with, use_cache};

crate::backend_tests!(
    anonymous_callers_read_users_posts_and_profiles_without_emails,
    anonymous_callers_change_nothing,
    a_user_sees_their_own_email_and_no_one_elses_through_every_path,
    a_user_changes_themselves_and_no_one_else,
    a_user_changes_and_deletes_only_their_own_posts,
    a_user_posts_only_as_themselves,
    an_admin_does_everything_and_sees_every_email,
    user_by_email_finds_only_the_callers_own_address_unless_admin,
    a_token_outliving_its_user_changes_nothing,
    every_operation_of_a_batch_runs_as_the_one_caller,
);

crate::cache_tests!(an_admin_warming_the_cache_shows_no_one_else_an_email);

/// Two users with a post each, and a token for each.
struct World {
    app: TestApp,
    alice: Uuid,
    bob: Uuid,
    alice_token: String,
    bob_token: String,
    alice_post: Uuid,
    bob_post: Uuid,
}

async fn world(app: TestApp) -> World {
    let body = app
        .graphql(
            r#"mutation {
                a: createUser(input: { email: "alice@example.com", name: "Alice", profile: { bio: "A" } }) { id }
                b: createUser(input: { email: "bob@example.com", name: "Bob" }) { id }
            }"#,
            json!({}),
        )
        .await;
    let (alice, bob) = (id_at(&body, "/data/a/id"), id_at(&body, "/data/b/id"));
    let alice_post = app.create_post(alice, "Alice's post").await;
    let bob_post = app.create_post(bob, "Bob's post").await;
    World {
        alice_token: app.token(alice, TokenRole::User),
        bob_token: app.token(bob, TokenRole::User),
        app,
        alice,
        bob,
        alice_post,
        bob_post,
    }
}

/// Every row of the three tables, to show a refused action changed none.
async fn snapshot(app: &TestApp) -> Value {
    app.graphql(
        "{ users(first: 100) { nodes { id email name profile { bio } posts(first: 100) { nodes { id title content } } } } }",
        json!({}),
    )
    .await
}

fn assert_forbidden(body: &Value) {
    assert_eq!(error_codes(body), ["FORBIDDEN"], "{body}");
}

async fn anonymous_callers_read_users_posts_and_profiles_without_emails(backend: Backend) {
    let w = world(spawn_app(backend).await).await;

    let body = w
        .app
        .graphql_as(
            None,
            "query($p: UUID!) {
                users { nodes { name email profile { bio } posts { nodes { title author { email } } } } }
                post(id: $p) { title author { name email } }
                me { id }
            }",
            json!({ "p": w.alice_post }),
        )
        .await;

    assert_eq!(body.get("errors"), None, "{body}");
    assert_eq!(
        body["data"],
        json!({
            "users": { "nodes": [
                { "name": "Alice", "email": null, "profile": { "bio": "A" },
                  "posts": { "nodes": [{ "title": "Alice's post", "author": { "email": null } }] } },
                { "name": "Bob", "email": null, "profile": null,
                  "posts": { "nodes": [{ "title": "Bob's post", "author": { "email": null } }] } },
            ] },
            "post": { "title": "Alice's post", "author": { "name": "Alice", "email": null } },
            "me": null,
        })
    );
}

async fn anonymous_callers_change_nothing(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    let before = snapshot(&w.app).await;

    for (mutation, variables) in [
        ("mutation { createUser(input: { email: \"eve@example.com\" }) { id } }", json!({})),
        (
            "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"Eve\" }) { id } }",
            json!({ "id": w.alice }),
        ),
        (
            "mutation($id: UUID!) { updateUser(id: $id, input: { profile: { bio: \"x\" } }) { id } }",
            json!({ "id": w.bob }),
        ),
        ("mutation($id: UUID!) { deleteUser(id: $id) }", json!({ "id": w.alice })),
        ("mutation { createPost(input: { title: \"Spam\" }) { id } }", json!({})),
        (
            "mutation($a: UUID!) { createPost(input: { authorId: $a, title: \"Spam\" }) { id } }",
            json!({ "a": w.alice }),
        ),
        (
            "mutation($id: UUID!) { updatePost(id: $id, input: { title: \"Spam\" }) { id } }",
            json!({ "id": w.alice_post }),
        ),
        ("mutation($id: UUID!) { deletePost(id: $id) }", json!({ "id": w.bob_post })),
        ("mutation($id: UUID!) { deletePost(id: $id) }", json!({ "id": Uuid::now_v7() })),
    ] {
        let body = w.app.graphql_as(None, mutation, variables).await;
        assert_forbidden(&body);
        assert_eq!(body["data"], Value::Null, "{mutation}: {body}");
    }

    assert_eq!(snapshot(&w.app).await, before);
}

async fn a_user_sees_their_own_email_and_no_one_elses_through_every_path(backend: Backend) {
    let w = world(spawn_app(backend).await).await;

    let body = w
        .app
        .graphql_as(
            Some(&w.alice_token),
            r#"query($alice: UUID!, $bob: UUID!) {
                me { email }
                mine: user(id: $alice) { email }
                theirs: user(id: $bob) { email ...Card ... on User { again: email } }
                users { nodes { name email ...Card } }
                posts { nodes { title author { name email } } }
                bobsPosts: posts(authorId: $bob) { nodes { author { hidden: email } } }
                viaPosts: user(id: $bob) { posts { nodes { author { email } } } }
            }
            fragment Card on User { fromFragment: email }"#,
            json!({ "alice": w.alice, "bob": w.bob }),
        )
        .await;

    assert_eq!(body.get("errors"), None, "{body}");
    let alice = "alice@example.com";
    assert_eq!(
        body["data"],
        json!({
            "me": { "email": alice },
            "mine": { "email": alice },
            "theirs": { "email": null, "fromFragment": null, "again": null },
            "users": { "nodes": [
                { "name": "Alice", "email": alice, "fromFragment": alice },
                { "name": "Bob", "email": null, "fromFragment": null },
            ] },
            "posts": { "nodes": [
                { "title": "Bob's post", "author": { "name": "Bob", "email": null } },
                { "title": "Alice's post", "author": { "name": "Alice", "email": alice } },
            ] },
            "bobsPosts": { "nodes": [{ "author": { "hidden": null } }] },
            "viaPosts": { "posts": { "nodes": [{ "author": { "email": null } }] } },
        })
    );
}

async fn a_user_changes_themselves_and_no_one_else(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    let update = "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"Changed\", profile: { bio: \"B\" } }) { name email profile { bio } } }";

    let own = w.app.graphql_as(Some(&w.alice_token), update, json!({ "id": w.alice })).await;
    let before = snapshot(&w.app).await;
    let other = w.app.graphql_as(Some(&w.alice_token), update, json!({ "id": w.bob })).await;
    let delete_other = w
        .app
        .graphql_as(
            Some(&w.alice_token),
            "mutation($id: UUID!) { deleteUser(id: $id) }",
            json!({ "id": w.bob }),
        )
        .await;
    let create = w
        .app
        .graphql_as(
            Some(&w.alice_token),
            "mutation { createUser(input: { email: \"new@example.com\" }) { id } }",
            json!({}),
        )
        .await;

    assert_eq!(
        own["data"]["updateUser"],
        json!({ "name": "Changed", "email": "alice@example.com", "profile": { "bio": "B" } })
    );
    assert_forbidden(&other);
    assert_forbidden(&delete_other);
    assert_forbidden(&create);
    assert_eq!(snapshot(&w.app).await, before);

    let deleted = w
        .app
        .graphql_as(
            Some(&w.alice_token),
            "mutation($id: UUID!) { deleteUser(id: $id) }",
            json!({ "id": w.alice }),
        )
        .await;
    assert_eq!(deleted["data"]["deleteUser"], json!(w.alice.to_string()), "{deleted}");
    assert_eq!(w.app.rows("users").await, 1);
}

async fn a_user_changes_and_deletes_only_their_own_posts(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    let update = "mutation($id: UUID!) { updatePost(id: $id, input: { title: \"Edited\" }) { title } }";
    let delete = "mutation($id: UUID!) { deletePost(id: $id) }";

    let own = w.app.graphql_as(Some(&w.alice_token), update, json!({ "id": w.alice_post })).await;
    let before = snapshot(&w.app).await;
    let other = w.app.graphql_as(Some(&w.alice_token), update, json!({ "id": w.bob_post })).await;
    let delete_other = w.app.graphql_as(Some(&w.alice_token), delete, json!({ "id": w.bob_post })).await;
    let missing = w.app.graphql_as(Some(&w.alice_token), delete, json!({ "id": Uuid::now_v7() })).await;

    assert_eq!(own["data"]["updatePost"]["title"], "Edited", "{own}");
    assert_forbidden(&other);
    assert_forbidden(&delete_other);
    assert_eq!(error_codes(&missing), ["NOT_FOUND"], "{missing}");
    assert_eq!(snapshot(&w.app).await, before);

    let deleted = w.app.graphql_as(Some(&w.alice_token), delete, json!({ "id": w.alice_post })).await;
    assert_eq!(deleted["data"]["deletePost"], json!(w.alice_post.to_string()), "{deleted}");
    assert_eq!(w.app.rows("posts").await, 1);
}

async fn a_user_posts_only_as_themselves(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    let create =
        "mutation($a: UUID) { createPost(input: { authorId: $a, title: \"Mine\" }) { author { id } } }";

    let implicit = w.app.graphql_as(Some(&w.alice_token), create, json!({})).await;
    let explicit = w.app.graphql_as(Some(&w.alice_token), create, json!({ "a": w.alice })).await;
    let posts_before = w.app.rows("posts").await;
    let as_bob = w.app.graphql_as(Some(&w.alice_token), create, json!({ "a": w.bob })).await;

    assert_eq!(implicit["data"]["createPost"]["author"]["id"], json!(w.alice.to_string()), "{implicit}");
    assert_eq!(explicit["data"]["createPost"]["author"]["id"], json!(w.alice.to_string()), "{explicit}");
    assert_forbidden(&as_bob);
    assert_eq!(w.app.rows("posts").await, posts_before);
}

async fn an_admin_does_everything_and_sees_every_email(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    let admin = w.app.token(Uuid::now_v7(), TokenRole::Admin);

    let emails = w.app.graphql_as(Some(&admin), "{ users { nodes { email } } }", json!({})).await;
    let created = w
        .app
        .graphql_as(
            Some(&admin),
            "mutation { createUser(input: { email: \"carol@example.com\" }) { email } }",
            json!({}),
        )
        .await;
    let for_bob = w
        .app
        .graphql_as(
            Some(&admin),
            "mutation($a: UUID!) { createPost(input: { authorId: $a, title: \"For Bob\" }) { author { email } } }",
            json!({ "a": w.bob }),
        )
        .await;
    let renamed = w
        .app
        .graphql_as(
            Some(&admin),
            "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"B.\" }) { name } }",
            json!({ "id": w.bob }),
        )
        .await;
    let edited = w
        .app
        .graphql_as(
            Some(&admin),
            "mutation($id: UUID!) { updatePost(id: $id, input: { title: \"T\" }) { title } }",
            json!({ "id": w.alice_post }),
        )
        .await;
    let post_deleted = w
        .app
        .graphql_as(Some(&admin), "mutation($id: UUID!) { deletePost(id: $id) }", json!({ "id": w.bob_post }))
        .await;
    let user_deleted = w
        .app
        .graphql_as(Some(&admin), "mutation($id: UUID!) { deleteUser(id: $id) }", json!({ "id": w.alice }))
        .await;

    assert_eq!(
        emails["data"]["users"]["nodes"],
        json!([{ "email": "alice@example.com" }, { "email": "bob@example.com" }])
    );
    assert_eq!(created["data"]["createUser"]["email"], "carol@example.com", "{created}");
    assert_eq!(for_bob["data"]["createPost"]["author"]["email"], "bob@example.com", "{for_bob}");
    assert_eq!(renamed["data"]["updateUser"]["name"], "B.", "{renamed}");
    assert_eq!(edited["data"]["updatePost"]["title"], "T", "{edited}");
    assert_eq!(post_deleted["data"]["deletePost"], json!(w.bob_post.to_string()), "{post_deleted}");
    assert_eq!(user_deleted["data"]["deleteUser"], json!(w.alice.to_string()), "{user_deleted}");
    assert_eq!((w.app.rows("users").await, w.app.rows("posts").await), (2, 1));
}

async fn user_by_email_finds_only_the_callers_own_address_unless_admin(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    let find = "query($e: String!) { userByEmail(email: $e) { id email } }";

    let own = w.app.graphql_as(Some(&w.alice_token), find, json!({ "e": "  ALICE@example.com " })).await;
    let someone_else = w.app.graphql_as(Some(&w.alice_token), find, json!({ "e": "bob@example.com" })).await;
    let no_one = w.app.graphql_as(Some(&w.alice_token), find, json!({ "e": "nobody@example.com" })).await;
    let anonymous = w.app.graphql_as(None, find, json!({ "e": "bob@example.com" })).await;
    let admin = w.app.graphql(find, json!({ "e": "bob@example.com" })).await;

    assert_eq!(
        own["data"]["userByEmail"],
        json!({ "id": w.alice.to_string(), "email": "alice@example.com" })
    );
    // An address with an account and one without get the same answer: no oracle.
    assert_forbidden(&someone_else);
    assert_forbidden(&no_one);
    assert_eq!(someone_else["errors"][0]["message"], no_one["errors"][0]["message"]);
    assert_forbidden(&anonymous);
    assert_eq!(admin["data"]["userByEmail"], json!({ "id": w.bob.to_string(), "email": "bob@example.com" }));
}

async fn a_token_outliving_its_user_changes_nothing(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    w.app.graphql("mutation($id: UUID!) { deleteUser(id: $id) }", json!({ "id": w.alice })).await;
    let before = snapshot(&w.app).await;

    let me = w.app.graphql_as(Some(&w.alice_token), "{ me { id } }", json!({})).await;
    let post = w
        .app
        .graphql_as(
            Some(&w.alice_token),
            "mutation { createPost(input: { title: \"Ghost\" }) { id } }",
            json!({}),
        )
        .await;
    let rename = w
        .app
        .graphql_as(
            Some(&w.alice_token),
            "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"Ghost\" }) { id } }",
            json!({ "id": w.alice }),
        )
        .await;
    let others = w
        .app
        .graphql_as(
            Some(&w.alice_token),
            "mutation($id: UUID!) { deletePost(id: $id) }",
            json!({ "id": w.bob_post }),
        )
        .await;

    assert_eq!(me, json!({ "data": { "me": null } }));
    assert_eq!(error_codes(&post), ["NOT_FOUND"], "{post}");
    assert_eq!(error_codes(&rename), ["NOT_FOUND"], "{rename}");
    assert_forbidden(&others);
    assert_eq!(snapshot(&w.app).await, before);
}

async fn every_operation_of_a_batch_runs_as_the_one_caller(backend: Backend) {
    let w = world(spawn_app(backend).await).await;
    let batch = json!([
        { "query": "query($id: UUID!) { user(id: $id) { email } }", "variables": { "id": w.alice } },
        { "query": "query($id: UUID!) { user(id: $id) { email } }", "variables": { "id": w.bob } },
        { "query": "mutation($id: UUID!) { deletePost(id: $id) }", "variables": { "id": w.bob_post } },
    ]);

    let response = w.app.post_graphql_as(Some(&w.alice_token), &batch).await;
    let bodies: Value = response.json().await.unwrap();

    assert_eq!(bodies[0]["data"]["user"]["email"], "alice@example.com", "{bodies}");
    assert_eq!(bodies[1]["data"]["user"]["email"], Value::Null, "{bodies}");
    assert_forbidden(&bodies[2]);
    assert_eq!(w.app.rows("posts").await, 2);
}

async fn an_admin_warming_the_cache_shows_no_one_else_an_email(backend: Backend, cache: CacheKind) {
    let w = world(spawn_app_with(backend, |config| use_cache(config, &cache)).await).await;
    let read = "query($a: UUID!, $b: UUID!) { a: user(id: $a) { email } b: user(id: $b) { email } }";
    let ids = json!({ "a": w.alice, "b": w.bob });
    let warmed = w.app.graphql(read, ids.clone()).await;
    let hits_before = w.app.counter("cache_hits_total").await;

    let anonymous = w.app.graphql_as(None, read, ids.clone()).await;
    let bob = w.app.graphql_as(Some(&w.bob_token), read, ids.clone()).await;

    assert_eq!(
        warmed["data"],
        json!({ "a": { "email": "alice@example.com" }, "b": { "email": "bob@example.com" } })
    );
    assert!(
        w.app.counter("cache_hits_total").await > hits_before,
        "the reads after the admin's came from the cache"
    );
    assert_eq!(anonymous["data"], json!({ "a": { "email": null }, "b": { "email": null } }));
    assert_eq!(bob["data"], json!({ "a": { "email": null }, "b": { "email": "bob@example.com" } }));
}
