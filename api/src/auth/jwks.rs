//! A provider's public keys (a JWKS document), read at start and again when a token names
//! a key not seen yet (the provider rotated its keys), at most once a minute so a flood of
//! made-up `kid`s cannot turn Quill into a client hammering the provider.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse},
};

use super::token::{Checks, Key, TokenError};

/// Shortest time between two reads of the document.
const REREAD_AFTER: Duration = Duration::from_secs(60);
/// Longest a read over HTTP may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The keys of a JWKS document, by `kid`.
pub(super) struct Jwks {
    /// Where the document is read from.
    source: Source,
    /// The claim checks each key's validation carries.
    checks: Checks,
    /// The usable keys of the last good read.
    keys: RwLock<Arc<KeySet>>,
    /// How many times the document has been read again since start.
    generation: AtomicU64,
    /// When the document was last read; held while reading, so one read runs at a time.
    last_read: tokio::sync::Mutex<Instant>,
}

enum Source {
    Http { client: reqwest::Client, url: String },
    File(PathBuf),
}

#[derive(Default)]
struct KeySet {
    /// Every usable key that has a `kid`.
    by_kid: HashMap<String, Arc<Key>>,
    /// The document's one key, for tokens that name none.
    only: Option<Arc<Key>>,
}

impl Jwks {
    /// Reads the document at `url` (`http(s)://` or `file://`); fails when it cannot be
    /// read or holds no usable key.
    pub async fn load(url: &str, checks: Checks) -> anyhow::Result<Self> {
        let source = if let Some(path) = url.strip_prefix("file://") {
            Source::File(PathBuf::from(path))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let client = reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .context("building the HTTP client for AUTH_JWKS_URL")?;
            Source::Http { client, url: url.to_owned() }
        } else {
            anyhow::bail!("AUTH_JWKS_URL must start with http://, https:// or file://");
        };
        let jwks = Self {
            source,
            checks,
            keys: RwLock::default(),
            generation: AtomicU64::new(0),
            // The first unknown `kid` after start may read the document again at once.
            last_read: tokio::sync::Mutex::new(
                Instant::now().checked_sub(REREAD_AFTER).unwrap_or_else(Instant::now),
            ),
        };
        let keys = jwks.read().await.with_context(|| format!("reading the keys at {url}"))?;
        anyhow::ensure!(!keys.by_kid.is_empty() || keys.only.is_some(), "{url} holds no usable signing key");
        *jwks.keys.write().expect("the key set lock is never poisoned") = Arc::new(keys);
        Ok(jwks)
    }

    /// The key a token with this `kid` is verified with.
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<Key>, TokenError> {
        let Some(kid) = kid else {
            return self.current().only.clone().ok_or(TokenError::Invalid("the token names no key (kid)"));
        };
        if let Some(key) = self.current().by_kid.get(kid) {
            return Ok(key.clone());
        }
        let mut last_read = self.last_read.lock().await;
        // Another request may have read the document while this one waited.
        if let Some(key) = self.current().by_kid.get(kid) {
            return Ok(key.clone());
        }
        if last_read.elapsed() >= REREAD_AFTER {
            *last_read = Instant::now();
            match self.read().await {
                Ok(keys) => {
                    tracing::info!(keys = keys.by_kid.len(), "auth: key set read again");
                    *self.keys.write().expect("the key set lock is never poisoned") = Arc::new(keys);
                    self.generation.fetch_add(1, Ordering::Release);
                }
                Err(error) => tracing::warn!(error = format!("{error:#}"), "auth: cannot read the key set"),
            }
        }
        self.current().by_kid.get(kid).cloned().ok_or(TokenError::Invalid("the token's key (kid) is unknown"))
    }

    /// Changes each time the document is read again, so what was verified with a key
    /// since retired is verified again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().expect("the key set lock is never poisoned").clone()
    }

    /// Reads and parses the document, keeping the keys usable for signatures.
    async fn read(&self) -> anyhow::Result<KeySet> {
        let text = match &self.source {
            Source::File(path) => tokio::fs::read_to_string(path).await?,
            Source::Http { client, url } => client.get(url).send().await?.error_for_status()?.text().await?,
        };
        let set: JwkSet = serde_json::from_str(&text).context("parsing the JWKS document")?;
        let mut keys = KeySet::default();
        let mut usable = Vec::new();
        for jwk in &set.keys {
            match self.key_of(jwk) {
                Some(key) => usable.push((jwk.common.key_id.clone(), Arc::new(key))),
                None => {
                    tracing::warn!(kid = ?jwk.common.key_id, "auth: a JWKS key that cannot verify signatures is ignored")
                }
            }
        }
        if let [(_, key)] = usable.as_slice() {
            keys.only = Some(key.clone());
        }
        keys.by_kid = usable.into_iter().filter_map(|(kid, key)| Some((kid?, key))).collect();
        Ok(keys)
    }

    /// A signature key with the algorithms its type allows; `None` for anything else
    /// (encryption keys, shared secrets, unknown types).
    fn key_of(&self, jwk: &Jwk) -> Option<Key> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let allowed: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => &[Algorithm::ES256],
                EllipticCurve::P384 => &[Algorithm::ES384],
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
            // Shared secrets have no place in a public key set.
            _ => return None,
        };
        // A key that names its algorithm is used with that one only.
        let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
            Some(named) => {
                let named: Algorithm = named.to_string().parse().ok()?;
                allowed.contains(&named).then(|| vec![named])?
            }
            None => allowed.to_vec(),
        };
        let decoding = DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        Some(Key { decoding, validation: self.checks.apply(validation) })
    }
}
