//! Login with Webex (OpenID Connect): who signed in, proved by the id_token of a token answer and
//! verified with jsonwebtoken against Webex's signing keys, in both flows.
//!
//! [`Verifier::identify`] refuses the sign-in on any failed check ([`token`]'s, against the key
//! [`keys`] caches, `iss` by the [`issuer`] rule); a name or email the token lacks comes from
//! userinfo if it describes the same `sub` (OpenID Connect Core §5.4).

mod issuer;
mod keys;
mod token;

use crate::clock::unix_now;
use crate::secret::Secret;
use crate::webex::{TokenResponse, WebexClient, WebexError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// OpenID Connect is on for a flow exactly when its scopes contain `openid`.
pub fn wants_openid(scopes: &str) -> bool {
    scopes.split_whitespace().any(|scope| scope == "openid")
}

/// Who signed in, as a verified id_token (and userinfo) says. Plain data: the session keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Webex's id of the user (a UUID).
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Identity {
    /// "NAME (EMAIL)", or whichever of the two is known; the user id when neither is.
    pub fn shown(&self) -> String {
        match (&self.name, &self.email) {
            (Some(name), Some(email)) => format!("{name} ({email})"),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => format!("Webex user {}", self.sub),
        }
    }
}

/// What a device flow's grant proved about who signed in; kept with the flow until its session
/// claims it (the page of a flow whose token was refused says so).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No id_token was asked for, or none came.
    #[default]
    None,
    Verified(Identity),
    /// The id_token did not verify: nobody was signed in.
    Refused,
    /// Webex's keys could not be had to check it: nobody was signed in.
    Unverifiable,
}

/// Why a sign-in's identity could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The id_token is not one we accept: which check refused it, and the answer's tracking id.
    #[error("the id_token was refused: {}", .refusal.reason)]
    Refused {
        refusal: token::Refusal,
        tracking_id: Option<String>,
    },
    /// Webex's discovery document or key set could not be fetched or read.
    #[error("cannot fetch Webex's signing keys: {0}")]
    Keys(Arc<WebexError>),
}

/// Verifies id_tokens for this integration; clones share one key cache.
#[derive(Clone)]
pub struct Verifier {
    webex: WebexClient,
    keys: Arc<keys::KeyCache>,
    /// `WEBEX_OIDC_ISSUERS`.
    listed_issuers: Arc<[String]>,
}

impl Verifier {
    /// Fetches nothing until the first token comes.
    pub fn new(webex: WebexClient, listed_issuers: Vec<String>) -> Self {
        Self {
            keys: Arc::new(keys::KeyCache::new(webex.clone())),
            webex,
            listed_issuers: listed_issuers.into(),
        }
    }

    /// What `tokens` prove about who signed in: `Ok(None)` when the answer has no id_token
    /// (the caller logs it); `nonce` is the login's (none on the device grant).
    pub async fn identify(
        &self,
        tokens: &TokenResponse,
        nonce: Option<&Secret>,
    ) -> Result<Option<Identity>, IdentityError> {
        let Some(id_token) = &tokens.id_token else {
            return Ok(None);
        };
        // The checks, in order; a refusal carries the answer's tracking id.
        let tracking_id = &tokens.tracking_id;
        let refused = |refusal| IdentityError::Refused {
            refusal,
            tracking_id: tracking_id.clone(),
        };
        let kid = token::rs256_kid(id_token.expose()).map_err(refused)?;
        let (set, key) = self.keys.lookup(&kid).await.map_err(IdentityError::Keys)?;
        let unknown = "it is signed by a key Webex does not publish (unknown kid)";
        let key = key.ok_or_else(|| refused(token::refuse(unknown)))?;
        let client_id = self.webex.client_id();
        let claims = token::decode(id_token.expose(), &key, client_id).map_err(refused)?;
        let expected = token::Expected {
            client_id,
            discovered_issuer: &set.discovery.issuer,
            listed_issuers: &self.listed_issuers,
            nonce: nonce.map(Secret::expose),
            now: unix_now(),
        };
        let mut identity = token::check(claims, &expected).map_err(refused)?;
        if identity.name.is_some() && identity.email.is_some() {
            return Ok(Some(identity));
        }
        // The name and email the token lacks, from userinfo if it describes the same user.
        // Userinfo is a complement: when it fails, the identity keeps what the token said.
        match self.webex.userinfo(&tokens.access_token).await {
            Ok(info) if info.sub == identity.sub => {
                identity.name = identity.name.take().or_else(|| token::shown(info.name));
                identity.email = identity.email.take().or_else(|| token::shown(info.email));
            }
            Ok(_) => tracing::warn!(
                "userinfo describes another user than the id_token (sub); its claims are not used"
            ),
            Err(err) => {
                tracing::warn!(%err, "cannot read userinfo; the identity keeps what its id_token says")
            }
        }
        Ok(Some(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openid_is_on_exactly_when_asked_for() {
        assert!(wants_openid("openid email profile spark:all"));
        assert!(wants_openid("spark:all  openid"));
        assert!(!wants_openid("spark:all"));
        assert!(!wants_openid("openid:x spark:all"));
        assert!(!wants_openid(""));
    }

    #[test]
    fn an_identity_shows_its_name_and_email() {
        let mut who = Identity {
            sub: "u-1".into(),
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
        };
        assert_eq!(who.shown(), "Ada Lovelace (ada@example.com)");
        who.email = None;
        assert_eq!(who.shown(), "Ada Lovelace");
        who.name = None;
        assert_eq!(who.shown(), "Webex user u-1");
    }
}
