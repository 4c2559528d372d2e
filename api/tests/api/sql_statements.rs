//! Every relation is batched: a query's SQL statement count depends on its depth, not
//! on how many rows it touches. Counted from `db_queries_total` on `/metrics`; the
//! metric is process-wide, so these tests rely on one process per test (nextest).

use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app_with};

crate::backend_tests!(
    the_nested_users_query_costs_the_same_few_statements_for_5_and_50_users,
    a_page_of_users_and_their_pages_of_posts_are_two_statements_each_counted,
    pages_of_posts_with_and_without_details_are_one_statement_and_each_answers_its_selection,
);

const NESTED: &str = "query($n: Int!) { users(first: $n) { nodes { id posts(first: 10) { nodes { id author { id } } } profile { bio } } } }";

/// Seeds `n` users with 12 posts and a profile each, with the server's own seed. The
/// user cache is off, so every relation is really loaded.
async fn seeded(backend: Backend, n: u32) -> TestApp {
    let app = spawn_app_with(backend, |c| c.cache = api::config::CacheMode::Off).await;
    api::seed::run(&app.db, &api::config::SeedArgs { users: n, posts_per_user: 12 }).await.expect("seeding");
    app
}

async fn the_nested_users_query_costs_the_same_few_statements_for_5_and_50_users(backend: Backend) {
    let app = seeded(backend, 50).await;

    let (five, five_statements) = app.graphql_counting_sql(NESTED, json!({ "n": 5 })).await;
    let (fifty, fifty_statements) = app.graphql_counting_sql(NESTED, json!({ "n": 50 })).await;

    assert!(five.get("errors").is_none() && fifty.get("errors").is_none(), "{five} {fifty}");
    let users = fifty["data"]["users"]["nodes"].as_array().unwrap();
    assert_eq!(users.len(), 50);
    assert!(users.iter().all(|u| u["posts"]["nodes"].as_array().unwrap().len() == 10));
    assert!(users.iter().all(|u| u["profile"]["bio"].is_string()));
    assert!(users.iter().all(|u| u["posts"]["nodes"][0]["author"]["id"] == u["id"]));
    eprintln!("SQL statements: N=5 -> {five_statements}, N=50 -> {fifty_statements}");
    assert_eq!(five_statements, fifty_statements);
    assert!(fifty_statements <= 4, "{fifty_statements} statements");
}

/// The pages of posts of many authors are read from sqlx directly on PostgreSQL, not through
/// SeaORM: the statement must still be counted.
async fn a_page_of_users_and_their_pages_of_posts_are_two_statements_each_counted(backend: Backend) {
    let app = seeded(backend, 5).await;

    let (body, statements) = app
        .graphql_counting_sql(
            "{ users(first: 5) { nodes { posts(first: 10) { nodes { title } } } } }",
            json!({}),
        )
        .await;

    assert!(body.get("errors").is_none(), "{body}");
    let users = body["data"]["users"]["nodes"].as_array().unwrap();
    assert!(users.iter().all(|u| u["posts"]["nodes"].as_array().unwrap().len() == 10), "{body}");
    assert_eq!(statements, 2, "one page of users, one of posts for all five");
}

/// A page of posts whose selection shows neither `content` nor `updatedAt` is read without
/// them; one that shows either, by any path, with them; both in one request, once.
async fn pages_of_posts_with_and_without_details_are_one_statement_and_each_answers_its_selection(
    backend: Backend,
) {
    let app = seeded(backend, 3).await;
    let mixed = "{ users(first: 3) { nodes { plain: posts(first: 2) { nodes { id title createdAt } }
                   detailed: posts(first: 2) { edges { node { ...D } } } } } }
                 fragment D on Post { id title createdAt content updatedAt }";

    let (both, statements) = app.graphql_counting_sql(mixed, json!({})).await;
    let (content_only, _) = app
        .graphql_counting_sql(
            "{ users(first: 3) { nodes { posts(first: 2) { nodes { content } } } } }",
            json!({}),
        )
        .await;

    assert!(both.get("errors").is_none() && content_only.get("errors").is_none(), "{both} {content_only}");
    assert_eq!(statements, 2, "one page of users, one of posts read once for both selections");
    for (i, user) in both["data"]["users"]["nodes"].as_array().unwrap().iter().enumerate() {
        let plain = user["plain"]["nodes"].as_array().unwrap();
        let detailed: Vec<_> =
            user["detailed"]["edges"].as_array().unwrap().iter().map(|e| &e["node"]).collect();
        assert_eq!(plain.len(), 2);
        for (post, with_details) in plain.iter().zip(&detailed) {
            assert_eq!(
                (&post["id"], &post["title"], &post["createdAt"]),
                (&with_details["id"], &with_details["title"], &with_details["createdAt"])
            );
            assert!(with_details["content"].is_string() && with_details["updatedAt"].is_string(), "{both}");
            let stored = app
                .graphql(
                    "query($id: UUID!) { post(id: $id) { content updatedAt } }",
                    json!({ "id": post["id"] }),
                )
                .await;
            assert_eq!(stored["data"]["post"]["content"], with_details["content"]);
            assert_eq!(stored["data"]["post"]["updatedAt"], with_details["updatedAt"]);
        }
        let contents: Vec<_> = content_only["data"]["users"]["nodes"][i]["posts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|post| &post["content"])
            .collect();
        assert_eq!(contents, detailed.iter().map(|post| &post["content"]).collect::<Vec<_>>());
    }
}
