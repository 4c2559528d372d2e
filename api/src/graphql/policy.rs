//! Who may do what: every access rule, each in one place. Mutations name theirs as field
//! guards (`#[graphql(guard = …)]`), so a rule is read beside the field it protects and
//! runs before the resolver; the rules about values (`User.email`, `userByEmail`, the
//! author of a new post) are the functions below, which the resolvers call.
//!
//! | caller | reads | writes |
//! | --- | --- | --- |
//! | anonymous | users (email null), posts, profiles | nothing |
//! | `user` | the same, `me`, their own email | themselves and their profile, their own posts |
//! | `admin` | everything | everything, `createUser` included |

use async_graphql::{Context, Guard, Result};
use uuid::Uuid;

use super::context::{caller, loaders};
use crate::{auth::Caller, error::ApiError};

/// Only an admin (`createUser`: accounts are provisioned by the identity side).
pub struct Admin;

impl Guard for Admin {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        if caller(ctx).is_admin() {
            return Ok(());
        }
        Err(ApiError::forbidden("only an admin may do this").into())
    }
}

/// The user themselves, or an admin (`updateUser`, `deleteUser`, and so the profile).
pub struct SelfOrAdmin(pub Uuid);

impl Guard for SelfOrAdmin {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let caller = caller(ctx);
        if caller.is_admin() || caller.id() == Some(self.0) {
            return Ok(());
        }
        Err(ApiError::forbidden(match caller {
            Caller::Anonymous => "sign in to change a user: send a bearer token",
            _ => "a user may change only themselves",
        })
        .into())
    }
}

/// The post's author, or an admin (`updatePost`, `deletePost`). A post that does not
/// exist passes, for the resolver to answer `NOT_FOUND`; an anonymous caller never does.
pub struct AuthorOrAdmin(pub Uuid);

impl Guard for AuthorOrAdmin {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let caller = caller(ctx);
        if caller.is_admin() {
            return Ok(());
        }
        let Some(me) = caller.id() else {
            return Err(ApiError::forbidden("sign in to change a post: send a bearer token").into());
        };
        match loaders(ctx).posts().load_one(self.0).await? {
            Some(post) if post.author_id != me => {
                Err(ApiError::forbidden("a user may change only their own posts").into())
            }
            _ => Ok(()),
        }
    }
}

/// The author of a new post: the caller unless an admin names someone else.
pub fn new_post_author(caller: Caller, requested: Option<Uuid>) -> Result<Uuid, ApiError> {
    match (caller, requested) {
        (Caller::Admin(_) | Caller::Unchecked, Some(author)) => Ok(author),
        (Caller::Admin(me) | Caller::User(me), None) => Ok(me),
        (Caller::User(me), Some(author)) if author == me => Ok(me),
        (Caller::User(_), Some(_)) => Err(ApiError::forbidden("a user may post only as themselves")),
        (Caller::Unchecked, None) => {
            Err(ApiError::bad_input("`authorId` is required when no one is signed in"))
        }
        (Caller::Anonymous, _) => Err(ApiError::forbidden("sign in to post: send a bearer token")),
    }
}

/// Whether the caller sees the email of `owner`: their own, or anyone's for an admin.
pub fn may_see_email(caller: Caller, owner: Uuid) -> bool {
    caller.is_admin() || caller.id() == Some(owner)
}

/// Whose email the caller may look a user up by.
pub enum EmailLookup {
    /// Anyone's (an admin).
    Anyone,
    /// Only this user's own.
    Own(Uuid),
}

/// `userByEmail`: an admin finds anyone; a user only themselves, so the field cannot tell
/// anyone else whether an address has an account.
pub fn email_lookup(caller: Caller) -> Result<EmailLookup, ApiError> {
    match caller {
        Caller::Admin(_) | Caller::Unchecked => Ok(EmailLookup::Anyone),
        Caller::User(me) => Ok(EmailLookup::Own(me)),
        Caller::Anonymous => {
            Err(ApiError::forbidden("sign in to look a user up by email: send a bearer token"))
        }
    }
}

/// The answer to a user looking up an address that is not their own.
pub fn not_your_email() -> ApiError {
    ApiError::forbidden("a user may look up only their own email")
}
