//! `spawn_app` and the `TestApp` handle: a real server on a free loopback port, over a
//! database of its own, driven with real HTTP requests.

use std::{sync::Once, time::Duration};

use api::{
    auth::Signer,
    config::{AuthMode, Config, Secret, SecretUrl, TokenRole},
    startup::Application,
};
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Runs each listed `async fn name(backend: Backend)` as two tests: `sqlite::name` and
/// `postgres::name`. The PostgreSQL one is skipped, saying so, when `TEST_POSTGRES_URL` is
/// unset, and fails instead when `CI` is set.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = $crate::helpers::Backend::postgres() else { return };
                    super::$name(backend).await
                }
            )*
        }
    };
}

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The URL of a PostgreSQL database the test may create databases from.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `TEST_POSTGRES_URL` is set; otherwise `None` after saying the test
    /// is skipped (or a failure, under `CI`).
    pub fn postgres() -> Option<Self> {
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var_os("CI").is_some() => {
                panic!("TEST_POSTGRES_URL must be set when CI is set: PostgreSQL tests may not be skipped")
            }
            _ => {
                eprintln!("skipped: set TEST_POSTGRES_URL to run this test against PostgreSQL");
                None
            }
        }
    }
}

/// Which user cache a test runs with.
#[derive(Debug, Clone)]
pub enum CacheKind {
    InProcess,
    /// The URL of a Redis the test may write keys to, under a prefix of its own.
    Redis(String),
}

/// Runs each listed `async fn name(backend: Backend, cache: CacheKind)` as two tests:
/// `in_process::name` on SQLite, and `redis::name` on Redis (with PostgreSQL when
/// `TEST_POSTGRES_URL` is set). The Redis one is skipped, saying so, when `TEST_REDIS_URL`
/// is unset, and fails instead when `CI` is set.
#[macro_export]
macro_rules! cache_tests {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite, $crate::helpers::CacheKind::InProcess).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(cache) = $crate::helpers::redis_url() else { return };
                    let backend = $crate::helpers::Backend::postgres_if_set();
                    super::$name(backend, $crate::helpers::CacheKind::Redis(cache)).await
                }
            )*
        }
    };
}

/// `TEST_REDIS_URL`, or `None` after saying the test is skipped (a failure under `CI`).
pub fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("TEST_REDIS_URL must be set when CI is set: Redis tests may not be skipped")
        }
        _ => {
            eprintln!("skipped: set TEST_REDIS_URL to run this test against Redis");
            None
        }
    }
}

impl Backend {
    /// PostgreSQL when `TEST_POSTGRES_URL` is set, otherwise SQLite.
    pub fn postgres_if_set() -> Self {
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Backend::Postgres(url),
            _ => Backend::Sqlite,
        }
    }
}

/// Settings for `cache`, with a key prefix no other test uses.
pub fn use_cache(config: &mut Config, cache: &CacheKind) {
    config.cache_prefix = format!("quill-test-{}", Uuid::new_v4().simple());
    config.redis_url = match cache {
        CacheKind::InProcess => None,
        CacheKind::Redis(url) => Some(SecretUrl::new(url.as_str())),
    };
}

/// A database that exists for one test and is removed after it.
pub enum TestDatabase {
    Sqlite { url: String, _dir: tempfile::TempDir },
    Postgres { url: String, admin_url: String, name: String },
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("quill.db").display());
                TestDatabase::Sqlite { url, _dir: dir }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("quill_test_{}", Uuid::new_v4().simple());
                let admin =
                    Database::connect(admin_url.as_str()).await.expect("connecting to TEST_POSTGRES_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("creating the test database");
                admin.close().await.ok();
                let url = replace_database(admin_url, &name);
                TestDatabase::Postgres { url, admin_url: admin_url.clone(), name }
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite { url, .. } | TestDatabase::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let TestDatabase::Postgres { admin_url, name, .. } = self else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime; a thread of its own may block on another.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let admin = Database::connect(admin_url.as_str()).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// The URL with its database name replaced.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// The shared secret test servers verify tokens with.
pub const TEST_SECRET: &str = "quill-tests-sign-with-this-secret-of-48-bytes!!!";

/// A running server and the means to talk to it.
pub struct TestApp {
    pub address: String,
    /// An admin's token, which [`TestApp::graphql`] and [`TestApp::post_graphql`] send, so
    /// tests of other features act with every right.
    pub admin_token: String,
    /// The settings it was started with.
    pub config: Config,
    /// The server's own pool, for checking rows behind its back.
    pub db: DatabaseConnection,
    /// Sends the admin token with every request.
    pub client: reqwest::Client,
    /// Sends no token: an anonymous caller.
    pub anonymous: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Declared last: dropped after the server has stopped. `None` for a sibling instance.
    _database: Option<TestDatabase>,
}

/// Settings for a test server: every default, a free port, the given database.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::from_env();
    config.bind = "127.0.0.1:0".parse().expect("a valid address");
    config.database_url = SecretUrl::new(database_url);
    config.redis_url = None;
    config.auth = AuthMode::On;
    config.auth_jwt_secret = Some(Secret::new(TEST_SECRET));
    config
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with the settings adjusted first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let database = TestDatabase::create(&backend).await;
    let mut config = test_config(database.url());
    adjust(&mut config);
    start(config, Some(database)).await
}

/// Builds and runs a server with `config`, owning `database` when given.
async fn start(config: Config, database: Option<TestDatabase>) -> TestApp {
    let app = Application::build(&config).await.expect("building the application");
    let address = format!("http://{}", app.local_addr());
    let db = app.db().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let admin_token = Signer::new(TEST_SECRET.as_bytes(), &config)
        .and_then(|signer| signer.sign(Uuid::now_v7(), TokenRole::Admin, Duration::from_secs(3600)))
        .expect("signing the admin token");
    TestApp {
        address,
        admin_token: admin_token.clone(),
        config,
        db,
        client: http_client(Some(&admin_token)),
        anonymous: http_client(None),
        stop: Some(stop),
        server: Some(server),
        _database: database,
    }
}

impl TestApp {
    /// A second instance on the same database, cache and event channel, as behind a
    /// load balancer. Drop it before this one, which owns the database.
    pub async fn sibling(&self) -> TestApp {
        let mut config = self.config.clone();
        config.bind = "127.0.0.1:0".parse().expect("a valid address");
        start(config, None).await
    }
}

/// A client sending `token` as its bearer token with every request.
fn http_client(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("a token is a valid header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("building the HTTP client")
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            api::telemetry::init_tracing(api::config::LogFormat::Text);
        }
    });
}

impl TestApp {
    /// POSTs a GraphQL operation as an admin and returns the JSON body (asserting a 200).
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(Some(&self.admin_token), query, variables).await
    }

    /// POSTs a GraphQL operation with this bearer token (`None`: anonymously) and returns
    /// the JSON body (asserting a 200).
    pub async fn graphql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables });
        let response = self.post_graphql_as(token, &body).await;
        assert_eq!(response.status(), 200, "POST /graphql status");
        response.json().await.expect("a JSON body")
    }

    /// POSTs any JSON body to `/graphql`, as an admin.
    pub async fn post_graphql(&self, body: &Value) -> reqwest::Response {
        self.post_graphql_as(Some(&self.admin_token), body).await
    }

    /// POSTs any JSON body to `/graphql` with this bearer token (`None`: anonymously).
    pub async fn post_graphql_as(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.anonymous.post(format!("{}/graphql", self.address)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("sending the request")
    }

    /// A token for `user` in `role`, signed with the server's secret, valid for an hour.
    pub fn token(&self, user: Uuid, role: TokenRole) -> String {
        Signer::new(TEST_SECRET.as_bytes(), &self.config)
            .and_then(|signer| signer.sign(user, role, Duration::from_secs(3600)))
            .expect("signing a token")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("sending the request")
    }

    /// Runs an operation and returns its body and the SQL statements it cost, read from
    /// `db_queries_total` (process-wide: nextest runs each test in its own process).
    pub async fn graphql_counting_sql(&self, query: &str, variables: Value) -> (Value, u64) {
        let before = self.counter("db_queries_total").await;
        let body = self.graphql(query, variables).await;
        (body, self.counter("db_queries_total").await - before)
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.expect("a text body")
    }

    /// The value of an unlabelled counter on `/metrics` (0 when not yet recorded).
    pub async fn counter(&self, name: &str) -> u64 {
        counter_value(&self.metrics().await, name)
    }

    /// Creates a user through the API and returns its id.
    pub async fn create_user(&self, email: &str) -> Uuid {
        let body = self
            .graphql(
                "mutation($email: String!) { createUser(input: { email: $email }) { id } }",
                json!({ "email": email }),
            )
            .await;
        id_at(&body, "/data/createUser/id")
    }

    /// Creates a post through the API and returns its id.
    pub async fn create_post(&self, author: Uuid, title: &str) -> Uuid {
        let body = self
            .graphql(
                "mutation($a: UUID!, $t: String!) { createPost(input: { authorId: $a, title: $t }) { id } }",
                json!({ "a": author, "t": title }),
            )
            .await;
        id_at(&body, "/data/createPost/id")
    }

    /// Rows in a table, counted behind the server's back.
    pub async fn rows(&self, table: &str) -> i64 {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("counting rows")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("a count")
    }

    /// Stops the server and waits for it, as on SIGTERM.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("the server task did not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reads a counter from Prometheus text, summing over its label sets.
pub fn counter_value(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The UUID at a JSON pointer, failing the test with the body when it is absent.
pub fn id_at(body: &Value, pointer: &str) -> Uuid {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id at {pointer} in {body}"))
}

/// The `extensions.code` of each error in a response.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>").to_owned()).collect()
        })
        .unwrap_or_default()
}

#[test]
fn replace_database_keeps_credentials_and_options() {
    assert_eq!(
        replace_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t"),
        "postgres://u:p@h:5432/t?sslmode=disable"
    );
    assert_eq!(replace_database("postgres://h", "t"), "postgres://h/t");
}

/// A Redis server of the test's own on a free loopback port, to stop, slow down and
/// restart without disturbing other tests.
pub struct RedisServer {
    pub port: u16,
    process: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = RedisServer { port, process: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--enable-debug-command", "yes"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting redis-server (is it installed?)");
        self.process = Some(child);
        for _ in 0..100 {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else { return false };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else { return false };
        redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain Redis connection for looking at keys behind the server's back.
pub async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.expect("connecting to Redis")
}

/// A PostgreSQL cluster of the test's own, on a free port, to stop and start again
/// without disturbing other tests. `None` (the test is skipped, saying so) when the
/// server binaries are not installed, unless `CI` is set.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
}

impl PostgresServer {
    pub async fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL server binaries (initdb, pg_ctl) are needed under CI"
            );
            eprintln!("skipped: no PostgreSQL server binaries (initdb, pg_ctl) found");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The cluster belongs to `postgres` when we are root: initdb refuses to run as root.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = PostgresServer { dir, port, bin };
        let data = server.data();
        server.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        server.start_again().await;
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let output =
            command.args(args).current_dir(self.dir.path()).output().expect("running a PostgreSQL tool");
        assert!(output.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Starts it (again, after [`stop`](Self::stop)) and waits until it accepts connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    pub fn stop(&mut self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let _ = if is_root() {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output()
        } else {
            std::process::Command::new(program).args(["-D", &data, "-m", "immediate", "stop"]).output()
        };
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The directory holding `initdb` and `pg_ctl`: Debian keeps them out of `PATH`.
fn postgres_bin() -> Option<std::path::PathBuf> {
    let mut candidates: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin"))
        .collect();
    candidates.sort();
    candidates.reverse();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.into_iter().find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}
