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
    future::{Future, poll_fn},
    pin::pin,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use async_graphql::dataloader::{DataLoader, LoadedMap, Loader};
use entity::{post, profile, user};
use futures::{StreamExt as _, future::BoxFuture, stream::FuturesUnordered, task::ArcWake};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::Services;
use crate::{
    KeyedMap,
    cache::UserCache,
    error::ApiError,
    pagination::{Page, PostKey, finish_page},
    repo::{self, posts::PostColumns},
};

/// One request's loaders, each made when the request first asks for it: most requests use
/// one or two of them, and each costs allocations to make and to drop.
pub(super) struct Loaders {
    db: DatabaseConnection,
    cache: UserCache,
    /// Where every loader's batches run.
    queue: BatchQueue,
    users: OnceLock<DataLoader<UserLoader>>,
    users_by_email: OnceLock<DataLoader<UserByEmailLoader>>,
    posts: OnceLock<DataLoader<PostLoader>>,
    profiles: OnceLock<DataLoader<ProfileLoader>>,
    author_posts: OnceLock<DataLoader<AuthorPostsLoader>>,
    author_post_counts: OnceLock<DataLoader<AuthorPostCountLoader>>,
}

impl Loaders {
    /// Loaders whose batches run on `queue`.
    pub(super) fn new(services: &Services, queue: &BatchQueue) -> Self {
        Self {
            db: services.db.clone(),
            cache: services.cache.clone(),
            queue: queue.clone(),
            users: OnceLock::new(),
            users_by_email: OnceLock::new(),
            posts: OnceLock::new(),
            profiles: OnceLock::new(),
            author_posts: OnceLock::new(),
            author_post_counts: OnceLock::new(),
        }
    }

    pub(super) fn users(&self) -> &DataLoader<UserLoader> {
        self.users
            .get_or_init(|| self.queue.loader(UserLoader { db: self.db.clone(), cache: self.cache.clone() }))
    }

    pub(super) fn users_by_email(&self) -> &DataLoader<UserByEmailLoader> {
        self.users_by_email.get_or_init(|| {
            self.queue.loader(UserByEmailLoader { db: self.db.clone(), cache: self.cache.clone() })
        })
    }

    pub(super) fn posts(&self) -> &DataLoader<PostLoader> {
        self.posts.get_or_init(|| self.queue.loader(PostLoader { db: self.db.clone() }))
    }

    pub(super) fn profiles(&self) -> &DataLoader<ProfileLoader> {
        self.profiles.get_or_init(|| self.queue.loader(ProfileLoader { db: self.db.clone() }))
    }

    pub(super) fn author_posts(&self) -> &DataLoader<AuthorPostsLoader> {
        self.author_posts.get_or_init(|| self.queue.loader(AuthorPostsLoader { db: self.db.clone() }))
    }

    pub(super) fn author_post_counts(&self) -> &DataLoader<AuthorPostCountLoader> {
        self.author_post_counts
            .get_or_init(|| self.queue.loader(AuthorPostCountLoader { db: self.db.clone() }))
    }
}

/// The batches a request's loaders have started and that its task has yet to run.
#[derive(Clone)]
pub(super) struct BatchQueue(Arc<Mutex<Queued>>);

#[derive(Default)]
struct Queued {
    batches: Vec<BoxFuture<'static, ()>>,
    /// The task running the request, woken when a batch arrives while it is not being
    /// polled: from a task the request spawned, say. (A batch started by another batch
    /// arrives while it is polled, and is picked up before the poll ends.)
    driver: Option<Waker>,
    /// Whether the driver is being polled right now.
    polling: bool,
}

impl BatchQueue {
    pub(super) fn new() -> Self {
        Self(Arc::default())
    }

    fn loader<T>(&self, inner: T) -> DataLoader<T> {
        let queue = self.clone();
        // No delay: the batch is not polled before the resolvers have all had their turn.
        DataLoader::new(inner, move |batch| queue.push(batch)).delay(Duration::ZERO)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, batch: BoxFuture<'static, ()>) {
        let mut queued = self.lock();
        queued.batches.push(batch);
        if !queued.polling
            && let Some(driver) = &queued.driver
        {
            driver.wake_by_ref();
        }
    }

    /// The driver's poll begins: batches pushed from now on are its to pick up.
    fn enter(&self, driver: &Waker) {
        let mut queued = self.lock();
        queued.polling = true;
        if !queued.driver.as_ref().is_some_and(|known| known.will_wake(driver)) {
            queued.driver = Some(driver.clone());
        }
    }

    /// The driver's poll ends; from now on a pushed batch wakes it.
    fn leave(&self) {
        self.lock().polling = false;
    }

    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(&mut self.lock().batches)
    }

    /// The queued batches, or `None` (and the poll over) when there are none.
    fn take_or_leave(&self) -> Option<Vec<BoxFuture<'static, ()>>> {
        let mut queued = self.lock();
        if queued.batches.is_empty() {
            queued.polling = false;
            return None;
        }
        Some(std::mem::take(&mut queued.batches))
    }

    /// Runs `request` to completion, driving the batches its loaders start. Batches are
    /// polled only when the request is stalled (polled without waking itself again), so
    /// every resolver that could run has registered its keys before a batch takes them.
    /// A finished batch wakes the request, and the cycle repeats.
    pub(super) async fn run<F: Future>(&self, request: F) -> F::Output {
        let mut request = pin!(request);
        let mut running = FuturesUnordered::new();
        poll_fn(|cx| {
            self.enter(cx.waker());
            let progress = Arc::new(WakeFlag { woken: AtomicBool::new(false), task: cx.waker().clone() });
            let waker = futures::task::waker(progress.clone());
            if let Poll::Ready(output) = request.as_mut().poll(&mut Context::from_waker(&waker)) {
                self.leave();
                return Poll::Ready(output);
            }
            if progress.woken.load(Ordering::Acquire) {
                // The request yielded with work left (async-graphql yields every so many
                // fields); it has been rescheduled and will register more keys.
                self.leave();
                return Poll::Pending;
            }
            // Batches may start batches of their own (a loader that loads through
            // another): run those too before the poll ends, or they would wait forever.
            let mut batches = self.take();
            loop {
                running.extend(batches);
                while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
                match self.take_or_leave() {
                    Some(more) => batches = more,
                    None => return Poll::Pending,
                }
            }
        })
        .await
    }
}

/// Records whether the request woke itself while being polled, and passes the wake on.
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

    async fn load(&self, ids: &[Uuid]) -> Result<LoadedMap<Uuid, Arc<user::Model>>, ApiError> {
        Ok(shared(users_through_cache(&self.db, &self.cache, ids).await?))
    }
}

/// The values of a loaded batch, ready to be handed out.
fn shared<K: std::hash::Hash + Eq, V>(values: KeyedMap<K, V>) -> LoadedMap<K, Arc<V>> {
    values.into_iter().map(|(key, value)| (key, Arc::new(value))).collect()
}

async fn users_through_cache(
    db: &DatabaseConnection,
    cache: &UserCache,
    ids: &[Uuid],
) -> Result<KeyedMap<Uuid, user::Model>, ApiError> {
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

    async fn load(&self, emails: &[String]) -> Result<LoadedMap<String, Arc<user::Model>>, ApiError> {
        let started = Instant::now();
        let mut found = KeyedMap::with_capacity_and_hasher(emails.len(), Default::default());
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

    async fn load(&self, ids: &[Uuid]) -> Result<LoadedMap<Uuid, Arc<post::Model>>, ApiError> {
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

    async fn load(&self, user_ids: &[Uuid]) -> Result<LoadedMap<Uuid, Arc<profile::Model>>, ApiError> {
        let profiles = repo::profiles::find_by_user_ids(&self.db, user_ids).await?;
        Ok(profiles.into_iter().map(|p| (p.user_id, Arc::new(p))).collect())
    }
}

/// One page of an author's posts: the key is the author, the page asked for and the
/// columns its selection shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthorPage {
    pub author: Uuid,
    pub page: Page<PostKey>,
    pub columns: PostColumns,
}

/// A page of posts in list order, whether more lie beyond it, and the columns read.
#[derive(Debug, Clone)]
pub struct PostPage {
    pub posts: Vec<post::Model>,
    pub more: bool,
    pub columns: PostColumns,
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

    async fn load(&self, keys: &[AuthorPage]) -> Result<LoadedMap<AuthorPage, Arc<PostPage>>, ApiError> {
        let mut by_page: KeyedMap<&Page<PostKey>, Authors> = KeyedMap::default();
        for key in keys {
            // Room for every key at once: siblings normally ask for one page.
            let authors = by_page.entry(&key.page).or_insert_with(|| Authors {
                ids: Vec::with_capacity(keys.len()),
                columns: key.columns,
                mixed: false,
            });
            authors.ids.push(key.author);
            if key.columns != authors.columns {
                // One statement reads every column for all of them.
                authors.mixed = true;
                authors.columns = PostColumns::All;
            }
        }
        let mut pages = LoadedMap::with_capacity_and_hasher(keys.len(), Default::default());
        for (page, mut authors) in by_page {
            if authors.mixed {
                // An author asked for with and without details is read once.
                authors.ids.sort_unstable();
                authors.ids.dedup();
            }
            let columns = authors.columns;
            let mut rows = repo::posts::page_per_author(&self.db, &authors.ids, page, columns).await?;
            for author in authors.ids {
                let (posts, more) =
                    finish_page(page.direction, page.limit, rows.remove(&author).unwrap_or_default());
                let found = Arc::new(PostPage { posts, more, columns });
                if authors.mixed {
                    // Every column was read: it answers the key without details too.
                    let without = AuthorPage { author, page: *page, columns: PostColumns::WithoutDetails };
                    pages.insert(without, found.clone());
                }
                pages.insert(AuthorPage { author, page: *page, columns }, found);
            }
        }
        Ok(pages)
    }
}

/// The authors a batch asks one page of posts for, and the columns read for them.
struct Authors {
    ids: Vec<Uuid>,
    columns: PostColumns,
    /// Whether some asked with details and some without.
    mixed: bool,
}

/// How many posts each author has, for `User.posts { totalCount }`.
pub struct AuthorPostCountLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for AuthorPostCountLoader {
    type Value = u64;
    type Error = ApiError;

    async fn load(&self, authors: &[Uuid]) -> Result<LoadedMap<Uuid, u64>, ApiError> {
        let mut counts = repo::posts::count_per_author(&self.db, authors).await?;
        for author in authors {
            counts.entry(*author).or_insert(0);
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles numbers, counting its batches.
    struct Doubler(Arc<std::sync::atomic::AtomicUsize>);

    impl Loader<u32> for Doubler {
        type Value = u32;
        type Error = Arc<str>;

        async fn load(&self, keys: &[u32]) -> Result<LoadedMap<u32, u32>, Arc<str>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            Ok(keys.iter().map(|k| (*k, k * 2)).collect())
        }
    }

    /// Loads through another loader of the same request: a batch that starts a batch.
    struct ThroughDoubler(DataLoader<Doubler>);

    impl Loader<u32> for ThroughDoubler {
        type Value = u32;
        type Error = Arc<str>;

        async fn load(&self, keys: &[u32]) -> Result<LoadedMap<u32, u32>, Arc<str>> {
            let doubled = self.0.load_many(keys.iter().copied()).await?;
            Ok(doubled.into_iter().map(|(k, v)| (k, v + 1)).collect())
        }
    }

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_batch_started_by_a_batch_runs() {
        let queue = BatchQueue::new();
        let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let through = queue.loader(ThroughDoubler(queue.loader(Doubler(batches.clone()))));

        let loaded = tokio::time::timeout(
            LIMIT,
            queue.run(async { futures::future::join(through.load_one(1), through.load_one(2)).await }),
        )
        .await
        .expect("the nested batch ran instead of waiting for ever");

        assert_eq!(loaded, (Ok(Some(3)), Ok(Some(5))));
        assert_eq!(batches.load(Ordering::Relaxed), 1, "both keys went in one inner batch");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_started_from_a_spawned_task_runs() {
        let queue = BatchQueue::new();
        let doubler = Arc::new(queue.loader(Doubler(Arc::default())));

        let loaded = tokio::time::timeout(
            LIMIT,
            queue.run(async {
                let doubler = doubler.clone();
                tokio::spawn(async move { doubler.load_one(21).await }).await.expect("the task ran")
            }),
        )
        .await
        .expect("the spawned task's batch ran instead of waiting for ever");

        assert_eq!(loaded, Ok(Some(42)));
    }
}
