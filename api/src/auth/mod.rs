//! Who is calling: bearer tokens verified into a [`Caller`] (what each caller may do is
//! `graphql::policy`'s). Quill issues no identities of its own: it trusts tokens signed by
//! whatever authenticates people, with a shared secret or a provider's published keys.

mod jwks;
mod token;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use axum::http::{HeaderMap, header};
use uuid::Uuid;

use self::token::{Checks, KeySource, Verifier};
pub use self::token::{Claims, Signer, TokenError};
use crate::config::{AuthMode, Config};

/// Who a request acts for, as its token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// No token: reads public data only.
    Anonymous,
    /// A token with the role `user`: their own things, and public data.
    User(Uuid),
    /// A token with the role `admin`: everything.
    Admin(Uuid),
    /// Authentication is switched off (`AUTH=off`): no rule applies.
    Unchecked,
}

impl Caller {
    /// The user the token speaks for, if any.
    pub fn id(self) -> Option<Uuid> {
        match self {
            Self::User(id) | Self::Admin(id) => Some(id),
            Self::Anonymous | Self::Unchecked => None,
        }
    }

    /// Whether every rule lets this caller through.
    pub fn is_admin(self) -> bool {
        matches!(self, Self::Admin(_) | Self::Unchecked)
    }
}

/// Turns a request's `Authorization` header into a [`Caller`].
#[derive(Clone)]
pub struct Authenticator {
    /// `None` when authentication is off (`AUTH=off`).
    verifier: Option<Arc<Verifier>>,
}

impl Authenticator {
    /// From the settings: a shared secret, a JWKS, the embedded default's development
    /// secret, or off. Refuses to start an exposed server (PostgreSQL, or a non-loopback
    /// address) that has none of them.
    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        if config.auth == AuthMode::Off {
            tracing::warn!("AUTH=off: no access rules apply, every caller may read and change everything");
            return Ok(Self { verifier: None });
        }
        let keys = key_source(config).await?;
        Ok(Self { verifier: Some(Arc::new(Verifier::new(keys, config)?)) })
    }

    /// The caller of a request with these headers. No `Authorization` header: anonymous.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, TokenError> {
        let Some(verifier) = &self.verifier else { return Ok(Caller::Unchecked) };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else { return Ok(Caller::Anonymous) };
        if values.next().is_some() {
            return Err(TokenError::Malformed("send one `Authorization` header, not several"));
        }
        let token = bearer_token(value.as_bytes())?;
        match verifier.remembered(token) {
            Some(caller) => Ok(caller),
            // Boxed: verifying may read a key set over HTTP, a future far larger than the
            // rest of a request's, which would otherwise be moved with every request's.
            None => Box::pin(verifier.verify(token)).await,
        }
    }
}

/// The bytes of RFC 6750's `b64token`: letters, digits and `-._~+/=`; a table, because
/// every authenticated request checks each byte of its token.
const TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        byte += 1;
    }
    table
};

/// The token of `Bearer <token>` (RFC 6750: the scheme in any case, the token in
/// base64url characters with dots).
fn bearer_token(value: &[u8]) -> Result<&str, TokenError> {
    let value = std::str::from_utf8(value).map_err(|_| TokenError::Malformed("the header is not ASCII"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Malformed("use `Authorization: Bearer <token>`"));
    }
    let token = token.trim_start();
    if token.is_empty() || !token.bytes().all(|b| TOKEN68[usize::from(b)]) {
        return Err(TokenError::Malformed("the bearer token is empty or holds characters a JWT never has"));
    }
    Ok(token)
}

/// Where the keys come from: the settings, or the embedded default's development secret.
async fn key_source(config: &Config) -> anyhow::Result<KeySource> {
    let checks = Checks::from(config);
    match (&config.auth_jwt_secret, &config.auth_jwks_url) {
        (Some(_), Some(_)) => anyhow::bail!("set AUTH_JWT_SECRET or AUTH_JWKS_URL, not both"),
        (Some(secret), None) => KeySource::secret(secret.expose().as_bytes(), &checks),
        (None, Some(url)) => KeySource::jwks(url, checks).await,
        (None, None) => match development_secret_path(config) {
            Ok(path) => KeySource::secret(&development_secret(path.as_deref())?, &checks),
            Err(reason) => anyhow::bail!(
                "authentication is not configured and {reason}: set AUTH_JWT_SECRET or AUTH_JWKS_URL, \
                 or AUTH=off to serve without access rules (never in production)"
            ),
        },
    }
}

/// The signer for `api token`: the configured secret, or the development secret.
pub fn signer(config: &Config) -> anyhow::Result<Signer> {
    if config.auth_jwks_url.is_some() && config.auth_jwt_secret.is_none() {
        anyhow::bail!(
            "tokens are verified with AUTH_JWKS_URL's public keys: ask the identity provider for one"
        );
    }
    let secret = match &config.auth_jwt_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => match development_secret_path(config) {
            Ok(Some(path)) => development_secret(Some(&path))?,
            Ok(None) => anyhow::bail!("an in-memory database has no development secret: set AUTH_JWT_SECRET"),
            Err(reason) => anyhow::bail!("{reason}: set AUTH_JWT_SECRET to sign tokens"),
        },
    };
    Signer::new(&secret, config)
}

/// The file beside an embedded (SQLite) database where its development secret lives;
/// `Ok(None)` for an in-memory database. An error says why there may be no such secret.
fn development_secret_path(config: &Config) -> Result<Option<PathBuf>, &'static str> {
    let url = config.database_url.expose();
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err("the database is not the embedded SQLite");
    };
    if !is_loopback(config.bind) {
        return Err("the server listens beyond this machine");
    }
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(format!("{path}.jwt-secret"))))
}

fn is_loopback(bind: SocketAddr) -> bool {
    bind.ip().is_loopback()
}

/// The development secret at `path`, made (32 random bytes, hex, owner-only) when the
/// file does not exist yet; `None`: a fresh one for this process only.
fn development_secret(path: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    let fresh = || -> anyhow::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("drawing a random secret: {e}"))?;
        Ok(hex::encode(bytes))
    };
    let Some(path) = path else { return Ok(fresh()?.into_bytes()) };
    match std::fs::read_to_string(path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!("{} holds no usable secret: delete it to make a new one", path.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
    let secret = fresh()?;
    write_owner_only(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(
        path = %path.display(),
        "auth: development secret made; `api token --user <id|email>` signs tokens with it"
    );
    Ok(secret.into_bytes())
}

fn write_owner_only(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_in_any_case_of_the_scheme() {
        assert_eq!(bearer_token(b"Bearer abc.def.ghi").ok(), Some("abc.def.ghi"));
        assert_eq!(bearer_token(b"bearer  abc.def.ghi").ok(), Some("abc.def.ghi"));
        assert_eq!(bearer_token(b"BEARER a-b_c.d+e/f=.g").ok(), Some("a-b_c.d+e/f=.g"));
    }

    #[test]
    fn anything_else_in_the_header_is_malformed() {
        for value in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a\"b",
            b"abc.def.ghi",
            b"Bearer \xff\xfe",
            b"Token abc.def.ghi",
        ] {
            assert!(bearer_token(value).is_err(), "{:?} was read as a token", String::from_utf8_lossy(value));
        }
    }
}
