//! DataLoaders: every relation a query walks is fetched in batches, one SQL statement per
//! batch, so the number of statements grows with a query's depth, not its breadth.
//! A fresh set is made for each request, so nothing is shared between requests.
//!
//! Values are handed out as `Arc`s: DataLoader gives each caller its own clone of a
//! value, and a deep clone of a page of posts cost q1 a thousand string copies. Callers
//! take the value out with `Arc::unwrap_or_clone`, which copies only when the value is
//! shared.
//!
//! Batches are dispatched the way JavaScript's DataLoader does it, after the current
//! "tick": they run inside the request's own task ([`BatchQueue::run`]), polled only once
//! the resolvers have registered every key they can, so how a batch is cut never depends
//! on timing. (async-graphql's default, a task spawned on a 1 ms timer, splits a batch
//! whenever resolving its siblings takes longer than that, as on a busy machine.)

use std::{
    collections::HashMap,
    future::{Future, poll_fn},
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{post, profile, user};
use futures::{StreamExt as _, future::BoxFuture, stream::FuturesUnordered, task::ArcWake};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::Services;
use crate::{
    cache::UserCache,
    error::ApiError,
    pagination::{Page, PostKey, finish_page},
    repo,
};

/// One request's loaders.
pub struct Loaders {
    pub users: DataLoader<UserLoader>,
    pub users_by_email: DataLoader<UserByEmailLoader>,
    pub posts: DataLoader<PostLoader>,
    pub profiles: DataLoader<ProfileLoader>,
    pub author_posts: DataLoader<AuthorPostsLoader>,
    pub author_post_counts: DataLoader<AuthorPostCountLoader>,
}

impl Loaders {
    /// Loaders whose batches run on `queue`.
    pub fn new(services: &Services, queue: &BatchQueue) -> Self {
        let db = &services.db;
        let cache = &services.cache;
        Self {
            users: queue.loader(UserLoader { db: db.clone(), cache: cache.clone() }),
            users_by_email: queue.loader(UserByEmailLoader { db: db.clone(), cache: cache.clone() }),
            posts: queue.loader(PostLoader { db: db.clone() }),
            profiles: queue.loader(ProfileLoader { db: db.clone() }),
            author_posts: queue.loader(AuthorPostsLoader { db: db.clone() }),
            author_post_counts: queue.loader(AuthorPostCountLoader { db: db.clone() }),
        }
    }
}

/// The batches a request's loaders have started and that its task has yet to run.
#[derive(Clone, Default)]
pub struct BatchQueue(Arc<Mutex<Vec<BoxFuture<'static, ()>>>>);

impl BatchQueue {
    fn loader<T>(&self, inner: T) -> DataLoader<T> {
        let queue = self.clone();
        // No delay: the batch is not polled before the resolvers have all had their turn.
        DataLoader::new(inner, move |batch| queue.push(batch)).delay(Duration::ZERO)
    }

    fn push(&self, batch: BoxFuture<'static, ()>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(batch);
    }

    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `request` to completion, driving the batches its loaders start. Batches are
    /// polled only when the request is stalled (polled without waking itself again), so
    /// every resolver that could run has registered its keys before a batch takes them.
    /// A finished batch wakes the request, and the cycle repeats.
    pub async fn run<F: Future>(&self, request: F) -> F::Output {
        let mut request = pin!(request);
        let mut running = FuturesUnordered::new();
        poll_fn(|cx| {
            let progress = Arc::new(WakeFlag { woken: AtomicBool::new(false), task: cx.waker().clone() });
            let waker = futures::task::waker(progress.clone());
            if let Poll::Ready(output) = request.as_mut().poll(&mut Context::from_waker(&waker)) {
                return Poll::Ready(output);
            }
            if progress.woken.load(Ordering::Acquire) {
                // The request yielded with work left (async-graphql yields every so many
                // fields); it has been rescheduled and will register more keys.
                return Poll::Pending;
            }
            running.extend(self.take());
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
            Poll::Pending
        })
        .await
    }
}

/// A waker that remembers it was used, then wakes the task.
struct WakeFlag {
    woken: AtomicBool,
    task: Waker,
}

impl ArcWake for WakeFlag {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::Release);
        arc_self.task.wake_by_ref();
    }
}

/// Users by id, read through the cache: one cache round trip for the batch, one SQL
/// statement for the misses, one write-back.
pub struct UserLoader {
    db: DatabaseConnection,
    cache: UserCache,
}

impl Loader<Uuid> for UserLoader {
    type Value = Arc<user::Model>;
    type Error = ApiError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<user::Model>>, ApiError> {
        Ok(shared(users_through_cache(&self.db, &self.cache, ids).await?))
    }
}

/// The values of a loaded batch, ready to be handed out.
fn shared<K: std::hash::Hash + Eq, V>(values: HashMap<K, V>) -> HashMap<K, Arc<V>> {
    values.into_iter().map(|(key, value)| (key, Arc::new(value))).collect()
}

async fn users_through_cache(
    db: &DatabaseConnection,
    cache: &UserCache,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, user::Model>, ApiError> {
    let started = Instant::now();
    let mut users = cache.get_users(ids).await;
    let misses: Vec<Uuid> = ids.iter().filter(|id| !users.contains_key(id)).copied().collect();
    if misses.is_empty() {
        return Ok(users);
    }
    let loaded = repo::users::find_by_ids(db, &misses).await?;
    cache.put_users(&loaded, started).await;
    users.extend(loaded.into_iter().map(|u| (u.id, u)));
    Ok(users)
}

/// Users by normalised email. The cache maps an email to an id, and the user comes from
/// the user cache; an entry whose user no longer has that email counts as a miss.
pub struct UserByEmailLoader {
    db: DatabaseConnection,
    cache: UserCache,
}

impl Loader<String> for UserByEmailLoader {
    type Value = Arc<user::Model>;
    type Error = ApiError;

    async fn load(&self, emails: &[String]) -> Result<HashMap<String, Arc<user::Model>>, ApiError> {
        let started = Instant::now();
        let mut found = HashMap::with_capacity(emails.len());
        if self.cache.is_enabled() {
            let ids = self.cache.get_emails(emails).await;
            let users = users_through_cache(&self.db, &self.cache, &ids).await?;
            found.extend(
                users.into_values().filter(|u| emails.contains(&u.email)).map(|u| (u.email.clone(), u)),
            );
        }
        let misses: Vec<String> = emails.iter().filter(|e| !found.contains_key(*e)).cloned().collect();
        if misses.is_empty() {
            return Ok(shared(found));
        }
        let loaded = repo::users::find_by_emails(&self.db, &misses).await?;
        self.cache.put_users(&loaded, started).await;
        self.cache.put_emails(&loaded).await;
        found.extend(loaded.into_iter().map(|u| (u.email.clone(), u)));
        Ok(shared(found))
    }
}

/// Posts by id.
pub struct PostLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for PostLoader {
    type Value = Arc<post::Model>;
    type Error = ApiError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<post::Model>>, ApiError> {
        let posts = repo::posts::find_by_ids(&self.db, ids).await?;
        Ok(posts.into_iter().map(|p| (p.id, Arc::new(p))).collect())
    }
}

/// Profiles by their user's id.
pub struct ProfileLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for ProfileLoader {
    type Value = Arc<profile::Model>;
    type Error = ApiError;

    async fn load(&self, user_ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<profile::Model>>, ApiError> {
        let profiles = repo::profiles::find_by_user_ids(&self.db, user_ids).await?;
        Ok(profiles.into_iter().map(|p| (p.user_id, Arc::new(p))).collect())
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

/// Pages of posts for many authors: one statement ([`repo::posts::page_per_author`]) per
/// distinct page request in the batch, normally one, as sibling fields ask for the same
/// page.
pub struct AuthorPostsLoader {
    db: DatabaseConnection,
}

impl Loader<AuthorPage> for AuthorPostsLoader {
    type Value = Arc<PostPage>;
    type Error = ApiError;

    async fn load(&self, keys: &[AuthorPage]) -> Result<HashMap<AuthorPage, Arc<PostPage>>, ApiError> {
        let mut authors_by_page: HashMap<&Page<PostKey>, Vec<Uuid>> = HashMap::new();
        for key in keys {
            authors_by_page.entry(&key.page).or_default().push(key.author);
        }
        let mut pages = HashMap::with_capacity(keys.len());
        for (page, authors) in authors_by_page {
            let mut rows = repo::posts::page_per_author(&self.db, &authors, page).await?;
            for author in authors {
                let (posts, more) =
                    finish_page(page.direction, page.limit, rows.remove(&author).unwrap_or_default());
                pages.insert(AuthorPage { author, page: *page }, Arc::new(PostPage { posts, more }));
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
