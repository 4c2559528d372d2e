//! Relay connections: `PageInfo`, the `Node` cursor trait, what `totalCount` counts, and
//! the `UserConnection` and `PostConnection` the `connection!` macro makes.

use async_graphql::{Context, Object, Result, SimpleObject};
use uuid::Uuid;

use super::{post::Post, user::User};
use crate::{
    error::ApiResult,
    graphql::context::{loaders, services},
    pagination::{Page, has_next_and_previous},
    repo,
};

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
                Ok(loaders(ctx).author_post_counts().load_one(author).await?.unwrap_or(0))
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
                // Boxed, as every load here (see the module).
                Ok(Box::pin(self.total.count(ctx)).await?)
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
