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
