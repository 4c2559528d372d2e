//! The write side. Each mutation validates its input before touching the database, so a
//! rejected request writes nothing, and announces what it changed once it has committed.

use async_graphql::{Context, MergedObject, Object, Result};
use uuid::Uuid;

use super::{
    context::{caller, services},
    policy::{self, Admin, AuthorOrAdmin, SelfOrAdmin},
    types::{CreatePostInput, CreateUserInput, Post, UpdatePostInput, UpdateUserInput, User},
};
use crate::{events::Event, repo};

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(UserMutation, PostMutation);

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates a user, and their profile when one is given, in one transaction.
    /// `CONFLICT` when the email is taken. Admins only (`FORBIDDEN` otherwise).
    #[graphql(guard = "Admin")]
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let (user, _profile) = repo::users::create(&services(ctx).db, input.validate()?).await?;
        Ok(user.into())
    }

    /// Changes the given fields of a user. `NOT_FOUND` when there is no such user. The
    /// user themselves or an admin (`FORBIDDEN` otherwise).
    #[graphql(guard = "SelfOrAdmin(id)")]
    async fn update_user(&self, ctx: &Context<'_>, id: Uuid, input: UpdateUserInput) -> Result<User> {
        let services = services(ctx);
        let user = repo::users::update(&services.db, id, input.validate()?).await?;
        services.cache.invalidate_user(id).await;
        services.events.publish(Event::UserUpdated { user: user.clone() }).await;
        Ok(user.into())
    }

    /// Deletes a user with their profile and posts; returns the id. The user themselves
    /// or an admin (`FORBIDDEN` otherwise).
    #[graphql(guard = "SelfOrAdmin(id)")]
    async fn delete_user(&self, ctx: &Context<'_>, id: Uuid) -> Result<Uuid> {
        let services = services(ctx);
        let posts = repo::users::delete(&services.db, id).await?;
        services.cache.invalidate_user(id).await;
        for post in posts {
            services.events.publish(Event::PostDeleted { id: post, author_id: id }).await;
        }
        services.events.publish(Event::UserDeleted { id }).await;
        Ok(id)
    }
}

#[derive(Default)]
pub struct PostMutation;

#[Object]
impl PostMutation {
    /// Creates a post by the caller (an admin may name another author). `NOT_FOUND` when
    /// the author does not exist.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> Result<Post> {
        let author = policy::new_post_author(caller(ctx), input.author_id)?;
        let services = services(ctx);
        let post = repo::posts::create(&services.db, input.validate(author)?).await?;
        services.events.publish(Event::PostCreated { post: post.clone() }).await;
        Ok(post.into())
    }

    /// Changes the given fields of a post. `NOT_FOUND` when there is no such post. Its
    /// author or an admin (`FORBIDDEN` otherwise).
    #[graphql(guard = "AuthorOrAdmin(id)")]
    async fn update_post(&self, ctx: &Context<'_>, id: Uuid, input: UpdatePostInput) -> Result<Post> {
        let services = services(ctx);
        let post = repo::posts::update(&services.db, id, input.validate()?).await?;
        services.events.publish(Event::PostUpdated { post: post.clone() }).await;
        Ok(post.into())
    }

    /// Deletes a post; returns the id. Its author or an admin (`FORBIDDEN` otherwise).
    #[graphql(guard = "AuthorOrAdmin(id)")]
    async fn delete_post(&self, ctx: &Context<'_>, id: Uuid) -> Result<Uuid> {
        let services = services(ctx);
        let post = repo::posts::delete(&services.db, id).await?;
        services.events.publish(Event::PostDeleted { id, author_id: post.author_id }).await;
        Ok(id)
    }
}
