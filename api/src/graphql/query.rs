//! The read side: `user`, `userByEmail`, `users`, `post`, `posts`.

use std::sync::Arc;

use async_graphql::{Context, MergedObject, Object, Result};
use uuid::Uuid;

use super::{
    context::{loaders, services},
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
    /// The user with this id, or null.
    async fn user(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<User>> {
        Ok(loaders(ctx).users.load_one(id).await?.map(Arc::unwrap_or_clone).map(User::from))
    }

    /// The user with this email (any case, surrounding spaces ignored), or null.
    async fn user_by_email(&self, ctx: &Context<'_>, email: String) -> Result<Option<User>> {
        let email = validate::email(&email)?;
        Ok(loaders(ctx).users_by_email.load_one(email).await?.map(Arc::unwrap_or_clone).map(User::from))
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
        Ok(loaders(ctx).posts.load_one(id).await?.map(Arc::unwrap_or_clone).map(Post::from))
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
