//! `Post`: a post written by one user, and its author.

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::post;
use uuid::Uuid;

use super::{connection::Node, user::User};
use crate::{
    error::ApiError,
    graphql::context::loaders,
    pagination::{CursorKey, PostKey},
};

/// A post written by one user.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct Post {
    pub id: Uuid,
    /// Trimmed; never blank.
    pub title: String,
    #[graphql(skip)]
    pub content: Option<String>,
    #[graphql(skip)]
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub updated_at: DateTime<Utc>,
    /// Whether `content` and `updated_at` were read: a page of posts whose selection shows
    /// neither is read without them (`PostColumns::WithoutDetails`).
    #[graphql(skip)]
    pub details: bool,
    #[graphql(skip)]
    pub author_id: Uuid,
    /// The author, when the post was reached through them.
    #[graphql(skip)]
    pub known_author: Option<Arc<User>>,
}

impl Post {
    /// A post listed under its author, with its details read or not.
    pub(super) fn by(model: post::Model, author: Arc<User>, details: bool) -> Self {
        let mut post = Self::from(model);
        post.known_author = Some(author);
        post.details = details;
        post
    }

    /// The content, when it was read with the post.
    fn content_at_hand(&self) -> Option<&Option<String>> {
        self.details.then_some(&self.content)
    }

    /// The last change, when it was read with the post.
    fn updated_at_at_hand(&self) -> Option<DateTime<Utc>> {
        self.details.then_some(self.updated_at)
    }

    /// The post as stored, for a detail it was read without (which the page's selection
    /// did not show, as far as its look-ahead saw).
    async fn stored(&self, ctx: &Context<'_>) -> Result<Arc<post::Model>> {
        // Boxed, as every load here (see the module).
        Box::pin(loaders(ctx).posts().load_one(self.id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("post {} no longer exists", self.id)).into())
    }

    /// The author when the post was reached through them: `author` is then answered where
    /// it is met, without a future, and so is the post when its other fields are too.
    fn author_at_hand(&self) -> Option<&Arc<User>> {
        self.known_author.as_ref()
    }
}

impl From<post::Model> for Post {
    fn from(m: post::Model) -> Self {
        Self {
            id: m.id,
            title: m.title,
            content: m.content,
            created_at: m.created_at,
            updated_at: m.updated_at,
            details: true,
            author_id: m.author_id,
            known_author: None,
        }
    }
}

#[ComplexObject]
impl Post {
    /// As written, spaces included.
    #[graphql(known = "Self::content_at_hand")]
    async fn content(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(self.stored(ctx).await?.content.clone())
    }

    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    #[graphql(known = "Self::updated_at_at_hand")]
    async fn updated_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.stored(ctx).await?.updated_at)
    }

    /// Who wrote it.
    #[graphql(known = "Self::author_at_hand")]
    async fn author(&self, ctx: &Context<'_>) -> Result<Arc<User>> {
        if let Some(author) = &self.known_author {
            return Ok(author.clone());
        }
        // Boxed, as every load here (see the module).
        Box::pin(loaders(ctx).users().load_one(self.author_id))
            .await?
            .map(|m| Arc::new(User::from(Arc::unwrap_or_clone(m))))
            // The foreign key cascades deletes, so only a delete racing this read gets here.
            .ok_or_else(|| {
                ApiError::not_found(format!("the author of post {} no longer exists", self.id)).into()
            })
    }
}

impl Node for Post {
    fn cursor(&self) -> String {
        PostKey { created_at: self.created_at, id: self.id }.encode()
    }
}
