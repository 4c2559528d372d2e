//! Relay connections: keyset cursors forward and backward, page flags, totalCount.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, spawn_app};

crate::backend_tests!(
    paging_forward_visits_every_user_once_in_creation_order,
    paging_backward_visits_the_same_users_in_reverse,
    pages_of_one_users_posts_follow_their_cursors,
    first_defaults_to_twenty,
    total_count_counts_the_whole_list,
);

const USERS_PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
    users(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id } }
        nodes { id }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
}";

async fn create_users(app: &TestApp, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.create_user(&format!("user{i}@example.com")).await);
    }
    ids
}

fn ids(nodes: &Value) -> Vec<Uuid> {
    nodes.as_array().expect("a list").iter().map(|n| n["id"].as_str().unwrap().parse().unwrap()).collect()
}

async fn paging_forward_visits_every_user_once_in_creation_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create_users(&app, 23).await;

    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let body = app.graphql(USERS_PAGE, json!({ "first": 10, "after": after })).await;
        let users = &body["data"]["users"];
        assert_eq!(
            ids(&users["nodes"]),
            users["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().parse().unwrap())
                .collect::<Vec<Uuid>>()
        );
        assert_eq!(users["pageInfo"]["startCursor"], users["edges"][0]["cursor"]);
        assert_eq!(users["pageInfo"]["hasPreviousPage"], json!(pages > 0));
        seen.extend(ids(&users["nodes"]));
        pages += 1;
        if users["pageInfo"]["hasNextPage"] == json!(false) {
            break;
        }
        after = users["pageInfo"]["endCursor"].clone();
    }

    assert_eq!(pages, 3);
    assert_eq!(seen, created);
}

async fn paging_backward_visits_the_same_users_in_reverse(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create_users(&app, 12).await;

    let last_page = app.graphql(USERS_PAGE, json!({ "last": 5 })).await;
    let before = last_page["data"]["users"]["pageInfo"]["startCursor"].clone();
    let middle = app.graphql(USERS_PAGE, json!({ "last": 5, "before": before })).await;
    let before = middle["data"]["users"]["pageInfo"]["startCursor"].clone();
    let first = app.graphql(USERS_PAGE, json!({ "last": 5, "before": before })).await;

    assert_eq!(ids(&last_page["data"]["users"]["nodes"]), created[7..12]);
    assert_eq!(last_page["data"]["users"]["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(last_page["data"]["users"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(ids(&middle["data"]["users"]["nodes"]), created[2..7]);
    assert_eq!(ids(&first["data"]["users"]["nodes"]), created[0..2]);
    assert_eq!(first["data"]["users"]["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(first["data"]["users"]["pageInfo"]["hasNextPage"], true);
}

async fn pages_of_one_users_posts_follow_their_cursors(backend: Backend) {
    let app = spawn_app(backend).await;
    let author = app.create_user("ada@example.com").await;
    let other = app.create_user("bob@example.com").await;
    let mut posts = Vec::new();
    for i in 0..7 {
        posts.push(app.create_post(author, &format!("Post {i}")).await);
        app.create_post(other, "Noise").await;
    }
    posts.reverse(); // newest first
    let query = "query($id: UUID!, $first: Int, $after: String, $last: Int, $before: String) {
        user(id: $id) { posts(first: $first, after: $after, last: $last, before: $before) {
            nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";

    let page1 = app.graphql(query, json!({ "id": author, "first": 3 })).await;
    let p1 = &page1["data"]["user"]["posts"];
    let page2 =
        app.graphql(query, json!({ "id": author, "first": 3, "after": p1["pageInfo"]["endCursor"] })).await;
    let p2 = &page2["data"]["user"]["posts"];
    let page3 =
        app.graphql(query, json!({ "id": author, "first": 3, "after": p2["pageInfo"]["endCursor"] })).await;
    let p3 = &page3["data"]["user"]["posts"];
    let back =
        app.graphql(query, json!({ "id": author, "last": 2, "before": p2["pageInfo"]["startCursor"] })).await;
    let b = &back["data"]["user"]["posts"];

    assert_eq!(ids(&p1["nodes"]), posts[0..3]);
    assert_eq!(ids(&p2["nodes"]), posts[3..6]);
    assert_eq!(ids(&p3["nodes"]), posts[6..7]);
    assert_eq!(
        (p1["pageInfo"]["hasNextPage"].clone(), p3["pageInfo"]["hasNextPage"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(ids(&b["nodes"]), posts[1..3]);
    assert_eq!(b["pageInfo"]["hasPreviousPage"], true);
}

async fn first_defaults_to_twenty(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create_users(&app, 21).await;

    let body = app.graphql("{ users { nodes { id } pageInfo { hasNextPage } } }", json!({})).await;

    assert_eq!(ids(&body["data"]["users"]["nodes"]), created[..20]);
    assert_eq!(body["data"]["users"]["pageInfo"]["hasNextPage"], true);
}

async fn total_count_counts_the_whole_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let users = create_users(&app, 3).await;
    for _ in 0..4 {
        app.create_post(users[0], "p").await;
    }
    app.create_post(users[1], "p").await;

    let body = app
        .graphql(
            "{ users(first: 1) { totalCount nodes { posts(first: 1) { totalCount } } } posts(first: 2) { totalCount } }",
            json!({}),
        )
        .await;

    assert_eq!(
        body["data"],
        json!({
            "users": { "totalCount": 3, "nodes": [{ "posts": { "totalCount": 4 } }] },
            "posts": { "totalCount": 5 },
        })
    );
}
