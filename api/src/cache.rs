//! The user cache, read through by the user loaders: Redis shared by every instance, an
//! in-process cache for a single instance, or off.
//!
//! It fails open: every Redis call is bounded by a timeout, and an error or timeout is
//! counted, logged at most once per interval, and answered as a miss, so the request is
//! served from the database. After a failure Redis is left alone for a moment (so a dead
//! Redis costs one timeout, not one per call), then tried again, with no restart.
//!
//! Writes replace a user's entry with a short-lived tombstone after they commit. Write-
//! backs never overwrite an entry (`SET … NX`), so a reader that loaded a row before the
//! write cannot put it back after the invalidation: the tombstone is in the way. A
//! write-back is also dropped when its load took longer than half the tombstone's life.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use entity::user;
use moka::future::Cache;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::{
    KeyedMap,
    config::{CacheMode, Config, SecretUrl},
    telemetry::{CACHE_ERRORS_TOTAL, CACHE_HITS_TOTAL, CACHE_MISSES_TOTAL},
};

/// How long a write keeps readers from caching the user it changed.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(10);
/// After a Redis failure, calls skip Redis for this long before trying it again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// At most one warning about Redis per this interval.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Stored in place of a user whose row just changed.
const TOMBSTONE: &str = "-";

/// How the cache is set up.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub ttl: Duration,
    /// Bound on every Redis call.
    pub timeout: Duration,
    /// Keys are `{prefix}:v1:…`; the version changes whenever the cached shape does.
    pub prefix: String,
    /// Zero but in tests of the invalidation race (see `Config`).
    pub write_back_delay: Duration,
}

impl From<&Config> for CacheSettings {
    fn from(config: &Config) -> Self {
        Self {
            ttl: Duration::from_secs(config.cache_ttl_secs),
            timeout: Duration::from_millis(config.cache_timeout_ms),
            prefix: config.cache_prefix.clone(),
            write_back_delay: Duration::from_millis(config.cache_write_back_delay_ms),
        }
    }
}

/// The user cache; cheap to clone.
#[derive(Clone)]
pub struct UserCache(Arc<Inner>);

enum Backend {
    Off,
    Local(Box<Local>),
    Redis(Remote),
}

struct Inner {
    backend: Backend,
    settings: CacheSettings,
}

/// The in-process cache: the same rules as Redis, for one instance. A user and their
/// tombstone share one entry, so a write-back that finds a tombstone adds nothing, in one
/// atomic step, as `SET … NX` does in Redis.
struct Local {
    users: Cache<Uuid, Entry>,
    emails: Cache<String, Uuid>,
}

#[derive(Clone)]
enum Entry {
    User(Arc<user::Model>),
    Tombstone,
}

/// Users live for the cache TTL, tombstones for [`TOMBSTONE_TTL`].
struct EntryExpiry {
    ttl: Duration,
}

impl moka::Expiry<Uuid, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &Uuid, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(match entry {
            Entry::User(_) => self.ttl,
            Entry::Tombstone => TOMBSTONE_TTL,
        })
    }

    fn expire_after_update(
        &self,
        id: &Uuid,
        entry: &Entry,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(id, entry, at)
    }
}

struct Remote {
    connection: ConnectionManager,
    /// Milliseconds since `epoch` before which Redis is not tried (after a failure).
    skip_until_ms: AtomicU64,
    /// Milliseconds since `epoch` of the last warning.
    warned_at_ms: AtomicU64,
    epoch: Instant,
}

/// What `/readyz` reports about the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHealth {
    Off,
    InProcess,
    Up,
    /// Redis does not answer: requests are served from the database.
    Degraded,
}

impl CacheHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheHealth::Off => "off",
            CacheHealth::InProcess => "in-process",
            CacheHealth::Up => "up",
            CacheHealth::Degraded => "degraded",
        }
    }
}

impl UserCache {
    /// The user cache the settings describe: off under `CACHE=off`, else Redis when
    /// `REDIS_URL` is set, else in-process.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let settings = CacheSettings::from(config);
        Ok(match (config.cache, config.redis_url.as_ref().filter(|url| !url.expose().is_empty())) {
            (CacheMode::Off, _) => Self::off(settings),
            (CacheMode::Auto, Some(url)) => Self::redis(url, settings)?,
            (CacheMode::Auto, None) => Self::in_process(settings),
        })
    }

    pub fn off(settings: CacheSettings) -> Self {
        Self(Arc::new(Inner { backend: Backend::Off, settings }))
    }

    pub fn in_process(settings: CacheSettings) -> Self {
        let local = Local {
            users: Cache::builder()
                .max_capacity(100_000)
                .expire_after(EntryExpiry { ttl: settings.ttl })
                .build(),
            emails: Cache::builder().max_capacity(100_000).time_to_live(settings.ttl).build(),
        };
        Self(Arc::new(Inner { backend: Backend::Local(Box::new(local)), settings }))
    }

    /// A Redis cache. Connects lazily, so a Redis that is down at start delays nothing.
    pub fn redis(url: &SecretUrl, settings: CacheSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("the Redis URL is not valid: {}", url.scrub(&e.to_string())))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("setting up the Redis connection: {}", url.scrub(&e.to_string())))?;
        let remote = Remote {
            connection,
            skip_until_ms: AtomicU64::new(0),
            warned_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        Ok(Self(Arc::new(Inner { backend: Backend::Redis(remote), settings })))
    }

    fn user_key(&self, id: Uuid) -> String {
        format!("{}:v1:user:{id}", self.0.settings.prefix)
    }

    fn email_key(&self, email: &str) -> String {
        format!("{}:v1:email:{email}", self.0.settings.prefix)
    }

    /// Whether the cache is Redis, shared by every instance.
    pub fn is_shared(&self) -> bool {
        matches!(self.0.backend, Backend::Redis(_))
    }

    fn document_key(&self, hash: &str) -> String {
        format!("{}:v1:apq:{hash}", self.0.settings.prefix)
    }

    /// A persisted query's document by its hash, from Redis; `None` when absent or when
    /// Redis fails (the client then sends the document again).
    pub async fn get_document(&self, hash: &str) -> Option<String> {
        let Backend::Redis(remote) = &self.0.backend else { return None };
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.document_key(hash));
        self.call::<Option<String>>(remote, "GET", &cmd).await.flatten()
    }

    /// Keeps a persisted query's document in Redis for `ttl`.
    pub async fn put_document(&self, hash: &str, document: &str, ttl: Duration) {
        let Backend::Redis(remote) = &self.0.backend else { return };
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.document_key(hash)).arg(document).arg("PX").arg(millis(ttl));
        self.call::<()>(remote, "SET", &cmd).await;
    }

    pub fn is_enabled(&self) -> bool {
        !matches!(self.0.backend, Backend::Off)
    }

    /// The cached users among `ids`; an id that is absent, tombstoned or unreadable is
    /// simply not in the map.
    pub async fn get_users(&self, ids: &[Uuid]) -> KeyedMap<Uuid, user::Model> {
        if ids.is_empty() {
            return KeyedMap::default();
        }
        let found = match &self.0.backend {
            Backend::Off => return KeyedMap::default(),
            Backend::Local(local) => {
                let mut found = KeyedMap::with_capacity_and_hasher(ids.len(), Default::default());
                for id in ids {
                    if let Some(Entry::User(user)) = local.users.get(id).await {
                        found.insert(*id, user.as_ref().clone());
                    }
                }
                found
            }
            Backend::Redis(remote) => {
                let keys: Vec<String> = ids.iter().map(|id| self.user_key(*id)).collect();
                let values: Vec<Option<Vec<u8>>> =
                    match self.call(remote, "MGET", &*redis::cmd("MGET").arg(&keys)).await {
                        Some(values) => values,
                        None => return KeyedMap::default(),
                    };
                ids.iter()
                    .zip(values)
                    .filter_map(|(id, value)| {
                        let bytes = value.filter(|v| v != TOMBSTONE.as_bytes())?;
                        match serde_json::from_slice::<user::Model>(&bytes) {
                            Ok(user) => Some((*id, user)),
                            Err(error) => {
                                tracing::warn!(%id, %error, "unreadable cached user: treated as a miss");
                                None
                            }
                        }
                    })
                    .collect()
            }
        };
        metrics::counter!(CACHE_HITS_TOTAL).increment(found.len() as u64);
        metrics::counter!(CACHE_MISSES_TOTAL).increment((ids.len() - found.len()) as u64);
        found
    }

    /// Caches users just loaded from the database, unless a write has tombstoned them
    /// since or the load began so long ago that a tombstone may have come and gone.
    pub async fn put_users(&self, users: &[user::Model], loaded_since: Instant) {
        if users.is_empty() {
            return;
        }
        if !self.0.settings.write_back_delay.is_zero() {
            tokio::time::sleep(self.0.settings.write_back_delay).await;
        }
        if loaded_since.elapsed() > TOMBSTONE_TTL / 2 {
            return;
        }
        let ttl = self.0.settings.ttl;
        match &self.0.backend {
            Backend::Off => {}
            Backend::Local(local) => {
                for user in users {
                    local
                        .users
                        .entry(user.id)
                        .or_insert_with(async { Entry::User(Arc::new(user.clone())) })
                        .await;
                }
            }
            Backend::Redis(remote) => {
                let mut pipe = redis::pipe();
                for user in users {
                    let Ok(json) = serde_json::to_vec(user) else { continue };
                    pipe.cmd("SET")
                        .arg(self.user_key(user.id))
                        .arg(json)
                        .arg("PX")
                        .arg(millis(ttl))
                        .arg("NX")
                        .ignore();
                }
                self.call::<()>(remote, "SET", &pipe).await;
            }
        }
    }

    /// The user ids cached for these emails, in one round trip. The caller checks that
    /// each user still has the email.
    pub async fn get_emails(&self, emails: &[String]) -> Vec<Uuid> {
        if emails.is_empty() {
            return Vec::new();
        }
        match &self.0.backend {
            Backend::Off => Vec::new(),
            Backend::Local(local) => {
                let mut ids = Vec::with_capacity(emails.len());
                for email in emails {
                    ids.extend(local.emails.get(email).await);
                }
                ids
            }
            Backend::Redis(remote) => {
                let keys: Vec<String> = emails.iter().map(|e| self.email_key(e)).collect();
                let values: Option<Vec<Option<String>>> =
                    self.call(remote, "MGET", &*redis::cmd("MGET").arg(&keys)).await;
                values.unwrap_or_default().into_iter().flatten().filter_map(|id| id.parse().ok()).collect()
            }
        }
    }

    /// Maps each user's email to their id, in one round trip. A plain `SET`: a stale
    /// mapping is harmless (readers check the user still has the email), so the newest wins.
    pub async fn put_emails(&self, users: &[user::Model]) {
        if users.is_empty() {
            return;
        }
        match &self.0.backend {
            Backend::Off => {}
            Backend::Local(local) => {
                for user in users {
                    local.emails.insert(user.email.clone(), user.id).await;
                }
            }
            Backend::Redis(remote) => {
                let ttl = millis(self.0.settings.ttl);
                let mut pipe = redis::pipe();
                for user in users {
                    pipe.cmd("SET")
                        .arg(self.email_key(&user.email))
                        .arg(user.id.to_string())
                        .arg("PX")
                        .arg(ttl)
                        .ignore();
                }
                self.call::<()>(remote, "SET", &pipe).await;
            }
        }
    }

    /// Called after a write to this user commits: replaces the entry with a tombstone.
    pub async fn invalidate_user(&self, id: Uuid) {
        match &self.0.backend {
            Backend::Off => {}
            Backend::Local(local) => {
                local.users.insert(id, Entry::Tombstone).await;
            }
            Backend::Redis(remote) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.user_key(id)).arg(TOMBSTONE).arg("PX").arg(millis(TOMBSTONE_TTL));
                self.call::<()>(remote, "SET", &cmd).await;
            }
        }
    }

    /// What `/readyz` says about the cache; for Redis, a PING within the timeout.
    pub async fn health(&self) -> CacheHealth {
        match &self.0.backend {
            Backend::Off => CacheHealth::Off,
            Backend::Local(_) => CacheHealth::InProcess,
            Backend::Redis(remote) => {
                let mut connection = remote.connection.clone();
                let ping = tokio::time::timeout(
                    self.0.settings.timeout,
                    redis::cmd("PING").query_async::<String>(&mut connection),
                )
                .await;
                match ping {
                    Ok(Ok(_)) => CacheHealth::Up,
                    _ => CacheHealth::Degraded,
                }
            }
        }
    }

    /// Runs one Redis command or pipeline within the timeout; `None` on any failure.
    async fn call<T: redis::FromRedisValue>(
        &self,
        remote: &Remote,
        what: &'static str,
        command: &impl RedisCall,
    ) -> Option<T> {
        let now_ms = remote.epoch.elapsed().as_millis() as u64;
        if now_ms < remote.skip_until_ms.load(Ordering::Relaxed) {
            metrics::counter!(CACHE_ERRORS_TOTAL, "reason" => "skipped").increment(1);
            return None;
        }
        let mut connection = remote.connection.clone();
        let outcome = tokio::time::timeout(self.0.settings.timeout, command.run::<T>(&mut connection)).await;
        let reason = match outcome {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => {
                self.warn(remote, now_ms, what, &error.to_string());
                "error"
            }
            Err(_) => {
                self.warn(remote, now_ms, what, "timed out");
                "timeout"
            }
        };
        metrics::counter!(CACHE_ERRORS_TOTAL, "reason" => reason).increment(1);
        remote.skip_until_ms.store(now_ms + RETRY_AFTER.as_millis() as u64, Ordering::Relaxed);
        None
    }

    fn warn(&self, remote: &Remote, now_ms: u64, what: &str, error: &str) {
        let last = remote.warned_at_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && remote
                .warned_at_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(command = what, error, "Redis is unavailable: serving from the database");
        }
    }
}

/// A command or a pipeline: one round trip.
trait RedisCall {
    fn run<T: redis::FromRedisValue>(
        &self,
        connection: &mut ConnectionManager,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send;
}

impl RedisCall for redis::Cmd {
    fn run<T: redis::FromRedisValue>(
        &self,
        connection: &mut ConnectionManager,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(connection)
    }
}

impl RedisCall for redis::Pipeline {
    fn run<T: redis::FromRedisValue>(
        &self,
        connection: &mut ConnectionManager,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(connection)
    }
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis().max(1) as u64
}
