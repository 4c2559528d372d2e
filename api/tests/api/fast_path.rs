//! Every selection shape takes the one path objects resolve on: fragments, inline
//! fragments, `__typename` and aliases answer byte for byte as the same fields written out
//! do, and what a field declares (a guard, arguments, a resolver of its own) holds
//! whichever way it is selected. With an extension registered, fields go through its
//! per-field hook instead, and the answer is the same to the byte.

use std::sync::{Arc, Mutex};

use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, Guard, Object, Request, Result, Schema, SimpleObject,
    Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
};
use serde_json::json;

use crate::helpers::{Backend, TestApp, id_at, spawn_app};

crate::backend_tests!(
    fragments_typename_and_aliases_answer_byte_for_byte_as_fields_written_out,
    keys_come_in_the_order_the_selection_asks_for,
    a_post_s_author_answers_the_same_reached_through_them_or_looked_up,
);

/// The raw body of a POST, as the client reads it.
async fn raw(app: &TestApp, query: &str) -> String {
    let response = app.post_graphql(&json!({ "query": query })).await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("a text body")
}

async fn fragments_typename_and_aliases_answer_byte_for_byte_as_fields_written_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let named = app
        .graphql(
            r#"mutation { createUser(input: { email: "ada@example.com", name: "Ada" }) { id } }"#,
            json!({}),
        )
        .await;
    let ada = id_at(&named, "/data/createUser/id");
    let bob = app.create_user("bob@example.com").await;
    app.create_post(ada, "untold").await;
    app.graphql(
        r#"mutation($a: UUID!) { createPost(input: { authorId: $a, title: "told", content: "a story" }) { id } }"#,
        json!({ "a": ada }),
    )
    .await;
    app.create_post(bob, "bob's").await;
    let user = "__typename id email name createdAt updatedAt";
    let post = "__typename id title content createdAt updatedAt";
    let written_out = format!(
        "{{ users(first: 5) {{ __typename nodes {{ {user} posts(first: 5) {{ __typename totalCount nodes {{ {post} author {{ {user} }} }} }} }} }}
           posts(first: 5) {{ nodes {{ {post} author {{ {user} }} }} }} }}"
    );
    let named_fragments = "query Feed { users(first: 5) { __typename nodes { ...UserCard posts(first: 5) { __typename totalCount nodes { ...PostCard } } } }
           posts(first: 5) { nodes { ...PostCard } } }
         fragment UserCard on User { __typename id email name createdAt updatedAt }
         fragment PostCard on Post { __typename id title content ...Dates author { ...UserCard } }
         fragment Dates on Post { createdAt updatedAt }";
    let inline_fragments = format!(
        "{{ users(first: 5) {{ __typename nodes {{ ... on User {{ {user} }} ... {{ posts(first: 5) {{ __typename ... {{ totalCount }} nodes {{ ... on Post {{ {post} }}
           author {{ ... on User {{ __typename id }} ... on User {{ email name createdAt updatedAt }} }} }} }} }} }} }}
           ... on Query {{ posts(first: 5) {{ nodes {{ ... on Post {{ {post} }} author {{ ... on User {{ {user} }} }} }} }} }} }}"
    );

    // Nine fragments, more than a document usually holds, nested up to five deep within
    // one object, with fields after each spread (some named twice, merged into one key).
    let nested_fragments = "{ users(first: 5) { __typename nodes { ...U0 posts(first: 5) { __typename totalCount nodes { ...P0 } } } }
           posts(first: 5) { nodes { ...P0 } } }
         fragment U0 on User { __typename ...U1 updatedAt }
         fragment U1 on User { id ...U2 createdAt }
         fragment U2 on User { email ...U3 name }
         fragment U3 on User { email ...U4 }
         fragment U4 on User { id email }
         fragment P0 on Post { __typename ...P1 author { ...U0 } }
         fragment P1 on Post { id ...P2 updatedAt }
         fragment P2 on Post { title ...P3 createdAt }
         fragment P3 on Post { content }";

    let expected = raw(&app, &written_out).await;
    let through_named = raw(&app, named_fragments).await;
    let through_inline = raw(&app, &inline_fragments).await;
    let through_nested = raw(&app, nested_fragments).await;

    assert!(!expected.contains("\"errors\""), "{expected}");
    assert_eq!(through_named, expected);
    assert_eq!(through_inline, expected);
    assert_eq!(through_nested, expected);
    let body: serde_json::Value = serde_json::from_str(&expected).expect("JSON");
    let users = body["data"]["users"]["nodes"].as_array().expect("users");
    assert_eq!(users.len(), 2);
    assert_eq!((users[0]["name"].clone(), users[1]["name"].clone()), (json!("Ada"), json!(null)));
    let ada_posts = users[0]["posts"]["nodes"].as_array().expect("posts");
    assert_eq!(ada_posts.len(), 2);
    assert_eq!(users[0]["posts"]["totalCount"], 2);
    assert_eq!(
        (ada_posts[0]["content"].clone(), ada_posts[1]["content"].clone()),
        (json!("a story"), json!(null))
    );
    assert_eq!(ada_posts[0]["author"]["email"], "ada@example.com");
    assert_eq!(ada_posts[0]["__typename"], "Post");
    assert_eq!(body["data"]["users"]["__typename"], "UserConnection");
    assert_eq!(body["data"]["posts"]["nodes"].as_array().expect("posts").len(), 3);
}

async fn a_post_s_author_answers_the_same_reached_through_them_or_looked_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.create_user("ada@example.com").await;
    app.create_post(ada, "first").await;
    app.create_post(ada, "second").await;
    let author = "author { __typename id email ...Name posts(first: 1) { nodes { title } } }";
    let name = "fragment Name on User { name }";

    // Under the user, each post's author is at hand; its own posts still wait for a load.
    let through_them = raw(
        &app,
        &format!("{{ users(first: 1) {{ nodes {{ posts(first: 2) {{ nodes {{ {author} }} }} }} }} }} {name}"),
    )
    .await;
    let looked_up = raw(&app, &format!("{{ posts(first: 2) {{ nodes {{ {author} }} }} }} {name}")).await;

    let through_them: serde_json::Value = serde_json::from_str(&through_them).expect("JSON");
    let looked_up: serde_json::Value = serde_json::from_str(&looked_up).expect("JSON");
    assert!(
        through_them.get("errors").is_none() && looked_up.get("errors").is_none(),
        "{through_them} {looked_up}"
    );
    let posts = &through_them["data"]["users"]["nodes"][0]["posts"]["nodes"];
    assert_eq!(posts.as_array().map(Vec::len), Some(2), "{through_them}");
    assert_eq!(posts, &looked_up["data"]["posts"]["nodes"], "{through_them}");
    assert_eq!(
        posts[1]["author"],
        json!({ "__typename": "User", "id": ada, "email": "ada@example.com", "name": null, "posts": { "nodes": [{ "title": "second" }] } })
    );
}

async fn keys_come_in_the_order_the_selection_asks_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.create_user("ada@example.com").await;
    app.create_post(ada, "first").await;

    let body = raw(
        &app,
        "{ posts(first: 1) { nodes { title writer: author { email ... on User { __typename } id } ...T } } }
         fragment T on Post { kind: __typename title }",
    )
    .await;

    assert_eq!(
        body,
        format!(
            r#"{{"data":{{"posts":{{"nodes":[{{"title":"first","writer":{{"email":"ada@example.com","__typename":"User","id":"{ada}"}},"kind":"Post"}}]}}}}}}"#
        )
    );
}

// A schema of its own, with what Quill's types do not all have yet: a guard, an argument
// on an object's field, a resolver that waits, fields that fail.

/// Refuses every read of the field it guards.
struct Refuse;

impl Guard for Refuse {
    async fn check(&self, _ctx: &Context<'_>) -> Result<()> {
        Err("refused by the guard".into())
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
struct Item {
    id: i32,
    #[graphql(guard = "Refuse")]
    secret: Option<String>,
    #[graphql(deprecation = "use `id`")]
    old_id: i32,
    shade: Shade,
    vault: Option<Vault>,
    /// Objects the item holds, answered where they stand when their fields are.
    parts: Vec<Part>,
}

#[derive(SimpleObject)]
struct Part {
    n: i32,
    label: String,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
enum Shade {
    Light,
    Dark,
}

/// Guarded as a whole: each of its fields is refused.
#[derive(SimpleObject)]
#[graphql(guard = "Refuse")]
struct Vault {
    code: i32,
}

#[ComplexObject]
impl Item {
    async fn scaled(&self, by: i32) -> i32 {
        self.id * by
    }

    async fn times(&self, #[graphql(default = 2)] by: i32) -> i32 {
        self.id * by
    }

    /// Waits a turn before answering, as a field behind a loader does.
    async fn later(&self) -> i32 {
        tokio::task::yield_now().await;
        self.id + 100
    }

    async fn fails(&self) -> Result<Option<i32>> {
        Err("a nullable field failed".into())
    }

    async fn must(&self) -> Result<i32> {
        Err("a non-null field failed".into())
    }

    /// Answers once as many callers as the schema's barrier counts are waiting on it.
    async fn meet(&self, ctx: &Context<'_>) -> i32 {
        ctx.data_unchecked::<Arc<tokio::sync::Barrier>>().wait().await;
        self.id
    }

    async fn next(&self) -> Option<Item> {
        (self.id < 3).then(|| item(self.id + 1))
    }

    /// A plain `fn`: nothing waits, so it is answered where it is met.
    fn doubled(&self) -> i32 {
        self.id * 2
    }

    fn plus(&self, by: i32) -> i32 {
        self.id + by
    }

    #[graphql(guard = "Refuse")]
    fn hidden(&self) -> Option<i32> {
        Some(self.id)
    }

    fn broken(&self) -> Result<Option<i32>> {
        Err("a plain resolver failed".into())
    }

    /// A plain `fn` whose value is an object, counting its calls in the request's data.
    fn twin(&self, ctx: &Context<'_>) -> Option<Vault> {
        ctx.data_unchecked::<Arc<Calls>>().0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(Vault { code: self.id })
    }

    /// The item after this one: at hand for odd ids (`after_at_hand`), as a post's author
    /// is when the post was reached through them, and looked up, a turn later, for even ones.
    #[graphql(known = "Self::after_at_hand")]
    async fn after(&self) -> Option<Item> {
        tokio::task::yield_now().await;
        (self.id < 3).then(|| item(self.id + 1))
    }
}

impl Item {
    fn after_at_hand(&self) -> Option<Option<Item>> {
        (self.id % 2 == 1).then(|| (self.id < 3).then(|| item(self.id + 1)))
    }
}

/// How many times a resolver ran in a request.
#[derive(Default)]
struct Calls(std::sync::atomic::AtomicUsize);

fn item(id: i32) -> Item {
    let shade = if id % 2 == 0 { Shade::Dark } else { Shade::Light };
    let parts = (1..=2).map(|n| Part { n: id * 10 + n, label: format!("part {n}") }).collect();
    Item {
        id,
        secret: Some(format!("secret {id}")),
        old_id: id,
        shade,
        vault: Some(Vault { code: id }),
        parts,
    }
}

struct Query;

#[Object]
impl Query {
    async fn item(&self) -> Item {
        item(1)
    }

    async fn items(&self) -> Vec<Option<Item>> {
        (1..=3).map(|id| Some(item(id))).collect()
    }
}

struct Mutation;

#[Object]
impl Mutation {
    async fn bump(&self, to: i32) -> Item {
        item(to)
    }

    async fn boom(&self) -> Result<i32> {
        Err("boom".into())
    }
}

/// Records the name of every field its per-field hook sees.
#[derive(Clone, Default)]
struct SeenFields(Arc<Mutex<Vec<String>>>);

impl ExtensionFactory for SeenFields {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for SeenFields {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> async_graphql::ServerResult<Option<async_graphql::Value>> {
        self.0.lock().expect("not poisoned").push(info.name.to_owned());
        next.run(ctx, info).await
    }
}

type ItemSchema = Schema<Query, Mutation, EmptySubscription>;

fn schema(seen: Option<SeenFields>) -> ItemSchema {
    let builder = Schema::build(Query, Mutation, EmptySubscription);
    match seen {
        Some(seen) => builder.extension(seen).finish(),
        None => builder.finish(),
    }
}

async fn answer(schema: &ItemSchema, query: &str) -> String {
    serde_json::to_string(&schema.execute(query).await).expect("a response serialises")
}

const SHAPES: [&str; 15] = [
    "{ item { id secret } }",
    "{ item { ...F } } fragment F on Item { __typename secret id }",
    "{ item { ... on Item { hidden: secret } ... { id } } }",
    "{ item { a: scaled(by: 3) b: scaled(by: 5) ...S } } fragment S on Item { c: scaled(by: 7) oldId }",
    "{ items { later id next { later next { id later } } } }",
    "{ items { id fails later } }",
    "{ items { id must } item { next { id must } } }",
    "{ item { id next { id } ... on Item { next { later } } next { __typename } } }",
    "{ items { shade ... on Item { s: shade } vault { code } } }",
    "{ items { doubled plus(by: 10) hidden broken ...D } } fragment D on Item { d: doubled }",
    "{ item { id doubled shade __typename } items { id oldId next { id doubled } } }",
    "{ items { id doubled later shade s: later ... on Item { id d: doubled } } }",
    "{ items { id after { id doubled } } }",
    "{ item { after { id later } parts { n label } } items { parts { n ...P } after { after { id shade } } } }
     fragment P on Part { label __typename }",
    "{ items { after { vault { code } parts { n } } } }",
];

#[tokio::test]
async fn a_guard_holds_however_its_field_is_selected() {
    let schema = schema(None);

    for query in &SHAPES[..3] {
        let body = answer(&schema, query).await;

        assert!(!body.contains("secret 1"), "{query}: {body}");
        assert!(body.contains("refused by the guard"), "{query}: {body}");
    }
}

#[tokio::test]
async fn an_object_whose_fields_are_all_known_at_once_is_answered_whole_wherever_it_stands() {
    let schema = schema(None);

    let whole = answer(&schema, SHAPES[10]).await;
    let mixed = answer(&schema, SHAPES[11]).await;
    let skipped =
        answer(&schema, "{ item { id @skip(if: true) } other: item { doubled @include(if: false) } }").await;

    assert_eq!(
        whole,
        concat!(
            r#"{"data":{"item":{"id":1,"doubled":2,"shade":"LIGHT","__typename":"Item"},"items":["#,
            r#"{"id":1,"oldId":1,"next":{"id":2,"doubled":4}},{"id":2,"oldId":2,"next":{"id":3,"doubled":6}},"#,
            r#"{"id":3,"oldId":3,"next":null}]}}"#
        )
    );
    // Fields known at once before and after one that waits keep their places.
    assert_eq!(
        mixed,
        concat!(
            r#"{"data":{"items":[{"id":1,"doubled":2,"later":101,"shade":"LIGHT","s":101,"d":2},"#,
            r#"{"id":2,"doubled":4,"later":102,"shade":"DARK","s":102,"d":4},"#,
            r#"{"id":3,"doubled":6,"later":103,"shade":"LIGHT","s":103,"d":6}]}}"#
        )
    );
    assert_eq!(skipped, r#"{"data":{"item":{},"other":{}}}"#);
}

#[tokio::test]
async fn a_field_whose_value_is_at_hand_is_answered_with_it_and_waits_when_its_selection_does() {
    let schema = schema(None);

    let at_hand = answer(&schema, SHAPES[12]).await;
    let waiting = answer(&schema, "{ item { after { id later } } }").await;

    // Item 1's next is at hand, item 2's is looked up, item 3 has none: the list is answered
    // where it stands up to item 2 and resolved from there, in order.
    assert_eq!(
        at_hand,
        r#"{"data":{"items":[{"id":1,"after":{"id":2,"doubled":4}},{"id":2,"after":{"id":3,"doubled":6}},{"id":3,"after":null}]}}"#
    );
    assert_eq!(waiting, r#"{"data":{"item":{"after":{"id":2,"later":102}}}}"#);
}

#[tokio::test]
async fn a_guard_on_a_whole_object_holds_for_each_of_its_plain_fields() {
    let body: serde_json::Value =
        serde_json::from_str(&answer(&schema(None), SHAPES[8]).await).expect("JSON");

    assert_eq!(body["data"]["items"][1], json!({ "shade": "DARK", "s": "DARK", "vault": null }));
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 3, "{body}");
    assert!(errors.iter().all(|e| e["message"] == "refused by the guard"), "{body}");
}

#[tokio::test]
async fn a_plain_fn_resolver_keeps_its_argument_its_guard_and_its_error() {
    let body: serde_json::Value =
        serde_json::from_str(&answer(&schema(None), SHAPES[9]).await).expect("JSON");

    assert_eq!(
        body["data"]["items"][2],
        json!({ "doubled": 6, "plus": 13, "hidden": null, "broken": null, "d": 6 })
    );
    let messages: Vec<_> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["message"].as_str().expect("a message"))
        .collect();
    assert_eq!(messages, ["refused by the guard", "a plain resolver failed"].repeat(3), "{body}");
}

#[tokio::test]
async fn a_plain_fn_resolver_of_an_object_runs_once_for_each_field() {
    let calls = Arc::new(Calls::default());

    let response = schema(None)
        .execute(
            Request::new("{ items { twin { __typename } again: twin { __typename } } }").data(calls.clone()),
        )
        .await;

    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let data = serde_json::to_value(&response.data).expect("JSON");
    assert_eq!(
        data["items"][0],
        json!({ "twin": { "__typename": "Vault" }, "again": { "__typename": "Vault" } })
    );
    assert_eq!(calls.0.load(std::sync::atomic::Ordering::Relaxed), 6, "three items, two fields each");
}

#[tokio::test]
async fn arguments_and_resolvers_of_their_own_hold_through_fragments_and_aliases() {
    let body = answer(&schema(None), SHAPES[3]).await;

    assert_eq!(body, r#"{"data":{"item":{"a":3,"b":5,"c":7,"oldId":1}}}"#);
}

#[tokio::test]
async fn field_errors_null_the_field_or_its_parent() {
    let schema = schema(None);

    let nullable: serde_json::Value = serde_json::from_str(&answer(&schema, SHAPES[5]).await).expect("JSON");
    let non_null: serde_json::Value = serde_json::from_str(&answer(&schema, SHAPES[6]).await).expect("JSON");

    assert_eq!(nullable["data"]["items"][2], json!({ "id": 3, "fails": null, "later": 103 }));
    assert_eq!(nullable["errors"].as_array().expect("errors").len(), 3);
    assert_eq!(non_null["data"], json!({ "items": [null, null, null], "item": { "next": null } }));
    assert_eq!(non_null["errors"].as_array().expect("errors").len(), 4);
}

#[tokio::test]
async fn every_shape_answers_the_same_bytes_with_and_without_per_field_hooks() {
    let in_place = schema(None);
    let seen = SeenFields::default();
    let hooked = schema(Some(seen.clone()));
    let mutations = [
        "mutation { a: bump(to: 2) { id } b: bump(to: 3) { later } }",
        "mutation { a: bump(to: 1) { id } boom c: bump(to: 2) { id } }",
    ];

    for query in SHAPES.iter().chain(&mutations) {
        let expected = answer(&in_place, query).await;
        let through_hooks = answer(&hooked, query).await;

        assert_eq!(through_hooks, expected, "{query}");
    }
    // A serial mutation stops at the failed non-null field: `c` never ran.
    assert!(answer(&in_place, mutations[1]).await.starts_with(r#"{"data":null"#));
    assert!(!seen.0.lock().expect("not poisoned").is_empty());
}

#[tokio::test]
async fn an_extension_sees_every_field_fragments_included() {
    let seen = SeenFields::default();

    let body = answer(&schema(Some(seen.clone())), SHAPES[3]).await;

    assert_eq!(body, r#"{"data":{"item":{"a":3,"b":5,"c":7,"oldId":1}}}"#);
    let mut names = seen.0.lock().expect("not poisoned").clone();
    names.sort();
    assert_eq!(names, ["item", "oldId", "scaled", "scaled", "scaled"]);
}

#[tokio::test]
async fn fragments_answer_as_collected_through_directives_variables_and_repeats() {
    let query = "query($yes: Boolean!, $no: Boolean!) { item { ...A ...B @include(if: $no)
                   ... @include(if: $yes) { oldId } ...A ... on Item @skip(if: $yes) { scaled(by: 9) }
                   next { ...A } } }
                 fragment A on Item { id a: scaled(by: 2) } fragment B on Item { secret }";
    let variables = Variables::from_json(json!({ "yes": true, "no": false }));
    let hooked = schema(Some(SeenFields::default()));

    for schema in [schema(None), hooked] {
        let response = schema.execute(Request::new(query).variables(variables.clone())).await;
        let body = serde_json::to_string(&response).expect("a response serialises");

        assert_eq!(body, r#"{"data":{"item":{"id":1,"a":2,"oldId":1,"next":{"id":2,"a":4}}}}"#);
    }
}

#[tokio::test]
async fn an_error_inside_a_fragment_points_at_the_field_in_the_fragment() {
    let body = answer(&schema(None), "{ items { ...F } } fragment F on Item { id fails }").await;

    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["data"]["items"][1], json!({ "id": 2, "fails": null }));
    assert_eq!(
        body["errors"][1],
        json!({ "message": "a nullable field failed", "locations": [{ "line": 1, "column": 44 }], "path": ["items", 1, "fails"] })
    );
}

#[tokio::test]
async fn a_mutation_spread_from_fragments_runs_its_fields_in_order() {
    let query = "mutation { ...M ... { c: bump(to: 4) { id } } d: bump(to: 5) { ... on Item { id } } }
                 fragment M on Mutation { a: bump(to: 2) { id } b: bump(to: 3) { ...I } } fragment I on Item { id }";

    let body = answer(&schema(None), query).await;

    assert_eq!(body, r#"{"data":{"a":{"id":2},"b":{"id":3},"c":{"id":4},"d":{"id":5}}}"#);
}

// Validation reads the document, not the variables ("Validation" in the specification): a
// nullable variable may stand for a non-null argument that has a default, and a `null` it
// carries is refused when the argument is coerced, as a field error.
#[tokio::test]
async fn a_null_variable_for_a_non_null_argument_is_a_field_error() {
    let query = "query($by: Int) { items { id times(by: $by) } }";
    let schema = schema(None);

    let given = schema.execute(Request::new(query).variables(Variables::from_json(json!({ "by": 3 })))).await;
    let null =
        schema.execute(Request::new(query).variables(Variables::from_json(json!({ "by": null })))).await;

    assert_eq!(
        serde_json::to_value(&given.data).expect("JSON"),
        json!({ "items": [
        { "id": 1, "times": 3 }, { "id": 2, "times": 6 }, { "id": 3, "times": 9 }
    ] })
    );
    assert_eq!(serde_json::to_value(&null.data).expect("JSON"), json!({ "items": [null, null, null] }));
    let paths: Vec<_> =
        null.errors.iter().map(|error| serde_json::to_value(&error.path).expect("JSON")).collect();
    assert_eq!(
        paths,
        [json!(["items", 0, "times"]), json!(["items", 1, "times"]), json!(["items", 2, "times"])]
    );
}

#[tokio::test]
async fn fields_that_wait_wait_side_by_side_however_many_there_are() {
    for meetings in [2, 6] {
        let schema = Schema::build(Query, Mutation, EmptySubscription)
            .data(Arc::new(tokio::sync::Barrier::new(meetings)))
            .finish();
        let fields: Vec<String> = (0..meetings).map(|i| format!("m{i}: meet")).collect();
        let query = format!("{{ item {{ id {} }} }}", fields.join(" "));

        let body = tokio::time::timeout(std::time::Duration::from_secs(5), answer(&schema, &query))
            .await
            .unwrap_or_else(|_| panic!("{meetings} fields never met: they did not wait side by side"));

        let expected: Vec<String> = (0..meetings).map(|i| format!(r#""m{i}":1"#)).collect();
        assert_eq!(body, format!(r#"{{"data":{{"item":{{"id":1,{}}}}}}}"#, expected.join(",")));
    }
}
