//! Limits on what one request may ask for, each with its own clear error, while GraphiQL
//! and code generators keep working under the defaults.

use serde_json::{Value, json};

use crate::helpers::{Backend, error_codes, spawn_app, spawn_app_with};

/// What GraphiQL (graphql-js `getIntrospectionQuery` with every option on) sends.
pub const INTROSPECTION_QUERY: &str = r#"
query IntrospectionQuery {
  __schema {
    description
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name description isRepeatable locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name
      ofType { kind name ofType { kind name } } } } } } } } } }
}
"#;

crate::backend_tests!(introspection_works_under_the_default_limits, the_typical_nested_page_fits_the_limits,);

async fn introspection_works_under_the_default_limits(backend: Backend) {
    let app = spawn_app(backend).await;

    let body = app.graphql(INTROSPECTION_QUERY, json!({})).await;

    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "UserConnection"));
}

async fn the_typical_nested_page_fits_the_limits(backend: Backend) {
    let app = spawn_app(backend).await;

    let body = app
        .graphql(
            "{ users(first: 50) { totalCount pageInfo { endCursor } edges { cursor node { id email profile { bio }
               posts(first: 10) { nodes { id title author { id email } } } } } } }",
            json!({}),
        )
        .await;

    assert!(body.get("errors").is_none(), "{body}");
}

fn only_code(body: &Value) -> String {
    let codes = error_codes(body);
    assert_eq!(codes.len(), 1, "expected one error in {body}");
    codes[0].clone()
}

#[tokio::test]
async fn a_query_nested_too_deep_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let deep = "{ users { nodes { posts { nodes { author { posts { nodes { author { posts { nodes { author { posts { nodes { author { id } } } } } } } } } } } } } } }";

    let body = app.graphql(deep, json!({})).await;

    assert_eq!(only_code(&body), "QUERY_TOO_COMPLEX", "{body}");
}

#[tokio::test]
async fn a_query_too_costly_is_refused_counting_page_sizes() {
    let app = spawn_app(Backend::Sqlite).await;
    let costly = "{ users(first: 100) { nodes { posts(first: 100) { nodes { id title content author { id email name } } } } } }";
    let cheap = "{ users(first: 10) { nodes { posts(first: 10) { nodes { id title content author { id email name } } } } } }";

    let refused = app.graphql(costly, json!({})).await;
    let accepted = app.graphql(cheap, json!({})).await;

    assert_eq!(only_code(&refused), "QUERY_TOO_COMPLEX", "{refused}");
    assert!(accepted.get("errors").is_none(), "{accepted}");
}

#[tokio::test]
async fn too_many_aliases_or_root_fields_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let aliases: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
    let roots: String = (0..21).map(|_| "__typename ".to_owned()).collect();

    let alias_body = app.graphql(&format!("{{ {aliases} }}"), json!({})).await;
    let root_body = app.graphql(&format!("{{ {roots} }}"), json!({})).await;

    assert_eq!(only_code(&alias_body), "QUERY_TOO_COMPLEX", "{alias_body}");
    assert!(alias_body["errors"][0]["message"].as_str().unwrap().contains("aliases"));
    assert_eq!(only_code(&root_body), "QUERY_TOO_COMPLEX", "{root_body}");
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_before_it_is_expanded() {
    let app = spawn_app(Backend::Sqlite).await;
    // F8 expands to 8^8 (16 million) fields, shallow enough for the parser's recursion
    // limit: walking it would take the validator minutes.
    let mut document = String::from("query { users { nodes { ...F8 } } }\nfragment F0 on User { id }\n");
    for i in 1..=8 {
        let spreads = format!("...F{} ", i - 1).repeat(8);
        document.push_str(&format!("fragment F{i} on User {{ {spreads} }}\n"));
    }

    let body = app.graphql(&document, json!({})).await;

    assert_eq!(only_code(&body), "QUERY_TOO_COMPLEX", "{body}");
}

#[tokio::test]
async fn cyclic_fragments_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let document =
        "query { users { nodes { ...A } } } fragment A on User { ...B } fragment B on User { ...A }";

    // Fragments live in a hash map: ask often enough that an answer depending on its
    // order would show.
    for _ in 0..20 {
        let body = app.graphql(document, json!({})).await;

        assert_eq!(only_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        assert_eq!(body["errors"][0]["message"], "Cannot spread fragment \"A\" within itself.", "{body}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413_and_an_oversized_batch_is_400() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_body_bytes = 10_000).await;
    let big = json!({ "query": format!("{{ users {{ totalCount }} }} #{}", "x".repeat(20_000)) });
    let batch: Vec<Value> = (0..11).map(|_| json!({ "query": "{ __typename }" })).collect();

    let too_big = app.post_graphql(&big).await;
    let too_many = app.post_graphql(&json!(batch)).await;
    let empty = app.post_graphql(&json!([])).await;

    assert_eq!(too_big.status(), 413);
    assert_eq!(error_codes(&too_big.json().await.unwrap()), ["PAYLOAD_TOO_LARGE"]);
    assert_eq!(too_many.status(), 400);
    assert_eq!(empty.status(), 400);
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.introspection = false).await;

    let body = app.graphql("{ __schema { types { name } } }", json!({})).await;
    let ordinary = app.graphql("{ users { totalCount } }", json!({})).await;

    assert_eq!(body["data"]["__schema"], Value::Null, "{body}");
    assert_eq!(ordinary["data"]["users"]["totalCount"], 0);
}

#[tokio::test]
async fn graphql_response_json_clients_get_400_for_documents_that_do_not_validate() {
    let app = spawn_app(Backend::Sqlite).await;
    let send = |query: &'static str| {
        app.client
            .post(format!("{}/graphql", app.address))
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query }))
            .send()
    };

    let invalid = send("{ nope }").await.unwrap();
    let unparsable = send("{ users { ").await.unwrap();
    let valid = send("{ users { totalCount } }").await.unwrap();

    assert_eq!(invalid.status(), 400);
    assert_eq!(invalid.headers()["content-type"], "application/graphql-response+json; charset=utf-8");
    assert_eq!(unparsable.status(), 400);
    assert_eq!(valid.status(), 200);
}

#[tokio::test]
async fn a_long_chain_of_fragments_is_refused_and_the_server_lives() {
    let app = spawn_app(Backend::Sqlite).await;
    let n = 20_000;
    let mut document = String::from("query { ...F0 }\n");
    for i in 0..n {
        document.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
    }
    document.push_str(&format!("fragment F{n} on Query {{ __typename }}\n"));

    let body = app.graphql(&document, json!({})).await;

    assert_eq!(only_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_document_sent_again_is_refused_again_and_a_good_one_answered_the_same() {
    let app = spawn_app(Backend::Sqlite).await;
    let aliases: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
    let refused = format!("{{ {aliases} }}");
    let good = "query($first: Int) { users(first: $first) { nodes { id } } __typename }";
    app.create_user("ada@example.com").await;
    app.create_user("bob@example.com").await;

    let mut bodies = Vec::new();
    for _ in 0..3 {
        bodies.push((
            app.graphql(&refused, json!({})).await,
            app.graphql(good, json!({ "first": 1 })).await,
            app.graphql(good, json!({ "first": 2 })).await,
        ));
    }

    for (refused, one, two) in &bodies {
        assert_eq!(only_code(refused), "QUERY_TOO_COMPLEX", "{refused}");
        assert_eq!(one["data"]["users"]["nodes"].as_array().map(Vec::len), Some(1), "{one}");
        assert_eq!(two["data"]["users"]["nodes"].as_array().map(Vec::len), Some(2), "{two}");
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "{bodies:?}");
}

// A document that has passed validation once skips the rules that read the document alone;
// the limits, which read the variables, still apply to every request.
#[tokio::test]
async fn a_document_checked_before_is_still_held_to_the_cost_its_variables_give() {
    let app = spawn_app(Backend::Sqlite).await;
    let query = "query($n: Int) { users(first: $n) { nodes { posts(first: $n) { nodes { id title author { id } } } } } }";

    let mut bodies = Vec::new();
    for n in [10, 10, 100, 10, 100] {
        bodies.push(app.graphql(query, json!({ "n": n })).await);
    }

    for (i, body) in bodies.iter().enumerate() {
        match i {
            2 | 4 => assert_eq!(only_code(body), "QUERY_TOO_COMPLEX", "{body}"),
            _ => assert!(body.get("errors").is_none(), "{body}"),
        }
    }
}

// A document's cost is measured once and reused only when no request could make it differ:
// not when another operation of the document runs, nor when a variable (or its default)
// sets a page size.
#[tokio::test]
async fn a_cost_measured_once_is_reused_only_where_no_request_can_change_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = "nodes { posts(first: 100) { nodes { id title author { id } } } }";
    let two_operations = format!(
        "query Cheap {{ users(first: 1) {{ nodes {{ id }} }} }} query Costly {{ users(first: 100) {{ {page} }} }}"
    );
    let named = format!("query Named {{ users(first: 100) {{ {page} }} }}");
    let defaulted = format!("query($n: Int = 100) {{ users(first: $n) {{ {page} }} }}");
    let fixed = format!("{{ users(first: 100) {{ {page} }} }}");
    let run = async |document: &str, operation: &str| {
        let body = json!({ "query": document, "operationName": operation });
        app.post_graphql(&body).await.json::<Value>().await.expect("a JSON body")
    };

    let mut bodies = Vec::new();
    // A name the document lacks measures nothing, and must leave nothing for the next.
    let unknown = run(&named, "Nope").await;
    for _ in 0..2 {
        bodies.push(("Cheap", run(&two_operations, "Cheap").await));
        bodies.push(("Costly", run(&two_operations, "Costly").await));
        bodies.push(("Named", run(&named, "Named").await));
        bodies.push(("a small $n", app.graphql(&defaulted, json!({ "n": 1 })).await));
        bodies.push(("the default $n", app.graphql(&defaulted, json!({})).await));
        bodies.push(("no variables", app.graphql(&fixed, json!({})).await));
    }

    assert_eq!(unknown["errors"][0]["message"], "Unknown operation named \"Nope\"", "{unknown}");
    for (what, body) in &bodies {
        match *what {
            "Cheap" | "a small $n" => assert!(body.get("errors").is_none(), "{what}: {body}"),
            _ => assert_eq!(only_code(body), "QUERY_TOO_COMPLEX", "{what}: {body}"),
        }
    }
}

/// GraphiQL sends the whole editor, every operation in it, with the name of the one to
/// run: only that one's cost counts.
#[tokio::test]
async fn a_cheap_operation_runs_beside_a_costly_one_in_the_same_document() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("ada@example.com").await;
    let deep = "users(first: 100) { nodes { posts(first: 100) { nodes { author { posts(first: 100) { totalCount } } } } } }";
    let document =
        format!("query Costly {{ {deep} }} query Cheap {{ users(first: 1) {{ nodes {{ email }} }} }}");

    let cheap = app.post_graphql(&json!({ "query": document, "operationName": "Cheap" })).await;
    let costly = app.post_graphql(&json!({ "query": document, "operationName": "Costly" })).await;

    let cheap: Value = cheap.json().await.expect("a JSON body");
    assert_eq!(cheap, json!({ "data": { "users": { "nodes": [{ "email": "ada@example.com" }] } } }));
    assert_eq!(only_code(&costly.json().await.expect("a JSON body")), "QUERY_TOO_COMPLEX");
}

#[tokio::test]
async fn a_document_that_fails_validation_fails_it_every_time_and_bad_variables_too() {
    let app = spawn_app(Backend::Sqlite).await;
    let ada = app.create_user("ada@example.com").await;
    let invalid = "query($id: UUID!) { user(id: $id) { id nope } }";
    let valid = "query($id: UUID!) { user(id: $id) { id } }";

    let mut invalid_bodies = Vec::new();
    let mut bad_variable_bodies = Vec::new();
    for _ in 0..3 {
        invalid_bodies.push(app.graphql(invalid, json!({ "id": ada })).await);
        let good = app.graphql(valid, json!({ "id": ada })).await;
        assert_eq!(good["data"]["user"]["id"], json!(ada), "{good}");
        bad_variable_bodies.push(app.graphql(valid, json!({ "id": "not a uuid" })).await);
    }

    for body in &invalid_bodies {
        assert_eq!(only_code(body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        assert!(body.get("data").is_none(), "{body}");
    }
    for body in &bad_variable_bodies {
        assert!(body.get("data").is_none(), "{body}");
        assert!(!error_codes(body).is_empty(), "{body}");
    }
    assert!(invalid_bodies.windows(2).all(|pair| pair[0] == pair[1]), "{invalid_bodies:?}");
    assert!(bad_variable_bodies.windows(2).all(|pair| pair[0] == pair[1]), "{bad_variable_bodies:?}");
}
