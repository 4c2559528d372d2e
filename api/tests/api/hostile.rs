//! Hostile and malformed requests, a few hundred of them: each must get a 4xx or a
//! GraphQL error with a code, never a 5xx or an internal error, and none may write.

use serde_json::{Value, json};

use crate::helpers::{Backend, TEST_SECRET, TestApp, counter_value, spawn_app};

crate::backend_tests!(hostile_requests_are_refused_cleanly_and_write_nothing,);

/// One request of the suite.
enum Attempt {
    /// A body sent as is, with this content type.
    Raw { content_type: &'static str, body: Vec<u8> },
    /// A GraphQL request sent as JSON.
    Graphql(Value),
    /// A GET with this query string (and the preflight header).
    Get(String),
    /// A GraphQL request with this `Authorization` header instead of the admin's token.
    Authorized { authorization: Vec<u8>, body: Value },
    /// A GraphQL request with no token at all.
    Anonymous(Value),
}

fn graphql(query: impl Into<String>, variables: Value) -> Attempt {
    Attempt::Graphql(json!({ "query": query.into(), "variables": variables }))
}

fn attempts(user: &str) -> Vec<Attempt> {
    let mut all = Vec::new();
    let raw = |content_type: &'static str, body: &str| Attempt::Raw {
        content_type,
        body: body.as_bytes().to_vec(),
    };

    // Bodies that are not JSON GraphQL requests.
    for body in [
        "",
        " ",
        "{",
        "}",
        "[",
        "[{]",
        "null",
        "true",
        "42",
        "\"query\"",
        "{\"query\": }",
        "{\"query\": 1}",
        "{\"query\": null}",
        "{\"query\": [\"{ users { totalCount } }\"]}",
        "{\"query\": {}}",
        "{\"query\": \"{ __typename }\", \"variables\": \"x\"}",
        "{\"query\": \"{ __typename }\", \"variables\": 5}",
        "{\"query\": \"{ __typename }\", \"operationName\": 7}",
        "[1, 2, 3]",
        "[null]",
        "[[]]",
        "{\"variables\": {}}",
        "{\"query\": \"{ __typename }\"",
        "{'query': '{ __typename }'}",
        "query=%7B__typename%7D",
        "{\"query\": \"\\ud800\"}",
        "\u{feff}{\"query\": \"{ __typename }\"",
        "{\"query\":\"{ __typename }\",}",
    ] {
        all.push(raw("application/json", body));
    }
    all.push(Attempt::Raw { content_type: "application/json", body: vec![0xff, 0xfe, 0x00, 0x7b] });
    all.push(Attempt::Raw { content_type: "application/json", body: b"{\"query\": \"\xc3\x28\"}".to_vec() });
    // Content types a browser may send cross-site without a preflight, and others.
    let mutation = format!(r#"{{"query":"mutation {{ deleteUser(id: \"{user}\") }}"}}"#);
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "multipart/form-data",
        "application/xml",
        "text/html",
        "application/graphql",
        "application/octet-stream",
        "application/jsonx",
        "json",
        "",
        "application/",
        "*/*",
    ] {
        all.push(Attempt::Raw { content_type, body: mutation.clone().into_bytes() });
    }
    // Documents that do not parse.
    for query in [
        "{",
        "}",
        "{ users { }",
        "query {",
        "mutation",
        "{ users(first: ) { totalCount } }",
        "{ user(id: ) { id } }",
        "{ users { totalCount }} }",
        "query Q($a: ) { __typename }",
        "{ 123 }",
        "{ users(first: 1 first: 2) { totalCount } }",
        "{ ... }",
        "{ ...on }",
        "fragment F on User",
        "{ __typename @ }",
        "{ \"users\" }",
        "{ users { totalCount } ",
        "subscription { users }",
        "query { users(first: 10.5.5) { totalCount } }",
        "{ users(after: \"unterminated) { totalCount } }",
        "\u{0}",
        "{ users { totalCount } } { users { totalCount } }",
    ] {
        all.push(graphql(query, json!({})));
    }
    // Documents that do not validate.
    for query in [
        "{ nope }",
        "{ users { nope } }",
        "{ user { id } }",
        "{ users }",
        "{ user(id: 1) { id } }",
        "{ users(first: \"ten\") { totalCount } }",
        "{ users(first: true) { totalCount } }",
        "{ users(bogus: 1) { totalCount } }",
        "{ users(first: 99999999999) { totalCount } }",
        "{ posts(authorId: 5) { totalCount } }",
        "mutation { createUser { id } }",
        "mutation { createUser(input: {}) { id } }",
        "mutation { createUser(input: { email: 5 }) { id } }",
        "mutation { createUser(input: { email: \"a@example.com\", extra: 1 }) { id } }",
        "mutation { createPost(input: { title: \"t\" }) { id } }",
        "mutation { deleteUser }",
        "query Q($id: UUID!) { user(id: $id) { id } }",
        "query Q($n: Int!) { users(first: $n) { totalCount } }",
        "query Q { ...F } fragment F on User { id }",
        "query A { __typename } query A { __typename }",
        "{ __type(name: 5) { name } }",
        "{ users { totalCount @skip } }",
        "{ users { totalCount @bogus } }",
    ] {
        all.push(graphql(query, json!({})));
    }
    // Variables of the wrong type.
    let by_id = "query($id: UUID!) { user(id: $id) { id } }";
    for id in [json!(1), json!(true), json!(null), json!([]), json!({}), json!(1.5), json!([user])] {
        all.push(graphql(by_id, json!({ "id": id })));
    }
    let page = "query($n: Int) { users(first: $n) { totalCount } }";
    for n in [
        json!("10"),
        json!(1.5),
        json!(1e40),
        json!(-1),
        json!(0),
        json!(101),
        json!(1000),
        json!(i64::MAX),
        json!(true),
        json!([1]),
    ] {
        all.push(graphql(page, json!({ "n": n })));
    }
    let create = "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }";
    for input in [
        json!(null),
        json!("x"),
        json!([]),
        json!({}),
        json!({ "email": null }),
        json!({ "email": ["a@example.com"] }),
        json!({ "email": "a@example.com", "name": 5 }),
        json!({ "email": "a@example.com", "profile": "bio" }),
        json!({ "email": "a@example.com", "unknown": true }),
    ] {
        all.push(graphql(create, json!({ "input": input })));
    }
    // Malformed ids, as literals and as variables.
    for id in [
        "",
        " ",
        "nope",
        "1234",
        "00000000-0000-0000-0000-00000000000",
        "00000000-0000-0000-0000-0000000000000",
        "0000000g-0000-0000-0000-000000000000",
        "{00000000-0000-0000-0000-000000000000",
        "' OR 1=1 --",
        "\u{0}",
        "😀",
        &"a".repeat(10_000),
        "../../etc/passwd",
        "0x1234",
        "-1",
    ] {
        all.push(graphql(by_id, json!({ "id": id })));
        all.push(graphql("mutation($id: UUID!) { deleteUser(id: $id) }", json!({ "id": id })));
    }
    // Emails that are not addresses.
    for email in [
        "",
        " ",
        "plain",
        "@",
        "a@",
        "@b.com",
        "a@b",
        "a@@b.com",
        "a b@c.com",
        "a@b .com",
        "a@[127.0.0.1]",
        "\"quoted\"@example.com",
        "a@example.com\u{0}",
        "😀",
        "a@😀",
        "<script>@x.com",
        &format!("{}@x.com", "a".repeat(300)),
        "a@example..com",
        "a\n@example.com",
        "' OR '1'='1",
    ] {
        all.push(graphql(create, json!({ "input": { "email": email } })));
        all.push(graphql("query($e: String!) { userByEmail(email: $e) { id } }", json!({ "e": email })));
    }
    // Fields too long, NUL characters, odd unicode in places that must stay short.
    let update = format!(
        "mutation($input: UpdateUserInput!) {{ updateUser(id: \"{user}\", input: $input) {{ id }} }}"
    );
    for input in [
        json!({ "name": "n".repeat(201) }),
        json!({ "name": "😀".repeat(201) }),
        json!({ "name": "a\u{0}b" }),
        json!({ "email": null }),
        json!({ "email": "nope" }),
        json!({ "profile": null }),
        json!({ "profile": { "bio": "b".repeat(2_001) } }),
        json!({ "profile": { "bio": "\u{0}" } }),
        json!({ "name": "\u{202e}".repeat(500) }),
        json!({ "name": "\u{200b}".repeat(300) }),
    ] {
        all.push(graphql(update.clone(), json!({ "input": input })));
    }
    let post = format!(
        "mutation($t: String!, $c: String) {{ createPost(input: {{ authorId: \"{user}\", title: $t, content: $c }}) {{ id }} }}"
    );
    for (title, content) in [
        (String::new(), None),
        ("   ".into(), None),
        ("\t\n".into(), None),
        ("t".repeat(301), None),
        ("é".repeat(301), None),
        ("a\u{0}".into(), None),
        ("ok".into(), Some("c".repeat(100_001))),
        ("ok".into(), Some("\u{0}".into())),
    ] {
        all.push(graphql(post.clone(), json!({ "t": title, "c": content })));
    }
    // Cursors that are not ours.
    for cursor in
        ["", "x", "====", "dXNlcjpub3BlCg", "cG9zdDox", "cG9zdDp4Onk", &"QUFB".repeat(1_000), "😀", "\u{0}"]
    {
        all.push(graphql("query($c: String) { users(after: $c) { totalCount } }", json!({ "c": cursor })));
        all.push(graphql(
            "query($c: String) { posts(before: $c, last: 5) { totalCount } }",
            json!({ "c": cursor }),
        ));
    }
    // Deep, wide and bomb-shaped documents.
    let deep = format!(
        "{{ {}id{} }}",
        "users { nodes { posts { nodes { author { ".repeat(6),
        " } } } } }".repeat(6)
    );
    all.push(graphql(deep, json!({})));
    all.push(graphql(format!("{{ {} }}", "__typename ".repeat(5_000)), json!({})));
    all.push(graphql(
        format!("{{ {} }}", (0..2_000).map(|i| format!("a{i}: users {{ totalCount }} ")).collect::<String>()),
        json!({}),
    ));
    all.push(graphql(
        format!(
            "{{ users {{ nodes {{ {} }} }} }}",
            (0..500).map(|i| format!("e{i}: email ")).collect::<String>()
        ),
        json!({}),
    ));
    all.push(graphql("{ users(first: 100) { nodes { posts(first: 100) { nodes { author { posts(first: 100) { totalCount } } } } } } }", json!({})));
    all.push(graphql("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }", json!({})));
    all.push(graphql(format!("{}{{ __typename }}", "{".repeat(10_000)), json!({})));
    all.push(graphql("[".repeat(100_000), json!({})));
    let mut bomb = String::from("query { users { nodes { ...F6 } } }\nfragment F0 on User { id email }\n");
    for i in 1..=6 {
        bomb.push_str(&format!("fragment F{i} on User {{ {} }}\n", format!("...F{} ", i - 1).repeat(10)));
    }
    all.push(graphql(bomb, json!({})));
    // Oversized bodies and batches.
    all.push(graphql(format!("{{ __typename }} #{}", "x".repeat(2 * 1024 * 1024)), json!({})));
    all.push(Attempt::Graphql(json!(
        (0..50).map(|_| json!({ "query": "{ __typename }" })).collect::<Vec<_>>()
    )));
    all.push(Attempt::Graphql(
        json!({ "query": "{ __typename }", "variables": { "x": "y".repeat(2 * 1024 * 1024) } }),
    ));
    // GETs: mutations never run; a GET a browser could send cross-site does not run at all.
    for query in [
        format!("query=mutation%20%7B%20deleteUser(id%3A%20%22{user}%22)%20%7D"),
        "query=%7B".into(),
        "query=".into(),
        "variables=%7B%7D".into(),
        "query=%7B__typename%7D&variables=nope".into(),
        "query=%7B%20nope%20%7D".into(),
        "query=%7B__typename%7D&extensions=%5B".into(),
    ] {
        all.push(Attempt::Get(query));
    }
    all.extend(token_attempts(user));
    all
}

/// Bad `Authorization` headers on a mutation that would delete the user, and every
/// mutation sent with no token.
fn token_attempts(user: &str) -> Vec<Attempt> {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let signed = |claims: Value| {
        let key = jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    let exp = chrono::Utc::now().timestamp() + 600;
    let delete = json!({ "query": format!(r#"mutation {{ deleteUser(id: "{user}") }}"#) });
    let mut headers: Vec<Vec<u8>> = [
        "Bearer",
        "Bearer ",
        "Bearer a",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer .",
        "Bearer ..",
        "Bearer ...",
        "bearer x.y.z",
        "Basic YWRtaW46YWRtaW4=",
        "Digest username=\"admin\"",
        "Token abc",
        "Bearer\tabc.def.ghi",
        "Bearer null",
        "Bearer undefined",
        "Bearer {\"alg\":\"none\"}",
    ]
    .iter()
    .map(|h| h.as_bytes().to_vec())
    .collect();
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"HS512"}"#,
        r#"{"alg":"RS256","kid":"../../etc/passwd"}"#,
        r#"{"alg":"ES256","jku":"http://127.0.0.1:1/jwks.json"}"#,
        r#"{"alg":"HS256","crit":["exp"]}"#,
        r#"{}"#,
        r#"[]"#,
        r#""HS256""#,
    ] {
        let claims = json!({ "sub": user, "role": "admin", "exp": exp });
        headers.push(format!("Bearer {}.{}.", b64(header), b64(&claims.to_string())).into_bytes());
        headers.push(format!("Bearer {}.{}.c2ln", b64(header), b64(&claims.to_string())).into_bytes());
    }
    // Signed with the right secret, but with claims no one should accept.
    for claims in [
        json!({ "sub": user, "role": "admin" }),
        json!({ "sub": user, "role": "admin", "exp": "never" }),
        json!({ "sub": user, "role": "admin", "exp": 1e300 }),
        json!({ "sub": user, "role": "admin", "exp": -1 }),
        json!({ "sub": user, "role": "admin", "exp": exp, "nbf": "now" }),
        json!({ "sub": null, "role": "admin", "exp": exp }),
        json!({ "sub": 42, "role": "admin", "exp": exp }),
        json!({ "sub": format!("{user} "), "role": "admin", "exp": exp }),
        json!({ "sub": user, "role": "Admin", "exp": exp }),
        json!({ "sub": user, "role": { "admin": true }, "exp": exp }),
        json!({ "sub": user, "role": "root", "exp": exp }),
        json!({ "role": "admin", "exp": exp }),
    ] {
        headers.push(format!("Bearer {}", signed(claims)).into_bytes());
    }
    headers.push(format!("Bearer {}", "a".repeat(6000)).into_bytes());
    headers.push(b"Bearer \xff\xfe.\x80.\x81".to_vec());
    let mut all: Vec<Attempt> = headers
        .into_iter()
        .map(|authorization| Attempt::Authorized { authorization, body: delete.clone() })
        .collect();
    for mutation in [
        format!(r#"mutation {{ deleteUser(id: "{user}") }}"#),
        format!(r#"mutation {{ updateUser(id: "{user}", input: {{ name: "Eve" }}) {{ id }} }}"#),
        r#"mutation { createUser(input: { email: "eve@example.com" }) { id } }"#.to_owned(),
        r#"mutation { createPost(input: { title: "Spam" }) { id } }"#.to_owned(),
        format!(r#"mutation {{ createPost(input: {{ authorId: "{user}", title: "Spam" }}) {{ id }} }}"#),
        r#"{ userByEmail(email: "ada@example.com") { id } }"#.to_owned(),
    ] {
        all.push(Attempt::Anonymous(json!({ "query": mutation })));
    }
    all
}

/// What the database holds that the suite must not change.
async fn snapshot(app: &TestApp) -> Value {
    json!([
        app.rows("users").await,
        app.rows("posts").await,
        app.rows("profiles").await,
        app.graphql("{ users { nodes { id email name updatedAt profile { bio } posts { nodes { id title content updatedAt } } } } }", json!({})).await,
    ])
}

async fn hostile_requests_are_refused_cleanly_and_write_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .graphql(r#"mutation { createUser(input: { email: "ada@example.com", name: "Ada", profile: { bio: "Engines." } }) { id } }"#, json!({}))
        .await;
    let user = created["data"]["createUser"]["id"].as_str().unwrap().to_owned();
    app.create_post(user.parse().unwrap(), "Notes").await;
    let before = snapshot(&app).await;
    let attempts = attempts(&user);
    assert!(attempts.len() >= 200, "only {} attempts", attempts.len());

    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for (i, attempt) in attempts.iter().enumerate() {
        let request = match attempt {
            Attempt::Raw { content_type, body } => {
                let request = app.client.post(format!("{}/graphql", app.address)).body(body.clone());
                if content_type.is_empty() { request } else { request.header("content-type", *content_type) }
            }
            Attempt::Graphql(body) => app.client.post(format!("{}/graphql", app.address)).json(body),
            Attempt::Authorized { authorization, body } => app
                .anonymous
                .post(format!("{}/graphql", app.address))
                .header("authorization", reqwest::header::HeaderValue::from_bytes(authorization).unwrap())
                .json(body),
            Attempt::Anonymous(body) => app.anonymous.post(format!("{}/graphql", app.address)).json(body),
            Attempt::Get(query) => app
                .client
                .get(format!("{}/graphql?{query}", app.address))
                .header("apollo-require-preflight", "true"),
        };
        let oversized = matches!(attempt, Attempt::Graphql(body) if body.to_string().len() > 1024 * 1024);
        let response = match request.send().await {
            Ok(response) => response,
            // The server answers 413 before reading an oversized body and closes the
            // connection, so the client may fail writing the rest instead of reading it.
            Err(e) if oversized => {
                eprintln!("attempt {i}: oversized body cut off: {e}");
                continue;
            }
            Err(e) => panic!("attempt {i}: no response: {e}"),
        };
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(!status.is_server_error(), "attempt {i}: {status} {text:.300}");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("attempt {i}: not JSON: {text:.300}"));
        let errors: Vec<&Value> = match &body {
            Value::Array(batch) => {
                batch.iter().flat_map(|r| r["errors"].as_array().into_iter().flatten()).collect()
            }
            _ => body["errors"].as_array().into_iter().flatten().collect(),
        };
        assert!(!errors.is_empty(), "attempt {i}: accepted: {text:.300}");
        for error in errors {
            let code = error["extensions"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("attempt {i}: no code: {text:.300}"));
            assert_ne!(code, "INTERNAL_SERVER_ERROR", "attempt {i}: {text:.300}");
            *statuses.entry(format!("{} {code}", status.as_u16())).or_default() += 1;
        }
    }

    eprintln!("{} hostile requests; status and code of each error: {statuses:#?}", attempts.len());
    assert_eq!(snapshot(&app).await, before, "the database changed");
    assert_eq!(app.get("/healthz").await.status(), 200);
    let metrics = app.metrics().await;
    assert_eq!(counter_value(&metrics, "graphql_errors_total{code=\"INTERNAL_SERVER_ERROR\"}"), 0);
}
