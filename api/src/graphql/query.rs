//! The read side: `me`, `user`, `userByEmail`, `users`, `post`, `posts`.

use std::sync::Arc;

use async_graphql::{Context, MergedObject, Object, Result};
use uuid::Uuid;

use super::{
    context::{caller, loaders, services},
    policy::{self, EmailLookup},
    types::{Post, PostConnection, Total, User, UserConnection},
};
use crate::{
    pagination::{Page, finish_page, page_cost},
    repo, validate,
};

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(UserQuery, PostQuery);

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The user the bearer token speaks for; null without a token, or when the user no
    /// longer exists.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = caller(ctx).id() else { return Ok(None) };
        Ok(loaders(ctx).users().load_one(id).await?.map(Arc::unwrap_or_clone).map(User::from))
    }

    /// The user with this id, or null.
    async fn user(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<User>> {
        Ok(loaders(ctx).users().load_one(id).await?.map(Arc::unwrap_or_clone).map(User::from))
    }

    /// The user with this email (any case, surrounding spaces ignored), or null. Admins
    /// find anyone; a user finds only themselves (`FORBIDDEN` for any other address, so no
    /// one learns whether it has an account); anonymous callers, no one.
    async fn user_by_email(&self, ctx: &Context<'_>, email: String) -> Result<Option<User>> {
        let email = validate::email(&email)?;
        let found = match policy::email_lookup(caller(ctx))? {
            EmailLookup::Anyone => loaders(ctx).users_by_email().load_one(email).await?,
            EmailLookup::Own(me) => match loaders(ctx).users().load_one(me).await? {
                Some(user) if user.email == email => Some(user),
                _ => return Err(policy::not_your_email().into()),
            },
        };
        Ok(found.map(Arc::unwrap_or_clone).map(User::from))
    }

    /// All users, oldest first.
    #[graphql(complexity = "page_cost(first, last) * child_complexity + 1")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<UserConnection> {
        let page = Page::from_args(first, after, last, before)?;
        let rows = repo::users::page(&services(ctx).db, &page).await?;
        let (rows, more) = finish_page(page.direction, page.limit, rows);
        Ok(UserConnection::new(rows, &page, more, Total::Users))
    }
}

#[derive(Default)]
pub struct PostQuery;

#[Object]
impl PostQuery {
    /// The post with this id, or null.
    async fn post(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Post>> {
        Ok(loaders(ctx).posts().load_one(id).await?.map(Arc::unwrap_or_clone).map(Post::from))
    }

    /// All posts, or one author's, newest first.
    #[graphql(complexity = "page_cost(first, last) * child_complexity + 1")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        author_id: Option<Uuid>,
    ) -> Result<PostConnection> {
        let page = Page::from_args(first, after, last, before)?;
        let rows = repo::posts::page(&services(ctx).db, &page, author_id).await?;
        let (rows, more) = finish_page(page.direction, page.limit, rows);
        Ok(PostConnection::new(rows, &page, more, Total::Posts(author_id)))
    }
}
