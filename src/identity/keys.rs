//! [`KeyCache`]: Webex's signing keys (the JWKS its discovery document names), fetched once and
//! kept; written here because the refetch rule is ours:
//!
//! - a `kid` the set lacks refetches the set (a key rotation is picked up at once), at most once
//!   a minute; in between, the token is refused without a fetch;
//! - one fetch at a time: requests that waited share its outcome, so a flood of tokens signed by
//!   unknown keys is at most one fetch a minute;
//! - a day-old set is fetched again, with the discovery document; should that fail, the old set
//!   keeps serving (retried at most once a minute);
//! - with nothing cached, each sign-in tries (unless the fetch it waited for just failed): its
//!   failure is the page's 502/503, and nobody is signed in.

use crate::webex::oidc::Discovery;
use crate::webex::{WebexClient, WebexError};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// An unknown `kid` fetches the set again at most this often.
pub const REFETCH_EVERY: Duration = Duration::from_secs(60);
/// A cached set (and discovery document) is fetched again when it is this old.
const MAX_AGE: Duration = Duration::from_secs(86_400);

/// A key set and the discovery document it came from.
pub struct KeySet {
    pub discovery: Discovery,
    keys: JwkSet,
    fetched_at: Instant,
}

impl KeySet {
    fn fresh(&self) -> bool {
        self.fetched_at.elapsed() < MAX_AGE
    }

    /// The RS256 verification key named `kid`: an RSA key, for signatures (or no `use`), for
    /// RS256 (or no `alg`). Any other key of that name is not one we verify with.
    pub fn key(&self, kid: &str) -> Option<DecodingKey> {
        let jwk = self.keys.find(kid)?;
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            return None;
        };
        let (usage, alg) = (&jwk.common.public_key_use, &jwk.common.key_algorithm);
        let usable = matches!(usage, None | Some(PublicKeyUse::Signature))
            && matches!(alg, None | Some(KeyAlgorithm::RS256));
        if !usable {
            return None;
        }
        DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()
    }
}

/// What the fetch lock guards: when the rules last fetched, and the last failure.
#[derive(Default)]
struct FetchState {
    /// The last refetch for a `kid` the set lacked.
    last_unknown_kid: Option<Instant>,
    /// The last failed refresh of a day-old set.
    last_failed_refresh: Option<Instant>,
    /// The last fetch's failure, for the requests that waited for it.
    last_error: Option<Arc<WebexError>>,
}

/// The cached key set; cloning a [`super::Verifier`] shares it.
pub struct KeyCache {
    webex: WebexClient,
    cached: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<FetchState>,
    /// Fetches finished, so a request that waited knows one happened meanwhile.
    fetches: AtomicU64,
}

impl KeyCache {
    pub fn new(webex: WebexClient) -> Self {
        Self {
            webex,
            cached: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
        }
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        let cached = self.cached.read();
        cached.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The set to verify a token signed by `kid` against, and that key if the set has it (a
    /// token whose `kid` stays unknown is refused). `Err`: no set could be had at all.
    pub async fn lookup(
        &self,
        kid: &str,
    ) -> Result<(Arc<KeySet>, Option<DecodingKey>), Arc<WebexError>> {
        let seen = self.fetches.load(Ordering::Acquire);
        if let Some(set) = self.cached().filter(|set| set.fresh())
            && let Some(key) = set.key(kid)
        {
            return Ok((set, Some(key)));
        }
        let mut state = self.fetching.lock().await;
        let fetched_meanwhile = self.fetches.load(Ordering::Acquire) != seen;
        let now = Instant::now();
        let within =
            |last: Option<Instant>| last.is_some_and(|t| now.duration_since(t) < REFETCH_EVERY);
        let cached = self.cached();
        let discovery = match &cached {
            Some(set) if set.fresh() || within(state.last_failed_refresh) => {
                if let Some(key) = set.key(kid) {
                    return Ok((set.clone(), Some(key)));
                }
                if fetched_meanwhile || within(state.last_unknown_kid) {
                    return Ok((set.clone(), None));
                }
                state.last_unknown_kid = Some(now);
                Some(set.discovery.clone())
            }
            // A day-old set: discovery and keys again.
            Some(_) => None,
            None => {
                if fetched_meanwhile && let Some(err) = &state.last_error {
                    return Err(err.clone());
                }
                None
            }
        };
        let outcome = self.fetch(discovery).await;
        self.fetches.fetch_add(1, Ordering::Release);
        let set = match outcome {
            Ok(set) => {
                let set = Arc::new(set);
                *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
                state.last_error = None;
                state.last_failed_refresh = None;
                set
            }
            Err(err) => {
                let err = Arc::new(err);
                state.last_error = Some(err.clone());
                // The old set serves while Webex cannot give a new one.
                let Some(set) = cached else {
                    return Err(err);
                };
                if !set.fresh() {
                    state.last_failed_refresh = Some(now);
                }
                tracing::warn!(%err, "cannot fetch Webex's signing keys again; the cached ones still serve");
                set
            }
        };
        let key = set.key(kid);
        Ok((set, key))
    }

    /// The discovery document (unless `known`), then the key set it names.
    async fn fetch(&self, known: Option<Discovery>) -> Result<KeySet, WebexError> {
        let discovery = match known {
            Some(discovery) => discovery,
            None => self.webex.discovery().await?,
        };
        let keys = self.webex.jwks(&discovery.jwks_uri).await?;
        let set = KeySet {
            discovery,
            keys,
            fetched_at: Instant::now(),
        };
        // A set that reads as JSON but holds no key we could verify with is malformed: not
        // cached, the sign-in's page says so (502).
        let jwks = &set.keys.keys;
        let mut kids = jwks.iter().filter_map(|jwk| jwk.common.key_id.as_deref());
        if !kids.any(|kid| set.key(kid).is_some()) {
            return Err(WebexError::Invalid {
                what: "key set",
                problem: "no RSA signing key named by a kid",
                tracking_id: None,
            });
        }
        tracing::info!(keys = jwks.len(), "fetched Webex's signing keys");
        Ok(set)
    }
}
