//! The committed `schema.graphql` is what front-end builds generate clients from: it must
//! be exactly what the server serves.

#[test]
fn the_committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let committed = std::fs::read_to_string(path).expect("reading schema.graphql");

    let current = api::graphql::sdl();

    assert!(
        committed == current,
        "schema.graphql is out of date: run `cargo run -p api -- export-schema > schema.graphql`"
    );
}

#[test]
fn the_schema_has_the_roots_and_types_of_the_contract() {
    let sdl = api::graphql::sdl();
    for needle in [
        "type Query",
        "user(id: UUID!): User",
        "userByEmail(email: String!): User",
        "users(first: Int, after: String, last: Int, before: String): UserConnection!",
        "posts(first: Int, after: String, last: Int, before: String, authorId: UUID): PostConnection!",
        "type Mutation",
        "createUser(input: CreateUserInput!): User!",
        "deletePost(id: UUID!): UUID!",
        "totalCount: Int!",
    ] {
        assert!(sdl.contains(needle), "{needle:?} missing from the schema");
    }
}

/// Code generators map scalars by what the SDL says of them; live introspection reports
/// `specifiedByURL`, and the committed file must say the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scalars_say_what_they_are_specified_by_as_introspection_does() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let sdl = api::graphql::sdl();

    for (scalar, url) in [
        ("UUID", "http://tools.ietf.org/html/rfc4122"),
        ("DateTime", "https://datatracker.ietf.org/doc/html/rfc3339"),
    ] {
        let live = app
            .graphql(
                "query($name: String!) { __type(name: $name) { specifiedByURL } }",
                serde_json::json!({ "name": scalar }),
            )
            .await;
        assert_eq!(live["data"]["__type"]["specifiedByURL"], url, "{live}");
        assert!(sdl.contains(&format!("scalar {scalar} @specifiedBy(url: \"{url}\")")), "{scalar} in\n{sdl}");
    }
}
