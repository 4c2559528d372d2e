//! Builds the executable schema and names what every resolver can reach.

use async_graphql::{Context, EmptySubscription, PathSegment, Request, Response, Schema};
use sea_orm::DatabaseConnection;

use super::{
    codes,
    limits::{self, Limits},
    loader::Loaders,
    mutation::MutationRoot,
    query::QueryRoot,
};
use crate::cache::UserCache;

pub type QuillSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// What the resolvers share for the life of the server.
#[derive(Clone)]
pub struct Services {
    /// The connection pool; cheap to clone.
    pub db: DatabaseConnection,
    /// Read through by the user loaders; invalidated by writes after they commit.
    pub cache: UserCache,
}

/// The schema with its services attached, ready to execute requests under `limits`.
pub fn build_schema(services: Services, limits: &Limits) -> QuillSchema {
    let mut builder =
        schema_builder().data(services).limit_depth(limits.max_depth).limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    // With `@specifiedBy` on UUID and DateTime, as introspection reports them, so code
    // generators reading the file see what they would see live.
    schema_builder().finish().sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

fn schema_builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot::default(), MutationRoot::default(), EmptySubscription)
}

/// Executes one request: parse and count-check it, run it, code every error.
pub async fn execute(schema: &QuillSchema, limits: &Limits, mut request: Request) -> Response {
    let mut response = match limits::prepare(&mut request, limits) {
        Ok(()) => schema.execute(request).await,
        Err(error) => Response::from_errors(vec![error]),
    };
    for error in &mut response.errors {
        if codes::is_depth_error(error) {
            *error = limits::too_deep(limits);
        }
    }
    codes::assign(&mut response);
    // Fields resolve side by side, so errors are recorded in the order they happen; sorted
    // by where they point, identical requests get byte-identical answers.
    response.errors.sort_by(|a, b| {
        let at = |e: &async_graphql::ServerError| e.locations.first().map(|p| (p.line, p.column));
        at(a).cmp(&at(b)).then_with(|| compare_paths(&a.path, &b.path))
    });
    // async-graphql's validator walks a document twice, and an operation type the schema
    // lacks (a subscription) is reported on both walks.
    let mut seen = Vec::with_capacity(response.errors.len());
    response.errors.retain(|e| {
        let key = (e.message.clone(), e.locations.clone(), e.path.clone());
        let first = !seen.contains(&key);
        seen.push(key);
        first
    });
    response
}

/// Orders error paths segment by segment: list indexes by number, field names by name.
fn compare_paths(a: &[PathSegment], b: &[PathSegment]) -> std::cmp::Ordering {
    fn key(segment: &PathSegment) -> (u8, usize, &str) {
        match segment {
            PathSegment::Index(index) => (0, *index, ""),
            PathSegment::Field(name) => (1, 0, name.as_str()),
        }
    }
    a.iter().map(key).cmp(b.iter().map(key))
}

/// The shared services; every schema that executes requests is built with them.
pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

/// This request's loaders; the HTTP layer attaches a fresh set to every request.
pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<std::sync::Arc<Loaders>>()
}
