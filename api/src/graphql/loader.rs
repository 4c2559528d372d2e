//! DataLoaders: every relation a query walks is fetched in batches, one SQL statement per
//! batch, so the number of statements grows with a query's depth, not its breadth.
//! A fresh set is made for each request, so nothing is shared between requests.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{post, profile, user};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    error::ApiError,
    pagination::{Page, PostKey, finish_page},
    repo,
};

/// One request's loaders.
pub struct Loaders {
    pub users: DataLoader<UserLoader>,
    pub posts: DataLoader<PostLoader>,
    pub profiles: DataLoader<ProfileLoader>,
    pub author_posts: DataLoader<AuthorPostsLoader>,
    pub author_post_counts: DataLoader<AuthorPostCountLoader>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection) -> Self {
        Self {
            users: loader(UserLoader { db: db.clone() }),
            posts: loader(PostLoader { db: db.clone() }),
            profiles: loader(ProfileLoader { db: db.clone() }),
            author_posts: loader(AuthorPostsLoader { db: db.clone() }),
            author_post_counts: loader(AuthorPostCountLoader { db: db.clone() }),
        }
    }
}

fn loader<T>(inner: T) -> DataLoader<T> {
    DataLoader::new(inner, tokio::spawn)
}

/// Users by id.
pub struct UserLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for UserLoader {
    type Value = user::Model;
    type Error = ApiError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, user::Model>, ApiError> {
        let users = repo::users::find_by_ids(&self.db, ids).await?;
        Ok(users.into_iter().map(|u| (u.id, u)).collect())
    }
}

/// Posts by id.
pub struct PostLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for PostLoader {
    type Value = post::Model;
    type Error = ApiError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, post::Model>, ApiError> {
        let posts = repo::posts::find_by_ids(&self.db, ids).await?;
        Ok(posts.into_iter().map(|p| (p.id, p)).collect())
    }
}

/// Profiles by their user's id.
pub struct ProfileLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for ProfileLoader {
    type Value = profile::Model;
    type Error = ApiError;

    async fn load(&self, user_ids: &[Uuid]) -> Result<HashMap<Uuid, profile::Model>, ApiError> {
        let profiles = repo::profiles::find_by_user_ids(&self.db, user_ids).await?;
        Ok(profiles.into_iter().map(|p| (p.user_id, p)).collect())
    }
}

/// One page of an author's posts: the key is the author and the page asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthorPage {
    pub author: Uuid,
    pub page: Page<PostKey>,
}

/// A page of posts in list order, and whether more lie beyond it.
#[derive(Debug, Clone, Default)]
pub struct PostPage {
    pub posts: Vec<post::Model>,
    pub more: bool,
}

/// Pages of posts for many authors: one window-function statement per distinct page
/// request in the batch (normally one: sibling fields ask for the same page).
pub struct AuthorPostsLoader {
    db: DatabaseConnection,
}

impl Loader<AuthorPage> for AuthorPostsLoader {
    type Value = PostPage;
    type Error = ApiError;

    async fn load(&self, keys: &[AuthorPage]) -> Result<HashMap<AuthorPage, PostPage>, ApiError> {
        let mut authors_by_page: HashMap<&Page<PostKey>, Vec<Uuid>> = HashMap::new();
        for key in keys {
            authors_by_page.entry(&key.page).or_default().push(key.author);
        }
        let mut pages = HashMap::with_capacity(keys.len());
        for (page, authors) in authors_by_page {
            let mut rows = repo::posts::page_per_author(&self.db, &authors, page).await?;
            for author in authors {
                let (posts, more) = finish_page(page.direction, page.limit, rows.remove(&author).unwrap_or_default());
                pages.insert(AuthorPage { author, page: page.clone() }, PostPage { posts, more });
            }
        }
        Ok(pages)
    }
}

/// How many posts each author has, for `User.posts { totalCount }`.
pub struct AuthorPostCountLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for AuthorPostCountLoader {
    type Value = u64;
    type Error = ApiError;

    async fn load(&self, authors: &[Uuid]) -> Result<HashMap<Uuid, u64>, ApiError> {
        let mut counts = repo::posts::count_per_author(&self.db, authors).await?;
        for author in authors {
            counts.entry(*author).or_insert(0);
        }
        Ok(counts)
    }
}
