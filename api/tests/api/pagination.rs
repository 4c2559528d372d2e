//! Relay connections: keyset cursors forward and backward, page flags, totalCount.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, spawn_app};

crate::backend_tests!(
    paging_forward_visits_every_user_once_in_creation_order,
    paging_backward_visits_the_same_users_in_reverse,
    pages_of_one_users_posts_follow_their_cursors,
    each_listed_user_gets_their_own_page_of_posts,
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

async fn each_listed_user_gets_their_own_page_of_posts(backend: Backend) {
    let app = spawn_app(backend).await;
    let users = create_users(&app, 3).await;
    let (ada, bob) = (users[0], users[1]);
    // Interleaved, so one author's rows lie between another's in every index.
    let mut ada_posts = Vec::new();
    let mut bob_posts = Vec::new();
    ada_posts.push(app.create_post(ada, "a0").await);
    bob_posts.push(app.create_post(bob, "b0").await);
    ada_posts.push(app.create_post(ada, "a1").await);
    bob_posts.push(app.create_post(bob, "b1").await);
    for i in 2..5 {
        ada_posts.push(app.create_post(ada, &format!("a{i}")).await);
    }
    let cursor = app
        .graphql(
            "query($id: UUID!) { user(id: $id) { posts(first: 2) { pageInfo { endCursor } } } }",
            json!({ "id": ada }),
        )
        .await["data"]["user"]["posts"]["pageInfo"]["endCursor"]
        .clone();

    // Two pages per user, so the loader batches two page requests over three authors.
    let both_ends = app
        .graphql(
            "{ users(first: 3) { nodes { id
                newest: posts(first: 3) { nodes { id } pageInfo { hasNextPage } }
                oldest: posts(last: 2) { nodes { id } pageInfo { hasPreviousPage } } } } }",
            json!({}),
        )
        .await;
    // One cursor for every user: each gets their own posts older than the post it names.
    let older = app
        .graphql(
            "query($c: String) { users(first: 3) { nodes { posts(first: 2, after: $c) {
                nodes { id } pageInfo { hasNextPage } } } } }",
            json!({ "c": cursor }),
        )
        .await;

    let users_out = both_ends["data"]["users"]["nodes"].as_array().expect("users");
    assert_eq!(ids(&both_ends["data"]["users"]["nodes"]), users);
    let newest: Vec<Vec<Uuid>> = users_out.iter().map(|u| ids(&u["newest"]["nodes"])).collect();
    let oldest: Vec<Vec<Uuid>> = users_out.iter().map(|u| ids(&u["oldest"]["nodes"])).collect();
    assert_eq!(
        newest,
        [vec![ada_posts[4], ada_posts[3], ada_posts[2]], vec![bob_posts[1], bob_posts[0]], vec![]]
    );
    assert_eq!(oldest, [vec![ada_posts[1], ada_posts[0]], vec![bob_posts[1], bob_posts[0]], vec![]]);
    let more: Vec<&Value> = users_out.iter().map(|u| &u["newest"]["pageInfo"]["hasNextPage"]).collect();
    assert_eq!(more, [&json!(true), &json!(false), &json!(false)]);
    let earlier: Vec<&Value> =
        users_out.iter().map(|u| &u["oldest"]["pageInfo"]["hasPreviousPage"]).collect();
    assert_eq!(earlier, [&json!(true), &json!(false), &json!(false)]);
    let pages: Vec<Vec<Uuid>> = older["data"]["users"]["nodes"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| ids(&u["posts"]["nodes"]))
        .collect();
    assert_eq!(pages, [vec![ada_posts[2], ada_posts[1]], vec![bob_posts[1], bob_posts[0]], vec![]]);
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
