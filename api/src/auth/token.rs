//! Verifying a JWT into a [`Caller`], and signing one with the shared secret.
//!
//! Each key carries the algorithms its type allows (a secret: HS256; an RSA key: RS*/PS*;
//! an EC key: the ES algorithm of its curve), so a token can never choose how it is
//! checked: no `none`, no RSA public key used as an HMAC secret.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Caller, jwks::Jwks};
use crate::config::{Config, TokenRole};

/// Shortest shared secret accepted: HS256 needs a key as long as its hash (RFC 7518 3.2).
const MIN_SECRET_BYTES: usize = 32;

/// Why a token was refused; the message goes to the client, as the
/// `WWW-Authenticate` header's `error_description` and the error's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The header is not `Bearer <token>` (`error="invalid_request"`).
    Malformed(&'static str),
    /// The token is not acceptable (`error="invalid_token"`).
    Invalid(&'static str),
}

impl TokenError {
    pub fn message(&self) -> &'static str {
        match self {
            Self::Malformed(message) | Self::Invalid(message) => message,
        }
    }

    /// The RFC 6750 error code of the `WWW-Authenticate` challenge.
    pub fn challenge_code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "invalid_request",
            Self::Invalid(_) => "invalid_token",
        }
    }
}

/// One verification key and the only algorithms it may be used with.
pub(super) struct Key {
    /// The secret or public key itself.
    pub decoding: DecodingKey,
    /// The checks of every token this key verifies, its algorithms included.
    pub validation: Validation,
}

/// Where verification keys come from.
pub(super) enum KeySource {
    Secret(Arc<Key>),
    Jwks(Jwks),
}

impl KeySource {
    pub fn secret(secret: &[u8], checks: &Checks) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_BYTES,
            "AUTH_JWT_SECRET is {} bytes long: HS256 needs at least {MIN_SECRET_BYTES}",
            secret.len()
        );
        let decoding =
            DecodingKey::from_secret(secret).map_err(|e| anyhow::anyhow!("AUTH_JWT_SECRET: {e}"))?;
        Ok(Self::Secret(Arc::new(Key {
            decoding,
            validation: checks.apply(Validation::new(Algorithm::HS256)),
        })))
    }

    pub async fn jwks(url: &str, checks: Checks) -> anyhow::Result<Self> {
        Ok(Self::Jwks(Jwks::load(url, checks).await?))
    }
}

/// The checks every token gets besides its signature, from the settings.
#[derive(Clone)]
pub(super) struct Checks {
    /// `AUTH_ISSUER`: the one `iss` accepted.
    issuer: Option<String>,
    /// `AUTH_AUDIENCE`: the `aud` a token must include.
    audience: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: u64,
}

impl From<&Config> for Checks {
    fn from(config: &Config) -> Self {
        Self {
            issuer: config.auth_issuer.clone(),
            audience: config.auth_audience.clone(),
            leeway: config.auth_leeway_secs,
        }
    }
}

impl Checks {
    /// `validation` with these checks: `exp` required, `nbf` checked when present, `iss`
    /// and `aud` required when configured.
    pub fn apply(&self, mut validation: Validation) -> Validation {
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // A token with an `aud` is for whoever it names; with no audience configured
            // there is nothing to compare it with.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// Most verified tokens remembered, and the longest any is remembered.
const VERIFIED_CAPACITY: u64 = 10_000;
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Longer tokens are verified every time rather than remembered.
const LONGEST_REMEMBERED: usize = 4096;

/// A token that verified: who it speaks for, until when, under which key set.
#[derive(Clone, Copy)]
struct Verified {
    caller: Caller,
    /// `exp` plus the leeway, in seconds since the epoch.
    good_until: u64,
    /// The key set's generation it was verified under.
    generation: u64,
}

/// Verifies tokens against the configured keys and claims.
pub(super) struct Verifier {
    /// The shared secret, or the provider's key set.
    keys: KeySource,
    /// Where the claims carry the user id and the role.
    subject: ClaimPath,
    role: ClaimPath,
    /// Seconds of clock skew allowed past `exp`.
    leeway: u64,
    /// Tokens already verified, by their exact text: a client sends the same token with
    /// every request, and checking a signature costs more than the rest of a small query
    /// (a token is still refused from the second after its `exp` plus the leeway).
    verified: moka::sync::Cache<String, Verified>,
}

impl Verifier {
    pub fn new(keys: KeySource, config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            keys,
            leeway: config.auth_leeway_secs,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_FOR)
                .build(),
            subject: ClaimPath::parse(&config.auth_subject_claim)?,
            role: ClaimPath::parse(&config.auth_role_claim)?,
        })
    }

    /// The caller of a token verified before, under the current keys, while it is good.
    pub fn remembered(&self, token: &str) -> Option<Caller> {
        let verified = self.verified.get(token)?;
        let good = verified.generation == self.generation()
            && jsonwebtoken::get_current_timestamp() <= verified.good_until;
        good.then_some(verified.caller)
    }

    /// The caller a token speaks for, or why it is refused: verified in full, then
    /// remembered.
    pub async fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let generation = self.generation();
        let (caller, exp) = self.check(token).await?;
        if token.len() <= LONGEST_REMEMBERED {
            let good_until = exp.saturating_add(self.leeway);
            self.verified.insert(token.to_owned(), Verified { caller, good_until, generation });
        }
        Ok(caller)
    }

    /// Which key set tokens are verified under now: verdicts of an earlier one are void.
    fn generation(&self) -> u64 {
        match &self.keys {
            KeySource::Secret(_) => 0,
            KeySource::Jwks(jwks) => jwks.generation(),
        }
    }

    /// Verifies a token in full: its caller and its `exp`.
    async fn check(&self, token: &str) -> Result<(Caller, u64), TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("the token is not a JWT with a supported algorithm"))?;
        let key = match &self.keys {
            KeySource::Secret(key) => key.clone(),
            KeySource::Jwks(jwks) => jwks.key(header.kid.as_deref()).await?,
        };
        let claims = jsonwebtoken::decode::<Value>(token, &key.decoding, &key.validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;
        let id = self
            .subject
            .get(&claims)
            .and_then(Value::as_str)
            .and_then(|sub| Uuid::parse_str(sub).ok())
            .ok_or(TokenError::Invalid("the token's subject is not a user id"))?;
        // Present and a number: the validation requires it.
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or_default();
        let caller = match role(self.role.get(&claims))? {
            TokenRole::User => Caller::User(id),
            TokenRole::Admin => Caller::Admin(id),
        };
        Ok((caller, exp))
    }
}

/// The role a claim names: absent is `user`; a list holding `admin` is `admin`.
fn role(claim: Option<&Value>) -> Result<TokenRole, TokenError> {
    let unknown = TokenError::Invalid("the token's role is neither `user` nor `admin`");
    match claim {
        None | Some(Value::Null) => Ok(TokenRole::User),
        Some(Value::String(role)) => match role.as_str() {
            "user" => Ok(TokenRole::User),
            "admin" => Ok(TokenRole::Admin),
            _ => Err(unknown),
        },
        Some(Value::Array(roles)) if roles.iter().any(|r| r == "admin") => Ok(TokenRole::Admin),
        Some(Value::Array(_)) => Ok(TokenRole::User),
        Some(_) => Err(unknown),
    }
}

/// What the client is told for each way `jsonwebtoken` refuses a token.
fn refusal(kind: &ErrorKind) -> TokenError {
    TokenError::Invalid(match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
        ErrorKind::InvalidAudience => "the token's audience is not accepted",
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted for its key",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => "the token has no expiry (exp)",
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => "the token has no issuer (iss)",
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => "the token has no audience (aud)",
        _ => "the token is malformed",
    })
}

/// Where a claim is: a top-level name, or a JSON pointer (`/a/b`) into nested claims.
#[derive(Debug, Clone)]
enum ClaimPath {
    Name(String),
    Pointer(String),
}

impl ClaimPath {
    fn parse(setting: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(!setting.is_empty(), "a claim name may not be empty");
        Ok(if setting.starts_with('/') {
            Self::Pointer(setting.to_owned())
        } else {
            Self::Name(setting.to_owned())
        })
    }

    fn get<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        match self {
            Self::Name(name) => claims.get(name),
            Self::Pointer(pointer) => claims.pointer(pointer),
        }
    }
}

/// The claims of a token Quill signs itself (`api token`, tests).
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    pub sub: String,
    pub role: &'static str,
    pub iat: u64,
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Signs HS256 tokens with the shared secret, with the configured issuer and audience.
pub struct Signer {
    key: EncodingKey,
    /// Written into each token, so the server that checks them accepts it.
    issuer: Option<String>,
    audience: Option<String>,
}

impl Signer {
    pub fn new(secret: &[u8], config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            key: EncodingKey::from_secret(secret).map_err(|e| anyhow::anyhow!("the signing secret: {e}"))?,
            issuer: config.auth_issuer.clone(),
            audience: config.auth_audience.clone(),
        })
    }

    /// A token for `user` in `role`, valid for `ttl` from now.
    pub fn sign(&self, user: Uuid, role: TokenRole, ttl: std::time::Duration) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.to_string(),
            role: match role {
                TokenRole::User => "user",
                TokenRole::Admin => "admin",
            },
            iat: now,
            exp: now + ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|e| anyhow::anyhow!("signing a token: {e}"))
    }
}
