//! The object and input types of the schema, one file per domain, and the Relay
//! connections over them.
//!
//! Resolvers await a loader, or a count, in a box of its own (`Box::pin`). A field's
//! future lives inside its object's, which is as large as the largest of the type's
//! fields and stays allocated while the field waits for its batch; a hundred posts' authors
//! wait on one batch of profiles at once. Unboxed, a load's state made every `User` field
//! 240 bytes larger, for the fields that never load too.
//!
//! A resolver that never waits is written as a plain `fn` (`User.email`): with no
//! arguments, guard or `Result`, and a scalar or enum for its value, the executor answers
//! it where it is met, without a future (`ContainerType::resolve_field_now`), as it
//! answers a `SimpleObject`'s own fields.

mod connection;
mod input;
mod post;
mod profile;
mod user;

pub use connection::{PostConnection, Total, UserConnection};
pub use input::{CreatePostInput, CreateUserInput, UpdatePostInput, UpdateUserInput};
pub use post::Post;
pub use user::User;
