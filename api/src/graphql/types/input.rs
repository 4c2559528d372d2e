//! The input objects of the mutations, and the checks that turn each into what its
//! repository function takes.

use async_graphql::{InputObject, MaybeUndefined};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    repo, validate,
};

/// A new user, optionally with a profile created in the same transaction.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Stored trimmed and lower-cased; no other user may have it (`CONFLICT`).
    pub email: String,
    /// Stored trimmed; a blank name is no name.
    pub name: Option<String>,
    /// A profile created with the user, in the same transaction.
    pub profile: Option<ProfileInput>,
}

/// A profile's contents.
#[derive(InputObject)]
pub struct ProfileInput {
    /// Stored as written, spaces included; null is no bio.
    pub bio: Option<String>,
}

impl CreateUserInput {
    pub fn validate(self) -> ApiResult<repo::users::NewUser> {
        Ok(repo::users::NewUser {
            email: validate::email(&self.email)?,
            name: validate::name(self.name)?,
            profile: self
                .profile
                .map(|p| Ok::<_, ApiError>(repo::users::NewProfile { bio: validate::bio(p.bio)? }))
                .transpose()?,
        })
    }
}

/// Changes to a user: an omitted field stays as it is; `name: null` clears the name.
#[derive(InputObject)]
pub struct UpdateUserInput {
    /// Stored trimmed and lower-cased; may not be null.
    pub email: MaybeUndefined<String>,
    /// Stored trimmed; null or a blank name clears it.
    pub name: MaybeUndefined<String>,
    /// Creates the profile or replaces its bio.
    pub profile: MaybeUndefined<ProfileInput>,
}

impl UpdateUserInput {
    pub fn validate(self) -> ApiResult<repo::users::UserChanges> {
        Ok(repo::users::UserChanges {
            email: match self.email {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => return Err(ApiError::bad_input("`email` cannot be null")),
                MaybeUndefined::Value(email) => Some(validate::email(&email)?),
            },
            name: match self.name {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(name) => Some(validate::name(Some(name))?),
            },
            bio: match self.profile {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => {
                    return Err(ApiError::bad_input(
                        "`profile` cannot be null: set `profile: { bio: null }` to clear the bio",
                    ));
                }
                MaybeUndefined::Value(profile) => Some(validate::bio(profile.bio)?),
            },
        })
    }
}

/// A new post by an existing user.
#[derive(InputObject)]
pub struct CreatePostInput {
    /// Who writes it: the caller when omitted; only an admin may name someone else.
    pub author_id: Option<Uuid>,
    /// Stored trimmed; may not be blank.
    pub title: String,
    /// Stored as written, spaces included.
    pub content: Option<String>,
}

impl CreatePostInput {
    /// The post to write, by `author` (the access rules decide who that is).
    pub fn validate(self, author: Uuid) -> ApiResult<repo::posts::NewPost> {
        Ok(repo::posts::NewPost {
            author_id: author,
            title: validate::title(&self.title)?,
            content: validate::content(self.content)?,
        })
    }
}

/// Changes to a post: an omitted field stays as it is; `content: null` clears it.
#[derive(InputObject)]
pub struct UpdatePostInput {
    /// Stored trimmed; may not be blank or null.
    pub title: MaybeUndefined<String>,
    /// Stored as written, spaces included; null clears it.
    pub content: MaybeUndefined<String>,
}

impl UpdatePostInput {
    pub fn validate(self) -> ApiResult<repo::posts::PostChanges> {
        Ok(repo::posts::PostChanges {
            title: match self.title {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => return Err(ApiError::bad_input("`title` cannot be null")),
                MaybeUndefined::Value(title) => Some(validate::title(&title)?),
            },
            content: match self.content {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(content) => Some(validate::content(Some(content))?),
            },
        })
    }
}
