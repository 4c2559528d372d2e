//! `Profile`: what a user says about themselves.

use async_graphql::SimpleObject;
use entity::profile;

/// What a user says about themselves.
#[derive(Clone, SimpleObject)]
pub struct Profile {
    /// As written, spaces included.
    pub bio: Option<String>,
}

impl From<profile::Model> for Profile {
    fn from(m: profile::Model) -> Self {
        Self { bio: m.bio }
    }
}
