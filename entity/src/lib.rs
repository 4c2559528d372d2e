//! SeaORM entities for Quill's tables: `users`, `posts` and `profiles`, and how they relate.
//!
//! The schema itself is created by the `migration` crate; these types mirror it so the
//! API can read and write rows with typed models.

pub mod post;
pub mod profile;
pub mod user;

/// `use entity::prelude::*` brings every entity in under a distinct name.
pub mod prelude {
    pub use crate::post::{ActiveModel as PostActiveModel, Entity as Post, Model as PostModel};
    pub use crate::profile::{ActiveModel as ProfileActiveModel, Entity as Profile, Model as ProfileModel};
    pub use crate::user::{ActiveModel as UserActiveModel, Entity as User, Model as UserModel};
}
