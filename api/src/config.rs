//! The one typed configuration: every setting is a flag and an environment variable
//! (a `.env` file is read first when present), parsed and checked once at start. It uses
//! nothing else of the crate: each module builds its own settings from a `&Config`.

use std::{convert::Infallible, fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::{Args, Parser, Subcommand};

/// Quill: a GraphQL API for users, their profiles and their posts.
#[derive(Debug, Parser)]
#[command(name = "api", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve GraphQL over HTTP (the default).
    Serve,
    /// Print the GraphQL schema (SDL) to stdout: `api export-schema > schema.graphql`.
    ExportSchema,
    /// Fill the database with sample users, profiles and posts; running it again adds
    /// only what is missing.
    Seed(SeedArgs),
    /// Print a bearer token for a user, signed with `AUTH_JWT_SECRET` (or the embedded
    /// default's development secret): for GraphiQL's headers editor and for scripts.
    Token(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user the token speaks for: their email (looked up), or an id (taken as given,
    /// so an admin token for provisioning may name a service that is no user).
    #[arg(long)]
    pub user: String,
    /// What the token may do: `user` (their own things) or `admin` (everything).
    #[arg(long, value_enum, default_value_t = TokenRole::User)]
    pub role: TokenRole,
    /// How long the token is valid (`30m`, `1h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenRole {
    User,
    Admin,
}

/// A token's lifetime: a positive duration of at most a year.
fn parse_ttl(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|e| format!("`{value}` is not a duration: {e}"))?;
    if ttl.is_zero() || ttl > Duration::from_secs(366 * 24 * 3600) {
        return Err(format!("`{value}`: a token lives more than nothing and at most a year"));
    }
    Ok(ttl)
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// How many sample users should exist.
    #[arg(long, default_value_t = 100)]
    pub users: u32,
    /// How many posts each sample user should have.
    #[arg(long, default_value_t = 10)]
    pub posts_per_user: u32,
}

/// Settings shared by every command.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (tests do this).
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8000", global = true)]
    pub bind: SocketAddr,

    /// Database to use: `sqlite://file.db?mode=rwc` (embedded) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://quill.db?mode=rwc",
        hide_env_values = true,
        global = true
    )]
    pub database_url: SecretUrl,

    /// Upper bound of the connection pool: requests beyond it wait for a free connection.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub db_max_connections: u32,

    /// Seconds an idle pooled connection is kept before it is closed.
    #[arg(long, env = "DB_IDLE_TIMEOUT_SECS", default_value_t = 30, global = true)]
    pub db_idle_timeout_secs: u64,

    /// Seconds to wait for a connection (new or from the pool) before failing.
    #[arg(long, env = "DB_CONNECT_TIMEOUT_SECS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub db_connect_timeout_secs: u64,

    /// Redis for the shared user cache. Unset: an in-process cache (one instance only).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<SecretUrl>,

    /// How long a cached user lives, in seconds.
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub cache_ttl_secs: u64,

    /// `auto`: Redis when `REDIS_URL` is set, else in-process; `off`: no user cache.
    #[arg(long, env = "CACHE", value_enum, default_value_t = CacheMode::Auto, global = true)]
    pub cache: CacheMode,

    /// Bound on every Redis call, in milliseconds: past it the request is served from the
    /// database (the cache fails open).
    #[arg(long, env = "CACHE_TIMEOUT_MS", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=60_000), global = true)]
    pub cache_timeout_ms: u64,

    /// First part of every cache key (`{prefix}:v1:user:{id}`), so several deployments
    /// or tests can share one Redis.
    #[arg(long, env = "CACHE_PREFIX", default_value = "quill", global = true)]
    pub cache_prefix: String,

    /// Fault injection for tests: wait this long before writing loaded users back to the
    /// cache, which widens the window of the read-then-invalidate race the tombstones close.
    #[arg(long, env = "CACHE_WRITE_BACK_DELAY_MS", default_value_t = 0, hide = true, global = true)]
    pub cache_write_back_delay_ms: u64,

    /// Seconds in-flight requests get to finish after SIGTERM or ctrl-c.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10, global = true)]
    pub shutdown_grace_secs: u64,

    /// Seconds to keep serving after SIGTERM with `/readyz` answering 503, so a load
    /// balancer stops sending traffic before the listener closes.
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value_t = 0, global = true)]
    pub shutdown_delay_secs: u64,

    /// Longest a request may run, in seconds, before it is answered with 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub request_timeout_secs: u64,

    /// Seconds a client has to send a whole request head, counted from connecting and from
    /// the first byte of each later request; then the connection is closed.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub http_header_timeout_secs: u64,

    /// Seconds a kept-alive connection may wait for its next request before it is closed;
    /// above the 60 s of common load balancers, so that they close first.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECS", default_value_t = 75,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub http_idle_timeout_secs: u64,

    /// Most client connections open at once; beyond it new ones are refused at once.
    /// Unset: three quarters of the process's descriptor limit, less room for the pool.
    #[arg(long, env = "MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_connections: Option<u64>,

    /// Seconds a WebSocket client has to send `connection_init`; then it is closed (4408).
    #[arg(long, env = "WS_INIT_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub ws_init_timeout_secs: u64,

    /// Seconds between the server's keep-alive pings on a WebSocket (`ping`, or `ka` in
    /// the legacy protocol); below the 60 s after which proxies drop a quiet connection.
    #[arg(long, env = "WS_KEEPALIVE_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub ws_keepalive_secs: u64,

    /// Most WebSocket connections open at once on this instance; more are refused with 503.
    /// Each also counts under `MAX_CONNECTIONS`.
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub ws_max_connections: u64,

    /// Most subscriptions (and queries or mutations in flight) on one WebSocket; one more
    /// is answered with an error coded `TOO_MANY_SUBSCRIPTIONS`.
    #[arg(long, env = "WS_MAX_SUBSCRIPTIONS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub ws_max_subscriptions: u64,

    /// Messages queued for one WebSocket before its client counts as too slow to keep up
    /// and is closed with 1013 (try again later); the other subscribers never wait on it.
    #[arg(long, env = "WS_SEND_BUFFER", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub ws_send_buffer: u64,

    /// Most GraphQL requests executing at once; more wait their turn. Unset: 32 per core.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS",
          value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub max_concurrent_requests: Option<u64>,

    /// Most requests waiting their turn; one more is refused at once with 503 and
    /// `Retry-After` (load shedding), so the latency of those admitted stays bounded.
    #[arg(long, env = "MAX_QUEUED_REQUESTS", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000), global = true)]
    pub max_queued_requests: u64,

    /// Longest a request waits its turn, in milliseconds, before it is refused with 503.
    #[arg(long, env = "QUEUE_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=600_000), global = true)]
    pub queue_timeout_ms: u64,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..), global = true)]
    pub max_body_bytes: u64,

    /// Most operations in one batched request (a JSON array).
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=1000), global = true)]
    pub max_batch_size: u64,

    /// Deepest field nesting of a query (GraphiQL's introspection query needs 13).
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(2..=1000), global = true)]
    pub max_query_depth: u64,

    /// Highest cost of a query: a field costs 1, a connection costs its page size
    /// (`first`/`last`, 20 when absent) times what it selects.
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(10..), global = true)]
    pub max_query_complexity: u64,

    /// Most aliased fields in one request document.
    #[arg(long, env = "MAX_ALIASES", default_value_t = 30, global = true)]
    pub max_aliases: u64,

    /// Most root fields in one operation.
    #[arg(long, env = "MAX_ROOT_FIELDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_root_fields: u64,

    /// Most fields in a document once its fragments are expanded (stops fragment bombs
    /// before the validator walks them).
    #[arg(long, env = "MAX_EXPANDED_FIELDS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(10..), global = true)]
    pub max_expanded_fields: u64,

    /// Origins whose web pages may call Quill (CORS): exact origins, comma-separated
    /// (`https://app.example.com,http://localhost:5173`), or `*` for any (then without
    /// credentials). Unset: same-origin pages only.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_parser = parse_origins, global = true)]
    pub cors_allowed_origins: Option<AllowedOrigins>,

    /// Persisted queries (Apollo's APQ): `auto` accepts and keeps documents by hash, `off`
    /// answers hashes `PersistedQueryNotSupported`, `only` runs the documents of
    /// `PERSISTED_QUERIES_MANIFEST` and nothing else.
    #[arg(long, env = "PERSISTED_QUERIES", value_enum, default_value_t = PersistedQueryMode::Auto, global = true)]
    pub persisted_queries: PersistedQueryMode,

    /// An Apollo persisted-query manifest (JSON), the documents `PERSISTED_QUERIES=only` runs.
    #[arg(long, env = "PERSISTED_QUERIES_MANIFEST", global = true)]
    pub persisted_queries_manifest: Option<std::path::PathBuf>,

    /// Largest document kept as a persisted query, in bytes; a larger one runs but is not kept.
    #[arg(long, env = "MAX_PERSISTED_QUERY_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_persisted_query_bytes: u64,

    /// Whether clients may introspect the schema (GraphiQL and code generators need it).
    #[arg(long, env = "INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub introspection: bool,

    /// `on`: requests are authenticated by bearer tokens and the access rules apply; `off`:
    /// no rules at all, every caller may do everything (logged as a warning at start).
    #[arg(long, env = "AUTH", value_enum, default_value_t = AuthMode::On, global = true)]
    pub auth: AuthMode,

    /// Shared secret (HS256) that tokens are signed with; at least 32 bytes. Unset, with
    /// SQLite on a loopback address: a development secret kept beside the database file.
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true, global = true)]
    pub auth_jwt_secret: Option<Secret>,

    /// Public keys that tokens are signed with (RS256, ES256…), as a JWKS document at an
    /// `http(s)://` or `file://` URL; keys are chosen by `kid`. Instead of a secret.
    #[arg(long, env = "AUTH_JWKS_URL", global = true)]
    pub auth_jwks_url: Option<String>,

    /// The `iss` every token must carry. Unset: not checked.
    #[arg(long, env = "AUTH_ISSUER", global = true)]
    pub auth_issuer: Option<String>,

    /// The `aud` every token must carry (one of them, when a token has several).
    /// Unset: not checked.
    #[arg(long, env = "AUTH_AUDIENCE", global = true)]
    pub auth_audience: Option<String>,

    /// Seconds of clock skew allowed when checking `exp` and `nbf`.
    #[arg(long, env = "AUTH_LEEWAY_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=300), global = true)]
    pub auth_leeway_secs: u64,

    /// Where the token carries the user id: a claim name, or a JSON pointer into the
    /// claims (`/https:~1~1example.com~1claims/user_id`) for providers that nest them.
    #[arg(long, env = "AUTH_SUBJECT_CLAIM", default_value = "sub", global = true)]
    pub auth_subject_claim: String,

    /// Where the token carries the role (`user` or `admin`; absent: `user`): a claim
    /// name or a JSON pointer. A list of roles counts as `admin` when it holds `admin`.
    #[arg(long, env = "AUTH_ROLE_CLAIM", default_value = "role", global = true)]
    pub auth_role_claim: String,

    /// Log format: human-readable lines or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// A connection URL that may carry a password. `Debug` and `Display` show `***` in the
/// password's place, so neither a printed `Config` nor an error message can leak it; only
/// the code that connects calls [`SecretUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as given, password included: to connect with, never to print.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with this URL, wherever it appears, shown without its password: for the
    /// errors of libraries that quote the URL they were given.
    pub fn scrub(&self, text: &str) -> String {
        let redacted = redact(&self.0);
        if redacted == self.0 { text.to_owned() } else { text.replace(&self.0, &redacted) }
    }
}

impl FromStr for SecretUrl {
    type Err = Infallible;

    fn from_str(url: &str) -> Result<Self, Infallible> {
        Ok(Self::new(url))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact(&self.0), f)
    }
}

/// The URL with `***` for its password, if it has one. The userinfo is taken to end at
/// the last `@`, so a password holding an unescaped `@` is hidden whole.
fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|scheme| scheme + 3) else { return url.to_owned() };
    let Some(at) = url.rfind('@').filter(|&at| at >= start) else { return url.to_owned() };
    match url[start..at].find(':') {
        Some(colon) => format!("{}***{}", &url[..start + colon + 1], &url[at..]),
        None => url.to_owned(),
    }
}

/// A secret setting: `Debug` and `Display` show `***`, so a printed `Config` cannot leak
/// it; only the code that uses it calls [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself: to sign or verify with, never to print.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(secret: &str) -> Result<Self, Infallible> {
        Ok(Self::new(secret))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Which cross-origin pages may call Quill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin, without credentials (a browser then sends no cookies or auth headers
    /// it manages itself).
    Any,
    /// These origins exactly (`scheme://host[:port]`, lower-cased), with credentials.
    Exact(Vec<String>),
}

/// Parses `CORS_ALLOWED_ORIGINS`: `*`, or origins separated by commas.
pub fn parse_origins(value: &str) -> Result<AllowedOrigins, String> {
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|item| !item.is_empty()).collect();
    match items.as_slice() {
        [] => Err("no origin given: list origins such as `https://app.example.com`, or `*`".to_owned()),
        ["*"] => Ok(AllowedOrigins::Any),
        _ if items.contains(&"*") => Err("`*` cannot be combined with other origins".to_owned()),
        _ => items.iter().map(|item| parse_origin(item)).collect::<Result<_, _>>().map(AllowedOrigins::Exact),
    }
}

/// One origin as a browser sends it in `Origin`: a scheme, a host and maybe a port.
fn parse_origin(item: &str) -> Result<String, String> {
    let not_an_origin =
        || format!("`{item}` is not an origin: write it as scheme://host[:port], with no path");
    let uri: axum::http::Uri = item.parse().map_err(|_| not_an_origin())?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(not_an_origin());
    };
    let origin = format!("{scheme}://{authority}").to_ascii_lowercase();
    let exact = item.to_ascii_lowercase() == origin;
    if !matches!(scheme, "http" | "https") || authority.as_str().contains('@') || !exact {
        return Err(not_an_origin());
    }
    Ok(origin)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PersistedQueryMode {
    Off,
    Auto,
    Only,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    Auto,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The settings as the environment and the defaults give them, ignoring the command
    /// line: what a test or an embedding program starts from.
    pub fn from_env() -> Self {
        Cli::parse_from(["api"]).config
    }

    pub fn db_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.db_idle_timeout_secs)
    }

    pub fn db_connect_timeout(&self) -> Duration {
        Duration::from_secs(self.db_connect_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins_are_exact_origins_or_a_lone_star() {
        assert_eq!(parse_origins("*"), Ok(AllowedOrigins::Any));
        assert_eq!(
            parse_origins(" https://App.example.com , http://localhost:5173"),
            Ok(AllowedOrigins::Exact(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:5173".to_owned()
            ]))
        );
        for bad in [
            "",
            " , ",
            "*,https://a.example",
            "app.example.com",
            "https://a.example/",
            "https://a.example/path",
            "https://a.example?x=1",
            "ftp://a.example",
            "https://user@a.example",
            "null",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// Every setting's environment variable, as clap knows them.
    fn environment_variables() -> Vec<String> {
        use clap::CommandFactory as _;
        Cli::command()
            .get_arguments()
            .filter(|argument| !argument.is_hide_set())
            .filter_map(|argument| argument.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_setting_is_in_the_readme_and_in_the_env_sample() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
        let sample = std::fs::read_to_string(format!("{root}/.env.sample")).expect(".env.sample");
        let names = environment_variables();

        assert!(names.len() > 30, "{names:?}");
        for name in names {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in the README's configuration table"
            );
            let in_sample = sample
                .lines()
                .any(|line| line.trim_start_matches(['#', ' ']).split('=').next() == Some(name.as_str()));
            assert!(in_sample, "{name} is not in .env.sample");
        }
    }

    #[test]
    fn printing_the_settings_shows_no_password() {
        let cli = Cli::try_parse_from([
            "api",
            "--database-url",
            "postgres://u:hunter2@db.example/quill",
            "--redis-url",
            "redis://:hunter2@cache.example",
            "--auth-jwt-secret",
            "hunter2-hunter2-hunter2-hunter2-hunter2",
        ])
        .expect("valid settings");

        let printed = format!("{:?}", cli.config);

        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains(r#"database_url: "postgres://u:***@db.example/quill""#), "{printed}");
        assert!(printed.contains(r#"redis_url: Some("redis://:***@cache.example")"#), "{printed}");
        assert!(printed.contains(r#"auth_jwt_secret: Some("***")"#), "{printed}");
    }

    #[test]
    fn a_url_is_displayed_without_its_password_and_connects_with_it() {
        let url = SecretUrl::new("postgres://quill:hunter2@db.example:5432/quill");

        assert_eq!(url.to_string(), "postgres://quill:***@db.example:5432/quill");
        assert_eq!(url.expose(), "postgres://quill:hunter2@db.example:5432/quill");
        assert_eq!(
            SecretUrl::new("redis://:hunter2@cache.example").to_string(),
            "redis://:***@cache.example"
        );
        assert_eq!(
            SecretUrl::new("postgres://u:p@ss@db.example/quill").to_string(),
            "postgres://u:***@db.example/quill"
        );
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        for url in
            ["sqlite://quill.db?mode=rwc", "postgres://quill@db.example/quill", "redis://cache.example:6379"]
        {
            let secret = SecretUrl::new(url);

            assert_eq!(secret.to_string(), url);
            assert_eq!(format!("{secret:?}"), format!("{url:?}"));
            assert_eq!(secret.scrub(&format!("cannot reach '{url}'")), format!("cannot reach '{url}'"));
        }
    }

    #[test]
    fn a_message_quoting_the_url_is_scrubbed_of_its_password() {
        let url = SecretUrl::new("postgres://u:hunter2@db.example/quill");

        let message =
            url.scrub("The connection string 'postgres://u:hunter2@db.example/quill' cannot be parsed.");

        assert_eq!(message, "The connection string 'postgres://u:***@db.example/quill' cannot be parsed.");
    }

    #[test]
    fn urls_from_the_environment_are_left_out_of_the_help() {
        use clap::CommandFactory as _;
        let command = Cli::command();
        for id in ["database_url", "redis_url", "auth_jwt_secret"] {
            let argument = command.get_arguments().find(|a| a.get_id() == id).expect("a setting");
            assert!(argument.is_hide_env_values_set(), "`--help` would print {id} with its password");
        }
    }

    #[test]
    fn a_bad_origin_stops_the_server_at_start_with_one_line() {
        let error = Cli::try_parse_from(["api", "--cors-allowed-origins", "https://a.example/app"])
            .expect_err("a path is not part of an origin");

        let message = error.to_string();
        assert!(message.contains("`https://a.example/app` is not an origin"), "{message}");
    }
}
