//! The object and input types of the schema, and the Relay connections over them.

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{post, profile, user};
use uuid::Uuid;

use super::{
    loader::AuthorPage,
    schema::{loaders, services},
};
use crate::{
    error::{ApiError, ApiResult},
    pagination::{CursorKey, Page, PostKey, has_next_and_previous, page_cost},
    repo, validate,
};

/// A person with an account.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct User {
    pub id: Uuid,
    /// Normalised: trimmed and lower-cased.
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
    /// The user's profile, if they have one.
    async fn profile(&self, ctx: &Context<'_>) -> Result<Option<Profile>> {
        Ok(loaders(ctx).profiles.load_one(self.id).await?.map(Arc::unwrap_or_clone).map(Profile::from))
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
        let key = AuthorPage { author: self.id, page };
        let found =
            loaders(ctx).author_posts.load_one(key).await?.map(Arc::unwrap_or_clone).unwrap_or_default();
        // Each of these posts' author is this user: no need to look it up again.
        let author = Arc::new(self.clone());
        let posts = found.posts.into_iter().map(|p| Post::by(p, author.clone())).collect();
        Ok(PostConnection::new::<Post, _>(posts, &page, found.more, Total::PostsOf(self.id)))
    }
}

/// A post written by one user.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct Post {
    pub id: Uuid,
    /// Trimmed; never blank.
    pub title: String,
    /// As written, spaces included.
    pub content: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub author_id: Uuid,
    /// The author, when the post was reached through them.
    #[graphql(skip)]
    pub known_author: Option<Arc<User>>,
}

impl Post {
    /// A post listed under its author.
    fn by(model: post::Model, author: Arc<User>) -> Self {
        let mut post = Self::from(model);
        post.known_author = Some(author);
        post
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
            author_id: m.author_id,
            known_author: None,
        }
    }
}

#[ComplexObject]
impl Post {
    /// Who wrote it.
    async fn author(&self, ctx: &Context<'_>) -> Result<Arc<User>> {
        if let Some(author) = &self.known_author {
            return Ok(author.clone());
        }
        loaders(ctx)
            .users
            .load_one(self.author_id)
            .await?
            .map(|m| Arc::new(User::from(Arc::unwrap_or_clone(m))))
            // The foreign key cascades deletes, so only a delete racing this read gets here.
            .ok_or_else(|| {
                ApiError::not_found(format!("the author of post {} no longer exists", self.id)).into()
            })
    }
}

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

/// Where a list stands: whether more lies on either side, and the cursors to get it.
#[derive(Clone, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// A node of a connection, and the opaque cursor that points at it.
pub trait Node: Clone {
    fn cursor(&self) -> String;
}

impl Node for User {
    fn cursor(&self) -> String {
        self.id.encode()
    }
}

impl Node for Post {
    fn cursor(&self) -> String {
        PostKey { created_at: self.created_at, id: self.id }.encode()
    }
}

/// What `totalCount` counts; it runs only when a client selects it.
#[derive(Clone, Copy)]
pub enum Total {
    Users,
    /// All posts, or one author's.
    Posts(Option<Uuid>),
    /// One user's posts, counted in a batch with their siblings'.
    PostsOf(Uuid),
}

impl Total {
    async fn count(self, ctx: &Context<'_>) -> ApiResult<u64> {
        let db = &services(ctx).db;
        match self {
            Total::Users => repo::users::count(db).await,
            Total::Posts(author) => repo::posts::count(db, author).await,
            Total::PostsOf(author) => {
                Ok(loaders(ctx).author_post_counts.load_one(author).await?.unwrap_or(0))
            }
        }
    }
}

macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty, $what:literal) => {
        #[doc = concat!("A page of ", $what, ", Relay style.")]
        pub struct $connection {
            nodes: Vec<$node>,
            has_next_page: bool,
            has_previous_page: bool,
            total: Total,
        }

        impl $connection {
            pub fn new<M: Into<$node>, K>(rows: Vec<M>, page: &Page<K>, more: bool, total: Total) -> Self {
                let nodes: Vec<$node> = rows.into_iter().map(Into::into).collect();
                let (has_next_page, has_previous_page) = has_next_and_previous(page, more);
                Self { nodes, has_next_page, has_previous_page, total }
            }
        }

        #[Object]
        impl $connection {
            /// The nodes with their cursors.
            async fn edges(&self) -> Vec<$edge> {
                self.nodes.iter().map(|node| $edge { cursor: node.cursor(), node: node.clone() }).collect()
            }

            /// The nodes alone, for clients that need no per-node cursor.
            async fn nodes(&self) -> &[$node] {
                &self.nodes
            }

            // Cursors are made only when asked for.
            async fn page_info(&self) -> PageInfo {
                PageInfo {
                    has_next_page: self.has_next_page,
                    has_previous_page: self.has_previous_page,
                    start_cursor: self.nodes.first().map(Node::cursor),
                    end_cursor: self.nodes.last().map(Node::cursor),
                }
            }

            /// How many there are in the whole list; counted only when asked for.
            async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
                Ok(self.total.count(ctx).await?)
            }
        }

        #[doc = concat!("One of ", $what, " and its cursor.")]
        #[derive(SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }
    };
}

connection!(UserConnection, UserEdge, User, "users");
connection!(PostConnection, PostEdge, Post, "posts");

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
    pub author_id: Uuid,
    /// Stored trimmed; may not be blank.
    pub title: String,
    /// Stored as written, spaces included.
    pub content: Option<String>,
}

impl CreatePostInput {
    pub fn validate(self) -> ApiResult<repo::posts::NewPost> {
        Ok(repo::posts::NewPost {
            author_id: self.author_id,
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
