//! `User`: a person with an account, their profile and their posts.

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user;
use uuid::Uuid;

use super::{
    connection::{Node, PostConnection, Total},
    post::Post,
    profile::Profile,
};
use crate::{
    graphql::{
        context::{caller, loaders},
        loader::{AuthorPage, PostPage},
        policy,
    },
    pagination::{CursorKey, Page, page_cost},
    repo::posts::PostColumns,
};

/// A person with an account.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct User {
    pub id: Uuid,
    /// Shown only to the user themselves and to admins: see the `email` field.
    #[graphql(skip)]
    pub email: String,
    /// The display name, trimmed; null when the user has none.
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        Self { id: m.id, email: m.email, name: m.name, created_at: m.created_at, updated_at: m.updated_at }
    }
}

#[ComplexObject]
impl User {
    /// The email address, normalised (trimmed, lower-cased). Visible to the user
    /// themselves and to admins; null for everyone else.
    // A plain `fn`: nothing here waits, so the field is answered where it is met, without
    // a future of its own.
    fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        policy::may_see_email(caller(ctx), self.id).then_some(self.email.as_str())
    }

    /// The user's profile, if they have one.
    async fn profile(&self, ctx: &Context<'_>) -> Result<Option<Profile>> {
        // Boxed, as every load here (see the module).
        let load = Box::pin(loaders(ctx).profiles().load_one(self.id));
        Ok(load.await?.map(Arc::unwrap_or_clone).map(Profile::from))
    }

    /// The user's posts, newest first.
    #[graphql(complexity = "page_cost(first, last) * child_complexity + 1")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<PostConnection> {
        let page = Page::from_args(first, after, last, before)?;
        let columns = columns_shown(ctx);
        let key = AuthorPage { author: self.id, page, columns };
        // Boxed, as every load here (see the module).
        let load = Box::pin(loaders(ctx).author_posts().load_one(key));
        let found = match load.await? {
            Some(found) => Arc::unwrap_or_clone(found),
            None => PostPage { posts: Vec::new(), more: false, columns },
        };
        // Each of these posts' author is this user: no need to look it up again.
        let author = Arc::new(self.clone());
        let details = found.columns == PostColumns::All;
        let posts = found.posts.into_iter().map(|p| Post::by(p, author.clone(), details)).collect();
        Ok(PostConnection::new::<Post, _>(posts, &page, found.more, Total::PostsOf(self.id)))
    }
}

/// The columns a page of posts selected at `ctx` shows: all of them when a post's `content`
/// or `updatedAt` is selected, through `nodes` or `edges`, by any fragment.
fn columns_shown(ctx: &Context<'_>) -> PostColumns {
    let page = ctx.look_ahead();
    let shows = |post: async_graphql::Lookahead<'_>| {
        post.field("content").exists() || post.field("updatedAt").exists()
    };
    if shows(page.field("nodes")) || shows(page.field("edges").field("node")) {
        PostColumns::All
    } else {
        PostColumns::WithoutDetails
    }
}

impl Node for User {
    fn cursor(&self) -> String {
        self.id.encode()
    }
}
