//! The write side. Each mutation validates its input before touching the database, so a
//! rejected request writes nothing.

use async_graphql::{Context, MergedObject, Object, Result};
use uuid::Uuid;

use super::{
    context::services,
    types::{CreatePostInput, CreateUserInput, Post, UpdatePostInput, UpdateUserInput, User},
};
use crate::repo;

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(UserMutation, PostMutation);

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates a user, and their profile when one is given, in one transaction.
    /// `CONFLICT` when the email is taken.
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let (user, _profile) = repo::users::create(&services(ctx).db, input.validate()?).await?;
        Ok(user.into())
    }

    /// Changes the given fields of a user. `NOT_FOUND` when there is no such user.
    async fn update_user(&self, ctx: &Context<'_>, id: Uuid, input: UpdateUserInput) -> Result<User> {
        let services = services(ctx);
        let user = repo::users::update(&services.db, id, input.validate()?).await?;
        services.cache.invalidate_user(id).await;
        Ok(user.into())
    }

    /// Deletes a user with their profile and posts; returns the id.
    async fn delete_user(&self, ctx: &Context<'_>, id: Uuid) -> Result<Uuid> {
        let services = services(ctx);
        repo::users::delete(&services.db, id).await?;
        services.cache.invalidate_user(id).await;
        Ok(id)
    }
}

#[derive(Default)]
pub struct PostMutation;

#[Object]
impl PostMutation {
    /// Creates a post. `NOT_FOUND` when the author does not exist.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> Result<Post> {
        Ok(repo::posts::create(&services(ctx).db, input.validate()?).await?.into())
    }

    /// Changes the given fields of a post. `NOT_FOUND` when there is no such post.
    async fn update_post(&self, ctx: &Context<'_>, id: Uuid, input: UpdatePostInput) -> Result<Post> {
        Ok(repo::posts::update(&services(ctx).db, id, input.validate()?).await?.into())
    }

    /// Deletes a post; returns the id.
    async fn delete_post(&self, ctx: &Context<'_>, id: Uuid) -> Result<Uuid> {
        repo::posts::delete(&services(ctx).db, id).await?;
        Ok(id)
    }
}
