//! The GraphQL layer: schema, roots, object types, input types, loaders and error codes.
//! Resolvers read the context, call a loader or a repository, and map the error.

pub mod codes;
mod limits;
pub mod loader;
mod mutation;
mod query;
pub mod schema;
mod types;

pub use limits::Limits;
pub use schema::{QuillSchema, Services, build_schema, execute, sdl};
