//! The GraphQL layer: schema, roots, object types, input types, loaders and error codes.
//! Resolvers read the context, call a loader or a repository, and map the error.

mod codes;
pub mod loader;
mod mutation;
mod query;
pub mod schema;
mod types;

pub use schema::{QuillSchema, Services, build_schema, sdl};
