//! The object and input types of the schema, one file per domain, and the Relay
//! connections over them.

mod connection;
mod input;
mod post;
mod profile;
mod user;

pub use connection::{PostConnection, Total, UserConnection};
pub use input::{CreatePostInput, CreateUserInput, UpdatePostInput, UpdateUserInput};
pub use post::Post;
pub use user::User;
