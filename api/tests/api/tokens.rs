//! Bearer tokens: those that must be refused (each a 401 with a `WWW-Authenticate`
//! challenge and nothing run), keys from a JWKS served on loopback and rotated mid-test,
//! the refusal to start an exposed server without authentication, the embedded default's
//! development secret, and `api token`.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use api::config::{AuthMode, TokenRole};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TEST_SECRET, TestApp, TestDatabase, spawn_app_with, test_config};

const ISSUER: &str = "https://auth.example.com/";
const AUDIENCE: &str = "quill";
/// Creates a user with a new email each time, so every accepted token adds a row.
fn create_user() -> Value {
    json!({
        "query": "mutation($e: String!) { createUser(input: { email: $e }) { id } }",
        "variables": { "e": format!("{}@example.com", Uuid::new_v4().simple()) },
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims a server with [`ISSUER`] and [`AUDIENCE`] accepts, for a new admin.
fn good_claims() -> Value {
    json!({ "sub": Uuid::now_v7(), "role": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600 })
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret).unwrap())
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with its parts written out, signature and all.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// POSTs a mutation with this `Authorization` header and returns (status, challenge, body).
async fn attempt(app: &TestApp, authorization: &str) -> (u16, String, Value) {
    let response = app
        .anonymous
        .post(format!("{}/graphql", app.address))
        .header("authorization", authorization)
        .json(&create_user())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, response.json().await.unwrap())
}

#[tokio::test]
async fn every_bad_token_is_refused_with_401_and_runs_nothing() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.auth_issuer = Some(ISSUER.to_owned());
        config.auth_audience = Some(AUDIENCE.to_owned());
    })
    .await;
    let secret = TEST_SECRET.as_bytes();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good_claims();
        change(&mut claims);
        hs256(&claims, secret)
    };
    let good = hs256(&good_claims(), secret);
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let mut claims = good_claims();
        claims["sub"] = json!(Uuid::now_v7());
        format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2])
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", format!("Bearer {}", with(&|c| c["exp"] = json!(now() - 120))), "expired"),
        ("not yet valid", format!("Bearer {}", with(&|c| c["nbf"] = json!(now() + 120))), "not valid yet"),
        (
            "no expiry",
            format!("Bearer {}", with(&|c| drop(c.as_object_mut().unwrap().remove("exp")))),
            "no expiry",
        ),
        (
            "wrong issuer",
            format!("Bearer {}", with(&|c| c["iss"] = json!("https://evil.example/"))),
            "issuer",
        ),
        (
            "no issuer",
            format!("Bearer {}", with(&|c| drop(c.as_object_mut().unwrap().remove("iss")))),
            "issuer",
        ),
        ("wrong audience", format!("Bearer {}", with(&|c| c["aud"] = json!("someone-else"))), "audience"),
        ("tampered payload", format!("Bearer {tampered}"), "signature"),
        (
            "another secret",
            format!("Bearer {}", hs256(&good_claims(), b"another-secret-another-secret-another-secret")),
            "signature",
        ),
        (
            "alg: none",
            format!("Bearer {}", forged(&json!({ "alg": "none", "typ": "JWT" }), &good_claims(), b"")),
            "not a JWT",
        ),
        ("subject not a user id", format!("Bearer {}", with(&|c| c["sub"] = json!("alice"))), "subject"),
        ("unknown role", format!("Bearer {}", with(&|c| c["role"] = json!("root"))), "role"),
        ("garbage", "Bearer not.a.token".to_owned(), "not a JWT"),
        ("no token", "Bearer".to_owned(), "empty"),
        ("another scheme", format!("Basic {}", b64(b"admin:admin")), "Bearer <token>"),
        ("a quote in the token", "Bearer abc\"def".to_owned(), "characters"),
    ];

    for (case, authorization, says) in &cases {
        let (status, challenge, body) = attempt(&app, authorization).await;

        assert_eq!(status, 401, "{case}: {body}");
        assert!(challenge.starts_with("Bearer error=\""), "{case}: {challenge}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{case}: {body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(says), "{case}: {body}");
        assert_eq!(body.get("data"), None, "{case}: {body}");
    }
    assert_eq!(app.rows("users").await, 0, "a refused token ran its mutation");

    let (status, _, body) = attempt(&app, &format!("Bearer {good}")).await;
    assert_eq!((status, app.rows("users").await), (200, 1), "the good token works: {body}");
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let token = app.token(Uuid::now_v7(), TokenRole::Admin);

    let response = app
        .anonymous
        .post(format!("{}/graphql", app.address))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .json(&create_user())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(app.rows("users").await, 0);
}

#[tokio::test]
async fn a_get_query_with_a_bad_token_is_refused_too() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;

    let response = app
        .anonymous
        .get(format!("{}/graphql?query=%7B__typename%7D", app.address))
        .header("apollo-require-preflight", "true")
        .header("authorization", "Bearer x.y.z")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
}

/// A JWKS document served on a free loopback port, replaceable, counting its reads.
struct KeyServer {
    url: String,
    document: Arc<Mutex<Value>>,
    reads: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(document: Value) -> Self {
        let document = Arc::new(Mutex::new(document));
        let reads = Arc::new(AtomicUsize::new(0));
        let router = {
            let (document, reads) = (document.clone(), reads.clone());
            axum::Router::new().route(
                "/jwks.json",
                axum::routing::get(move || {
                    let (document, reads) = (document.clone(), reads.clone());
                    async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        axum::Json(document.lock().unwrap().clone())
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        KeyServer { url: format!("http://{address}/jwks.json"), document, reads }
    }

    fn publish(&self, document: Value) {
        *self.document.lock().unwrap() = document;
    }
}

/// A signing key of the test's, with the public JWK a provider would publish for it.
struct TestKey {
    kid: &'static str,
    algorithm: Algorithm,
    encoding: EncodingKey,
}

impl TestKey {
    fn rsa(kid: &'static str, pem: &str) -> Self {
        Self {
            kid,
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        }
    }

    fn ec(kid: &'static str, pem: &str) -> Self {
        Self { kid, algorithm: Algorithm::ES256, encoding: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap() }
    }

    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        serde_json::to_value(jwk).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    attempt(app, &format!("Bearer {token}")).await.0
}

#[tokio::test]
async fn keys_come_from_a_jwks_by_kid_and_a_rotation_is_picked_up() {
    let rsa_a = TestKey::rsa("rsa-a", include_str!("keys/rsa-a.pem"));
    let rsa_b = TestKey::rsa("rsa-b", include_str!("keys/rsa-b.pem"));
    let ec = TestKey::ec("ec", include_str!("keys/ec-p256.pem"));
    let keys = KeyServer::start(jwks(&[&rsa_a, &ec])).await;
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.auth_jwt_secret = None;
        config.auth_jwks_url = Some(keys.url.clone());
        config.auth_issuer = Some(ISSUER.to_owned());
        config.auth_audience = Some(AUDIENCE.to_owned());
    })
    .await;
    let claims = good_claims();
    // HS256 "signed" with the RSA key's public half: the key's type allows RS256 only.
    let rsa_public = include_str!("keys/rsa-a.pub.pem").as_bytes();
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some("rsa-a".to_owned());
    let confused =
        jsonwebtoken::encode(&confused, &claims, &EncodingKey::from_secret(rsa_public).unwrap()).unwrap();
    let reads_at_start = keys.reads.load(Ordering::SeqCst);

    assert_eq!(status_with(&app, &rsa_a.sign(&claims)).await, 200, "RS256 by kid");
    assert_eq!(status_with(&app, &ec.sign(&claims)).await, 200, "ES256 by kid");
    assert_eq!(status_with(&app, &confused).await, 401, "HS256 with the RSA public key as secret");
    assert_eq!(
        status_with(&app, &hs256(&claims, TEST_SECRET.as_bytes())).await,
        401,
        "HS256 with no secret configured"
    );
    assert_eq!(keys.reads.load(Ordering::SeqCst), reads_at_start, "known keys cost no read");

    // The provider rotates: rsa-b replaces rsa-a. A token naming rsa-b makes Quill read
    // the document again; rsa-a is gone with it.
    keys.publish(jwks(&[&rsa_b]));
    assert_eq!(status_with(&app, &rsa_b.sign(&claims)).await, 200, "the new key after a rotation");
    assert_eq!(status_with(&app, &rsa_a.sign(&claims)).await, 401, "the retired key");
    assert_eq!(keys.reads.load(Ordering::SeqCst), reads_at_start + 1);

    // Within the minute, an unknown kid reads nothing more, however many times it comes.
    let unknown = TestKey { kid: "unknown", ..TestKey::rsa("", include_str!("keys/rsa-a.pem")) };
    for _ in 0..5 {
        assert_eq!(status_with(&app, &unknown.sign(&claims)).await, 401, "an unknown kid");
    }
    assert_eq!(keys.reads.load(Ordering::SeqCst), reads_at_start + 1, "re-read at most once a minute");
    assert_eq!(app.rows("users").await, 3, "one user per accepted token, none for the others");
}

#[tokio::test]
async fn a_jwks_file_is_read_from_a_file_url() {
    let ec = TestKey::ec("ec", include_str!("keys/ec-p256.pem"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&ec]).to_string()).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.auth_jwt_secret = None;
        config.auth_jwks_url = Some(format!("file://{}", path.display()));
    })
    .await;

    assert_eq!(
        status_with(&app, &ec.sign(&json!({ "sub": Uuid::now_v7(), "role": "admin", "exp": now() + 60 })))
            .await,
        200
    );
}

#[tokio::test]
async fn claims_nested_by_the_provider_are_found_by_json_pointer() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.auth_subject_claim = "/https:~1~1quill.example~1claims/user_id".to_owned();
        config.auth_role_claim = "/https:~1~1quill.example~1claims/roles".to_owned();
    })
    .await;
    let claims = json!({
        "sub": "auth0|abc",
        "exp": now() + 60,
        "https://quill.example/claims": { "user_id": Uuid::now_v7(), "roles": ["editor", "admin"] },
    });

    assert_eq!(status_with(&app, &hs256(&claims, TEST_SECRET.as_bytes())).await, 200);
    assert_eq!(app.rows("users").await, 1, "the admin role was found in the nested list");
}

#[tokio::test]
async fn an_exposed_server_without_authentication_refuses_to_start() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let mut config = test_config(database.url());
    config.auth_jwt_secret = None;
    config.bind = "0.0.0.0:0".parse().unwrap();

    let error = api::startup::Application::build(&config).await.err().expect("refused at start");

    let message = format!("{error:#}");
    assert!(message.contains("AUTH_JWT_SECRET") && message.contains("AUTH=off"), "{message}");
}

#[tokio::test]
async fn postgres_without_authentication_refuses_to_start_unless_auth_is_off() {
    let Some(backend) = Backend::postgres() else { return };
    let database = TestDatabase::create(&backend).await;
    let mut config = test_config(database.url());
    config.auth_jwt_secret = None;

    let error = api::startup::Application::build(&config).await.err().expect("refused at start");
    config.auth = AuthMode::Off;
    let unchecked = api::startup::Application::build(&config).await;

    assert!(format!("{error:#}").contains("not the embedded SQLite"), "{error:#}");
    assert!(unchecked.is_ok(), "AUTH=off starts");
}

#[tokio::test]
async fn with_auth_off_anyone_may_do_anything() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.auth = AuthMode::Off).await;

    let body = app
        .graphql_as(None, "mutation { createUser(input: { email: \"a@example.com\" }) { email } }", json!({}))
        .await;

    assert_eq!(body["data"]["createUser"]["email"], "a@example.com", "{body}");
}

#[tokio::test]
async fn the_embedded_default_keeps_a_development_secret_beside_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("quill.db");
    let mut config = test_config(&format!("sqlite://{}?mode=rwc", db_path.display()));
    config.auth_jwt_secret = None;
    let secret_path = dir.path().join("quill.db.jwt-secret");

    let first = api::startup::Application::build(&config).await.expect("starts with no secret configured");
    let secret = std::fs::read_to_string(&secret_path).expect("a secret beside the database");
    drop(first);
    let second = api::startup::Application::build(&config).await.expect("starts again");
    let token = api::auth::signer(&config)
        .unwrap()
        .sign(Uuid::now_v7(), TokenRole::Admin, std::time::Duration::from_secs(60))
        .unwrap();

    assert!(secret.len() >= 32, "{secret}");
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret, "the second start reused it");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    }
    let address = second.local_addr();
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    let response = reqwest::Client::new()
        .post(format!("http://{address}/graphql"))
        .bearer_auth(token)
        .json(&create_user())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a token signed with the development secret is accepted");
}

#[tokio::test]
async fn api_token_prints_a_token_for_a_user_named_by_email() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let id = app.create_user("ada@example.com").await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .args(["token", "--user", "ADA@example.com", "--ttl", "10m"])
        .env("DATABASE_URL", app.config.database_url.expose())
        .env("AUTH_JWT_SECRET", TEST_SECRET)
        .env_remove("AUTH_JWKS_URL")
        .output()
        .expect("running api token");
    let token = String::from_utf8(output.stdout).unwrap();
    let body = app.graphql_as(Some(token.trim()), "{ me { id email } }", json!({})).await;

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(body["data"]["me"], json!({ "id": id.to_string(), "email": "ada@example.com" }));
}

#[tokio::test]
async fn a_token_accepted_before_is_refused_once_it_expires() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.auth_leeway_secs = 0).await;
    let claims = json!({ "sub": Uuid::now_v7(), "role": "admin", "exp": now() + 2 });
    let token = hs256(&claims, TEST_SECRET.as_bytes());

    let before = status_with(&app, &token).await;
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let after = attempt(&app, &format!("Bearer {token}")).await;

    assert_eq!(before, 200);
    assert_eq!(after.0, 401, "{}", after.2);
    assert!(after.2["errors"][0]["message"].as_str().unwrap().contains("expired"), "{}", after.2);
}

/// A change to a test server's settings.
type Adjust = dyn Fn(&mut api::config::Config);

#[tokio::test]
async fn settings_that_cannot_verify_tokens_stop_the_server_at_start_with_one_line() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", listener.local_addr().unwrap())
    };
    let empty_set = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(empty_set.path(), r#"{"keys": []}"#).unwrap();
    let cases: Vec<(&str, Box<Adjust>, &str)> = vec![
        (
            "a short secret",
            Box::new(|c| c.auth_jwt_secret = Some(api::config::Secret::new("short"))),
            "at least 32",
        ),
        ("a secret and a JWKS", Box::new(|c| c.auth_jwks_url = Some("file:///x".to_owned())), "not both"),
        (
            "an unreachable JWKS",
            Box::new(move |c| {
                c.auth_jwt_secret = None;
                c.auth_jwks_url = Some(unreachable.clone());
            }),
            "reading the keys at",
        ),
        (
            "a JWKS without a usable key",
            Box::new({
                let url = format!("file://{}", empty_set.path().display());
                move |c| {
                    c.auth_jwt_secret = None;
                    c.auth_jwks_url = Some(url.clone());
                }
            }),
            "no usable signing key",
        ),
        (
            "a JWKS URL of another scheme",
            Box::new(|c| {
                c.auth_jwt_secret = None;
                c.auth_jwks_url = Some("ftp://auth.example/jwks.json".to_owned());
            }),
            "http://, https:// or file://",
        ),
    ];

    for (case, adjust, says) in cases {
        let mut config = test_config(database.url());
        adjust(&mut config);

        let error =
            api::startup::Application::build(&config).await.err().unwrap_or_else(|| panic!("{case} started"));

        assert!(format!("{error:#}").contains(says), "{case}: {error:#}");
    }
}

#[tokio::test]
async fn api_token_for_an_email_without_a_user_fails_and_prints_no_token() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .args(["token", "--user", "nobody@example.com"])
        .env("DATABASE_URL", app.config.database_url.expose())
        .env("AUTH_JWT_SECRET", TEST_SECRET)
        .env_remove("AUTH_JWKS_URL")
        .output()
        .expect("running api token");

    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no user has the email"));
    assert_eq!(app.rows("users").await, 0);
}
