//! Subscriptions over WebSocket: both protocols, events after commit, fan-out between
//! instances through Redis, the gap signal, limits and shutdown. A real WebSocket client
//! (tokio-tungstenite) talks to a real server.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest as _, http::HeaderValue},
};
use uuid::Uuid;

use api::config::TokenRole;

use crate::helpers::{Backend, CacheKind, RedisServer, TestApp, spawn_app, spawn_app_with, use_cache};

crate::cache_tests!(
    a_subscriber_receives_each_new_post_with_its_author,
    an_author_filter_passes_only_that_authors_posts,
    updates_and_deletions_arrive_and_a_deleted_user_ends_their_subscription,
    subscribers_sending_the_same_document_each_get_every_event_once,
    the_legacy_protocol_carries_the_same_events,
    a_burst_of_writes_reaches_every_subscription_whole_and_in_each_authors_order,
);

/// How long a test waits for a message it expects.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test listens to be sure a message does not come.
const QUIET: Duration = Duration::from_millis(500);

/// A WebSocket client speaking raw protocol messages.
struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects to `/graphql` offering `protocol` (none when empty), with extra headers.
    async fn try_connect(
        app: &TestApp,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, tungstenite::Error> {
        let url = format!("{}/graphql", app.address.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("a valid URL");
        if !protocol.is_empty() {
            request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
        }
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client { socket })
    }

    async fn connect(app: &TestApp, protocol: &str) -> Client {
        Self::try_connect(app, protocol, &[]).await.expect("connecting over WebSocket")
    }

    /// Connects with `graphql-transport-ws` and is acknowledged, sending `token` if any.
    async fn ready(app: &TestApp, token: Option<&str>) -> Client {
        let mut client = Self::connect(app, "graphql-transport-ws").await;
        let payload = token.map_or(json!({}), |token| json!({ "authorization": format!("Bearer {token}") }));
        client.send(json!({ "type": "connection_init", "payload": payload })).await;
        assert_eq!(client.next().await, json!({ "type": "connection_ack" }));
        client
    }

    async fn send(&mut self, message: Value) {
        self.socket.send(Message::text(message.to_string())).await.expect("sending a message");
    }

    async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
        )
        .await;
    }

    /// The next protocol message (keep-alive pings answered and skipped); panics on a
    /// close or after [`PATIENCE`].
    async fn next(&mut self) -> Value {
        loop {
            match self.raw(PATIENCE).await {
                Some(Message::Text(text)) => {
                    let message: Value = serde_json::from_str(&text).expect("a JSON message");
                    if message["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    if message["type"] == "ka" {
                        continue;
                    }
                    return message;
                }
                Some(Message::Close(frame)) => panic!("closed while a message was expected: {frame:?}"),
                Some(_) => continue,
                None => panic!("no message within {PATIENCE:?}"),
            }
        }
    }

    /// The payload of the next `next` message for `id`.
    async fn payload(&mut self, id: &str) -> Value {
        let message = self.next().await;
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(message["type"], "next", "{message}");
        message["payload"].clone()
    }

    /// Asserts nothing but keep-alives arrives for a moment.
    async fn assert_quiet(&mut self) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
            match self.raw(left).await {
                Some(Message::Text(text))
                    if text.contains(r#""type":"ping""#) || text.contains(r#""type":"ka""#) => {}
                Some(Message::Text(text)) => panic!("unexpected message: {text}"),
                Some(Message::Close(frame)) => panic!("unexpectedly closed: {frame:?}"),
                Some(_) => {}
                None => return,
            }
        }
    }

    /// The close code and reason the server sends next.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.raw(PATIENCE).await {
                Some(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Message::Close(None)) => return (1005, String::new()),
                Some(_) => continue,
                None => panic!("not closed within {PATIENCE:?}"),
            }
        }
    }

    async fn raw(&mut self, wait: Duration) -> Option<Message> {
        match tokio::time::timeout(wait, self.socket.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(error))) => panic!("WebSocket error: {error}"),
            Ok(None) => Some(Message::Close(None)),
            Err(_) => None,
        }
    }
}

async fn spawn(backend: Backend, cache: &CacheKind) -> TestApp {
    spawn_app_with(backend, |config| use_cache(config, cache)).await
}

/// A server on a Redis of the test's own (to stop and stall), an author, and a client
/// subscribed to `postCreated { title }` as "1".
async fn listening_on_a_redis_of_its_own() -> (RedisServer, TestApp, Uuid, Client) {
    let redis = RedisServer::start().await;
    let app = spawn(Backend::Sqlite, &CacheKind::Redis(redis.url())).await;
    let author = app.create_user("ada@example.com").await;
    let mut client = Client::ready(&app, None).await;
    client.subscribe("1", "subscription { postCreated { title } }", json!({})).await;
    client.assert_quiet().await;
    (redis, app, author, client)
}

const POST_CREATED: &str =
    "subscription($author: UUID) { postCreated(authorId: $author) { id title author { id name } } }";

async fn a_subscriber_receives_each_new_post_with_its_author(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let author = app.create_user("ada@example.com").await;
    app.graphql(
        "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"Ada\" }) { id } }",
        json!({ "id": author }),
    )
    .await;
    let mut client = Client::ready(&app, None).await;
    client.subscribe("1", POST_CREATED, json!({})).await;
    client.assert_quiet().await;

    let first = app.create_post(author, "First").await;
    let second = app.create_post(author, "Second").await;

    for (id, title) in [(first, "First"), (second, "Second")] {
        assert_eq!(
            client.payload("1").await,
            json!({ "data": { "postCreated": { "id": id, "title": title, "author": { "id": author, "name": "Ada" } } } })
        );
    }
    client.assert_quiet().await;
}

async fn an_author_filter_passes_only_that_authors_posts(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let ada = app.create_user("ada@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let mut client = Client::ready(&app, None).await;
    client.subscribe("ada", POST_CREATED, json!({ "author": ada })).await;
    client.assert_quiet().await;

    app.create_post(bob, "Bob's").await;
    let adas = app.create_post(ada, "Ada's").await;

    assert_eq!(client.payload("ada").await["data"]["postCreated"]["id"], json!(adas));
    client.assert_quiet().await;
}

async fn updates_and_deletions_arrive_and_a_deleted_user_ends_their_subscription(
    backend: Backend,
    cache: CacheKind,
) {
    let app = spawn(backend, &cache).await;
    let ada = app.create_user("ada@example.com").await;
    let post = app.create_post(ada, "Draft").await;
    let mut client = Client::ready(&app, None).await;
    client
        .subscribe("user", "subscription($id: UUID!) { userUpdated(id: $id) { name } }", json!({ "id": ada }))
        .await;
    client.subscribe("edits", "subscription { postUpdated { id title } }", json!({})).await;
    client.subscribe("gone", "subscription { postDeleted }", json!({})).await;
    client.assert_quiet().await;

    app.graphql(
        "mutation($id: UUID!) { updatePost(id: $id, input: { title: \"Final\" }) { id } }",
        json!({ "id": post }),
    )
    .await;
    assert_eq!(
        client.payload("edits").await,
        json!({ "data": { "postUpdated": { "id": post, "title": "Final" } } })
    );
    app.graphql(
        "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"Ada L.\" }) { id } }",
        json!({ "id": ada }),
    )
    .await;
    assert_eq!(client.payload("user").await, json!({ "data": { "userUpdated": { "name": "Ada L." } } }));

    app.graphql("mutation($id: UUID!) { deleteUser(id: $id) }", json!({ "id": ada })).await;

    // The user's post went with them, and is announced; then the user's last event.
    assert_eq!(client.payload("gone").await, json!({ "data": { "postDeleted": post } }));
    assert_eq!(client.payload("user").await, json!({ "data": { "userUpdated": null } }));
    assert_eq!(client.next().await, json!({ "id": "user", "type": "complete" }));
    client.assert_quiet().await;
}

async fn subscribers_sending_the_same_document_each_get_every_event_once(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let author = app.create_user("ada@example.com").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = Client::ready(&app, None).await;
        client.subscribe("feed", POST_CREATED, json!({})).await;
        clients.push(client);
    }
    clients[0].subscribe("again", POST_CREATED, json!({})).await;
    clients[0].assert_quiet().await;

    let posts = [app.create_post(author, "One").await, app.create_post(author, "Two").await];

    let mut first = Vec::new();
    for _ in 0..4 {
        let message = clients[0].next().await;
        first.push((
            message["id"].as_str().unwrap().to_owned(),
            message["payload"]["data"]["postCreated"]["id"].clone(),
        ));
    }
    first.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        first,
        [
            ("again".into(), json!(posts[0])),
            ("again".into(), json!(posts[1])),
            ("feed".into(), json!(posts[0])),
            ("feed".into(), json!(posts[1]))
        ]
        .map(|(id, post): (String, Value)| (id, post))
    );
    for client in &mut clients[1..] {
        for post in posts {
            assert_eq!(client.payload("feed").await["data"]["postCreated"]["id"], json!(post));
        }
    }
    for client in &mut clients {
        client.assert_quiet().await;
    }
}

async fn a_burst_of_writes_reaches_every_subscription_whole_and_in_each_authors_order(
    backend: Backend,
    cache: CacheKind,
) {
    let app = spawn(backend, &cache).await;
    let mut authors = Vec::new();
    for n in 0..4 {
        authors.push(app.create_user(&format!("author{n}@example.com")).await);
    }
    // Two documents on one connection, the one on another: the hub answers an event for
    // each document, several events at once, and must still send them in the bus's order.
    let mut both = Client::ready(&app, None).await;
    both.subscribe("with-author", POST_CREATED, json!({})).await;
    both.subscribe("bare", "subscription { postCreated { id } }", json!({})).await;
    let mut bare = Client::ready(&app, None).await;
    bare.subscribe("bare", "subscription { postCreated { id } }", json!({})).await;
    bare.assert_quiet().await;

    // Each author's posts one after another (so their commit order is known), the four
    // authors at once.
    let written: Vec<Vec<Value>> = futures::future::join_all(authors.iter().map(|&author| {
        let app = &app;
        async move {
            let mut posts = Vec::new();
            for n in 0..5 {
                posts.push(json!(app.create_post(author, &format!("Post {n}")).await));
            }
            posts
        }
    }))
    .await;

    let mut received: std::collections::HashMap<&str, Vec<Value>> = std::collections::HashMap::new();
    for _ in 0..40 {
        let message = both.next().await;
        let id = if message["id"] == "bare" { "bare" } else { "with-author" };
        received.entry(id).or_default().push(message["payload"]["data"]["postCreated"]["id"].clone());
    }
    let mut alone = Vec::new();
    for _ in 0..20 {
        alone.push(bare.payload("bare").await["data"]["postCreated"]["id"].clone());
    }
    assert_eq!(received["with-author"], received["bare"], "one order for every subscription");
    assert_eq!(alone, received["bare"], "one order for every subscription");
    for posts in &written {
        let in_order: Vec<&Value> = alone.iter().filter(|id| posts.contains(id)).collect();
        assert_eq!(in_order, posts.iter().collect::<Vec<_>>(), "each author's posts once, in commit order");
    }
    both.assert_quiet().await;
    bare.assert_quiet().await;
}

async fn the_legacy_protocol_carries_the_same_events(backend: Backend, cache: CacheKind) {
    let app = spawn(backend, &cache).await;
    let author = app.create_user("ada@example.com").await;
    let mut client = Client::connect(&app, "graphql-ws").await;
    client.send(json!({ "type": "connection_init", "payload": {} })).await;
    assert_eq!(client.next().await, json!({ "type": "connection_ack" }));
    client.send(json!({ "id": "1", "type": "start", "payload": { "query": "subscription { postCreated { title } }" } })).await;
    client.assert_quiet().await;

    app.create_post(author, "Hello").await;

    assert_eq!(
        client.next().await,
        json!({ "id": "1", "type": "data", "payload": { "data": { "postCreated": { "title": "Hello" } } } })
    );
    client.send(json!({ "id": "1", "type": "stop" })).await;
    app.create_post(author, "Unheard").await;
    client.assert_quiet().await;
    client.send(json!({ "type": "connection_terminate" })).await;
    assert_eq!(client.closed().await.0, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_on_one_instance_reaches_subscribers_on_the_others_once_and_in_order() {
    let Some(redis) = crate::helpers::redis_url() else { return };
    let cache = CacheKind::Redis(redis);
    let a = spawn(Backend::postgres_if_set(), &cache).await;
    let b = a.sibling().await;
    let c = a.sibling().await;
    let author = a.create_user("ada@example.com").await;
    let mut on_b = Client::ready(&b, None).await;
    let mut on_c = Client::ready(&c, None).await;
    on_b.subscribe("1", POST_CREATED, json!({ "author": author })).await;
    on_c.subscribe("1", POST_CREATED, json!({ "author": author })).await;
    on_b.assert_quiet().await;

    let mut written = Vec::new();
    for n in 0..10 {
        written.push(json!(a.create_post(author, &format!("Post {n}")).await));
    }

    for client in [&mut on_b, &mut on_c] {
        let mut received = Vec::new();
        for _ in 0..10 {
            received.push(client.payload("1").await["data"]["postCreated"]["id"].clone());
        }
        assert_eq!(received, written, "every post once, in commit order");
        client.assert_quiet().await;
    }
    drop((on_b, on_c));
    drop(c);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_announced_to_subscribers_and_delivery_resumes() {
    let (mut redis, app, author, mut client) = listening_on_a_redis_of_its_own().await;

    redis.stop();
    let interrupted = client.payload("1").await;
    redis.restart().await;
    let missed = client.payload("1").await;
    app.create_post(author, "After").await;

    assert_eq!(interrupted["errors"][0]["extensions"]["code"], "EVENTS_INTERRUPTED", "{interrupted}");
    assert!(interrupted.get("data").is_none());
    assert_eq!(missed["errors"][0]["extensions"]["code"], "EVENTS_MISSED", "{missed}");
    assert!(missed["errors"][0]["extensions"]["since"].is_string());
    assert!(missed["errors"][0]["extensions"]["until"].is_string());
    assert_eq!(client.payload("1").await, json!({ "data": { "postCreated": { "title": "After" } } }));
}

#[tokio::test]
async fn a_write_while_redis_is_down_still_succeeds_and_reaches_this_instances_subscribers() {
    let (mut redis, app, author, mut client) = listening_on_a_redis_of_its_own().await;
    redis.stop();
    assert_eq!(client.payload("1").await["errors"][0]["extensions"]["code"], "EVENTS_INTERRUPTED");

    app.create_post(author, "Written while Redis is down").await;

    assert_eq!(
        client.payload("1").await,
        json!({ "data": { "postCreated": { "title": "Written while Redis is down" } } })
    );
    assert_eq!(app.rows("posts").await, 1);
}

#[tokio::test]
async fn queries_and_mutations_run_over_the_socket_too() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = Client::ready(&app, Some(&app.admin_token)).await;

    client
        .subscribe("q", "mutation { createUser(input: { email: \"ada@example.com\" }) { email } }", json!({}))
        .await;

    assert_eq!(
        client.payload("q").await,
        json!({ "data": { "createUser": { "email": "ada@example.com" } } })
    );
    assert_eq!(client.next().await, json!({ "id": "q", "type": "complete" }));
    assert_eq!(app.rows("users").await, 1);
}

#[tokio::test]
async fn messages_that_arrive_in_one_write_are_each_answered() {
    // The server reads all three in one go: each must be answered without the socket
    // waking it again (it reads only when woken, or when its last read gave a message).
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = Client::connect(&app, "graphql-transport-ws").await;
    let messages = [
        json!({ "type": "connection_init", "payload": {} }),
        json!({ "id": "a", "type": "subscribe", "payload": { "query": "{ users(first: 1) { totalCount } }" } }),
        json!({ "type": "ping" }),
    ];
    for message in messages {
        client.socket.feed(Message::text(message.to_string())).await.expect("queueing a message");
    }
    client.socket.flush().await.expect("sending the messages in one write");

    assert_eq!(client.next().await, json!({ "type": "connection_ack" }));
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(client.next().await);
    }
    // The pong may overtake the query's answer (operations run side by side).
    let pong = answers.iter().position(|m| *m == json!({ "type": "pong" }));
    assert!(pong.is_some(), "{answers:?}");
    answers.remove(pong.unwrap());
    assert_eq!(
        answers,
        [
            json!({ "id": "a", "type": "next", "payload": { "data": { "users": { "totalCount": 0 } } } }),
            json!({ "id": "a", "type": "complete" }),
        ]
    );
}

#[tokio::test]
async fn the_token_of_connection_init_decides_what_a_subscriber_may_see() {
    let app = spawn_app(Backend::Sqlite).await;
    let ada = app.create_user("ada@example.com").await;
    let query = "subscription($id: UUID!) { userUpdated(id: $id) { email } }";
    let mut anonymous = Client::ready(&app, None).await;
    let own_token = app.token(ada, TokenRole::User);
    let mut herself = Client::ready(&app, Some(&own_token)).await;
    anonymous.subscribe("1", query, json!({ "id": ada })).await;
    herself.subscribe("1", query, json!({ "id": ada })).await;
    anonymous.assert_quiet().await;

    app.graphql(
        "mutation($id: UUID!) { updateUser(id: $id, input: { name: \"Ada\" }) { id } }",
        json!({ "id": ada }),
    )
    .await;

    assert_eq!(
        herself.payload("1").await,
        json!({ "data": { "userUpdated": { "email": "ada@example.com" } } })
    );
    assert_eq!(anonymous.payload("1").await, json!({ "data": { "userUpdated": { "email": null } } }));
}

#[tokio::test]
async fn a_refused_token_closes_the_connection_with_4403() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = Client::connect(&app, "graphql-transport-ws").await;

    client
        .send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer not.a.token" } }))
        .await;

    let (code, reason) = client.closed().await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.starts_with("Forbidden"), "{reason}");

    let mut legacy = Client::connect(&app, "graphql-ws").await;
    legacy
        .send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer not.a.token" } }))
        .await;
    let refusal = legacy.next().await;
    assert_eq!(refusal["type"], "connection_error", "{refusal}");
    assert!(refusal["payload"]["message"].is_string(), "{refusal}");
    assert_eq!(legacy.closed().await.0, 4403);
}

#[tokio::test]
async fn protocol_mistakes_close_with_the_protocols_codes() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.ws_init_timeout_secs = 1).await;
    let subscribe =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { postDeleted }" } });

    let mut silent = Client::connect(&app, "graphql-transport-ws").await;
    assert_eq!(silent.closed().await.0, 4408, "no connection_init in time");

    let mut early = Client::connect(&app, "graphql-transport-ws").await;
    early.send(subscribe.clone()).await;
    assert_eq!(early.closed().await.0, 4401, "subscribe before connection_init");

    let mut twice = Client::ready(&app, None).await;
    twice.send(json!({ "type": "connection_init" })).await;
    assert_eq!(twice.closed().await.0, 4429, "a second connection_init");

    let mut duplicate = Client::ready(&app, None).await;
    duplicate.send(subscribe.clone()).await;
    duplicate.send(subscribe.clone()).await;
    assert_eq!(duplicate.closed().await.0, 4409, "an id already in use");

    let mut garbled = Client::ready(&app, None).await;
    garbled.socket.send(Message::text("{not json")).await.unwrap();
    assert_eq!(garbled.closed().await.0, 4400, "not JSON");

    let mut unknown = Client::ready(&app, None).await;
    unknown.send(json!({ "type": "shout" })).await;
    assert_eq!(unknown.closed().await.0, 4400, "an unknown type");

    let mut no_protocol = Client::connect(&app, "").await;
    assert_eq!(no_protocol.closed().await.0, 4406, "no subprotocol");
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = Client::ready(&app, None).await;

    client.send(json!({ "type": "ping" })).await;

    assert_eq!(client.next().await, json!({ "type": "pong" }));
}

#[tokio::test]
async fn a_bad_subscription_is_an_error_message_and_the_connection_stays_open() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = Client::ready(&app, None).await;
    let deep = format!(
        "subscription {{ postCreated {{ {} id {} }} }}",
        "author { posts { nodes { ".repeat(6),
        "} } } ".repeat(6)
    );

    client.subscribe("unknown", "subscription { postExploded { id } }", json!({})).await;
    let unknown = client.next().await;
    client.subscribe("deep", &deep, json!({})).await;
    let too_deep = client.next().await;
    client.subscribe("vars", "subscription($id: UUID!) { userUpdated(id: $id) { name } }", json!({})).await;
    let missing_variable = client.next().await;
    client.subscribe("two", "subscription { postDeleted a: postCreated { id } }", json!({})).await;
    let two_fields = client.next().await;
    client.subscribe("none", "subscription { postDeleted @skip(if: true) }", json!({})).await;
    let no_field = client.next().await;
    client
        .subscribe("ok", "subscription { ...Gone } fragment Gone on Subscription { postDeleted }", json!({}))
        .await;
    client.assert_quiet().await;

    for (message, id, code) in [
        (&two_fields, "two", "GRAPHQL_VALIDATION_FAILED"),
        (&no_field, "none", "GRAPHQL_VALIDATION_FAILED"),
        (&unknown, "unknown", "GRAPHQL_VALIDATION_FAILED"),
        (&too_deep, "deep", "QUERY_TOO_COMPLEX"),
        (&missing_variable, "vars", "BAD_USER_INPUT"),
    ] {
        assert_eq!(message["type"], "error", "{message}");
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(message["payload"][0]["extensions"]["code"], code, "{message}");
    }
}

#[tokio::test]
async fn subscriptions_past_the_limit_of_a_connection_are_refused_with_a_code() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.ws_max_subscriptions = 2).await;
    let mut client = Client::ready(&app, None).await;

    for id in ["1", "2", "3"] {
        client.subscribe(id, "subscription { postDeleted }", json!({})).await;
    }

    let refused = client.next().await;
    assert_eq!(refused["id"], "3");
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS");
    // One ended, another may begin.
    client.send(json!({ "id": "1", "type": "complete" })).await;
    client.subscribe("4", "subscription { postDeleted }", json!({})).await;
    client.assert_quiet().await;
}

#[tokio::test]
async fn connections_past_the_instances_limit_are_refused_with_503() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.ws_max_connections = 1).await;
    let _first = Client::ready(&app, None).await;

    let second = Client::try_connect(&app, "graphql-transport-ws", &[]).await;

    match second {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a 503, got {:?}", other.map(|_| "a connection")),
    }
    assert!(app.metrics().await.contains("websocket_connections_refused_total{reason=\"limit\"} 1"));
}

#[tokio::test]
async fn a_page_from_another_site_may_not_open_a_socket() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.cors_allowed_origins =
            Some(api::config::AllowedOrigins::Exact(vec!["https://app.example.com".into()]));
    })
    .await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let own = format!("http://{host}");

    let cross_site =
        Client::try_connect(&app, "graphql-transport-ws", &[("origin", "https://evil.example")]).await;
    let allowed =
        Client::try_connect(&app, "graphql-transport-ws", &[("origin", "https://app.example.com")]).await;
    let same_origin = Client::try_connect(&app, "graphql-transport-ws", &[("origin", &own)]).await;

    match cross_site {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected a 403, got {:?}", other.map(|_| "a connection")),
    }
    assert!(allowed.is_ok());
    assert!(same_origin.is_ok());
}

#[tokio::test]
async fn on_shutdown_new_sockets_are_refused_and_every_open_one_is_closed_with_going_away() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.shutdown_delay_secs = 1).await;
    let mut client = Client::ready(&app, None).await;
    client.subscribe("1", "subscription { postDeleted }", json!({})).await;
    client.assert_quiet().await;
    let late = app.address.clone();

    let stopped = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let url = format!("{}/graphql", late.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a 503 while draining, got {:?}", other.map(|_| "a connection")),
    }
    assert_eq!(client.closed().await.0, 1001);
    stopped.await.unwrap().expect("a clean stop");
}

#[tokio::test]
async fn metrics_count_sockets_subscriptions_and_events() {
    let app = spawn_app(Backend::Sqlite).await;
    let author = app.create_user("ada@example.com").await;
    let mut client = Client::ready(&app, None).await;
    client.subscribe("1", "subscription { postCreated { id } }", json!({})).await;
    client.assert_quiet().await;
    let before = app.metrics().await;

    let post = app.create_post(author, "Counted").await;
    assert_eq!(client.payload("1").await["data"]["postCreated"]["id"], json!(post));

    let after = app.metrics().await;
    let delta = |name: &str| {
        crate::helpers::counter_value(&after, name) - crate::helpers::counter_value(&before, name)
    };
    assert!(delta("events_published_total") >= 1);
    assert!(delta("events_delivered_total") >= 1);
    assert!(
        after.lines().any(|line| line.starts_with("websocket_connections_open ") && !line.ends_with(" 0")),
        "{after}"
    );
    assert!(
        after.lines().any(|line| line.starts_with("subscriptions_active ") && !line.ends_with(" 0")),
        "{after}"
    );
}

#[tokio::test]
async fn a_subscription_over_http_is_refused_and_points_to_the_socket() {
    let app = spawn_app(Backend::Sqlite).await;

    let body = app.graphql("subscription { postDeleted }", json!({})).await;

    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("WebSocket"), "{body}");
}

#[tokio::test]
async fn a_subscriber_too_slow_to_read_is_closed_and_the_others_get_every_event() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.ws_send_buffer = 2).await;
    let author = app.create_user("ada@example.com").await;
    // Twenty copies of a 100 kB content per event: a client that reads nothing fills the
    // socket's buffers within a few events.
    let aliases: Vec<String> = (0..20).map(|n| format!("c{n}: content")).collect();
    let heavy = format!("subscription {{ postCreated {{ {} }} }}", aliases.join(" "));
    let mut slow = Client::ready(&app, None).await;
    slow.subscribe("1", &heavy, json!({})).await;
    slow.assert_quiet().await;
    let mut reader = Client::ready(&app, None).await;
    reader.subscribe("1", "subscription { postCreated { id } }", json!({})).await;
    reader.assert_quiet().await;

    let content = "x".repeat(100_000);
    let mut written = Vec::new();
    for n in 0..15 {
        let body = app
            .graphql(
                "mutation($a: UUID!, $t: String!, $c: String) { createPost(input: { authorId: $a, title: $t, content: $c }) { id } }",
                json!({ "a": author, "t": format!("Post {n}"), "c": content }),
            )
            .await;
        written.push(body["data"]["createPost"]["id"].clone());
    }

    for id in &written {
        assert_eq!(&reader.payload("1").await["data"]["postCreated"]["id"], id);
    }
    let close = loop {
        match tokio::time::timeout(PATIENCE, slow.socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|frame| u16::from(frame.code)),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => panic!("the slow client was not closed cleanly: {error}"),
            Ok(None) => panic!("the slow client's socket ended without a close frame"),
            Err(_) => panic!("the slow client was not closed within {PATIENCE:?}"),
        }
    };
    assert_eq!(close, Some(1013));
    let metrics = app.metrics().await;
    assert!(crate::helpers::counter_value(&metrics, "events_dropped_total") >= 1, "{metrics}");
    assert!(metrics.contains("websocket_connections_closed_total{reason=\"slow\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_client_that_answers_nothing_is_dropped_and_one_that_answers_pings_is_kept() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.ws_keepalive_secs = 1).await;
    let mut silent = Client::ready(&app, None).await;
    let mut alive = Client::ready(&app, None).await;

    // Reading answers the server's WebSocket pings (the client library does it); the
    // silent client reads nothing for four intervals.
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < until {
        alive.assert_quiet().await;
    }

    let metrics = app.metrics().await;
    assert!(metrics.contains("websocket_connections_closed_total{reason=\"unresponsive\"} 1"), "{metrics}");
    alive.send(json!({ "type": "ping" })).await;
    assert_eq!(alive.next().await, json!({ "type": "pong" }));
    // Whatever was sent before, the silent client's socket then ends: a close frame if it
    // ever reads again, or the connection's end.
    loop {
        match tokio::time::timeout(PATIENCE, silent.socket.next()).await {
            Ok(Some(Ok(Message::Text(_) | Message::Ping(_)))) => continue,
            Ok(_) => break,
            Err(_) => panic!("the silent client's socket is still open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_the_first_event_of_each_instance_reaches_the_others() {
    let mut redis = RedisServer::start().await;
    let cache = CacheKind::Redis(redis.url());
    let a = spawn(Backend::Sqlite, &cache).await;
    let b = a.sibling().await;
    let author = a.create_user("ada@example.com").await;
    let mut on_a = Client::ready(&a, None).await;
    let mut on_b = Client::ready(&b, None).await;
    on_a.subscribe("1", "subscription { postCreated { title } }", json!({})).await;
    on_b.subscribe("1", "subscription { postCreated { title } }", json!({})).await;
    on_b.assert_quiet().await;
    // Each instance has published before, so its publishing connection is open.
    a.create_post(author, "Before, through A").await;
    b.create_post(author, "Before, through B").await;
    for client in [&mut on_a, &mut on_b] {
        for _ in 0..2 {
            client.payload("1").await;
        }
    }

    redis.stop();
    redis.restart().await;
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(client.payload("1").await["errors"][0]["extensions"]["code"], "EVENTS_INTERRUPTED");
        assert_eq!(client.payload("1").await["errors"][0]["extensions"]["code"], "EVENTS_MISSED");
    }
    a.create_post(author, "After, through A").await;
    b.create_post(author, "After, through B").await;

    for client in [&mut on_a, &mut on_b] {
        for title in ["After, through A", "After, through B"] {
            assert_eq!(client.payload("1").await, json!({ "data": { "postCreated": { "title": title } } }));
        }
        client.assert_quiet().await;
    }
    drop((on_a, on_b));
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_publish_timed_out_but_reached_redis_is_delivered_once() {
    let (redis, app, author, mut client) = listening_on_a_redis_of_its_own().await;

    // Redis stalls for longer than a publish may wait, then takes the `PUBLISH` anyway.
    let url = redis.url();
    let stall = tokio::spawn(async move {
        let mut connection = crate::helpers::redis_connection(&url).await;
        // The client gives up waiting for the answer; Redis sleeps all the same.
        let _: Result<(), _> =
            ::redis::cmd("DEBUG").arg("SLEEP").arg("0.6").query_async(&mut connection).await;
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.create_post(author, "Stalled").await;
    stall.await.unwrap();

    assert_eq!(client.payload("1").await, json!({ "data": { "postCreated": { "title": "Stalled" } } }));
    client.assert_quiet().await;
    client.assert_quiet().await;
    assert!(crate::helpers::counter_value(&app.metrics().await, "events_publish_errors_total") >= 1);
}

#[tokio::test]
async fn a_client_that_closes_gets_the_closing_handshake_back() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = Client::ready(&app, None).await;
    client.subscribe("1", "subscription { postDeleted }", json!({})).await;
    client.assert_quiet().await;

    let frame = tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    };
    client.socket.send(Message::Close(Some(frame))).await.unwrap();

    assert_eq!(client.closed().await.0, 1000);
}
