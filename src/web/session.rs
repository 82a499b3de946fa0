//! [`WebSession`]: the one place that knows the session's keys (the pending logins, the tokens
//! and who signed in, the device flow's id, the last renewal); handlers use its typed methods,
//! never a string key (in the manner of zero2prod's `TypedSession`).
//!
//! A `HEAD` never starts a session: axum answers it with the GET handler (`GET /login` writes a
//! pending login), so without a live session a HEAD gets a throwaway one (nothing stored, no
//! cookie). With a live session it reads and writes it as its GET would.

use crate::clock::unix_now;
use crate::crypto::SessionKey;
use crate::identity::Identity;
use crate::secret::Secret;
use crate::store::{Lock, OBJECT_TOKENS_KEY, SessionGuard, SessionLocks, TOKENS_KEY};
use crate::tokens::TokenSet;
use crate::web::error::{AppError, Result as AppResult};
use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::session::Error;
use tower_sessions::{Expiry, MemoryStore, Session};

const PENDING_LOGINS_KEY: &str = "oauth.pending";
/// Who signed in, as a verified id_token said (Login with Webex); absent without one.
const IDENTITY_KEY: &str = "oidc.identity";
const FLOW_KEY: &str = "device.flow";
/// When a signed-in request last renewed the session's expiry (Unix seconds).
const TOUCHED_KEY: &str = "session.touched";

/// A signed-in session is written (and so its inactivity expiry renewed) at most once a day.
const TOUCH_EVERY_SECS: u64 = 86_400;

/// A signed-in session nobody used for this long is gone.
pub const SIGNED_IN_INACTIVITY: time::Duration = time::Duration::days(30);
/// A session without tokens (a login or a device sign-in in progress) is gone this long after
/// its last write, so a script hammering `/login` cannot fill the store for a month.
const ANONYMOUS_LIFETIME: time::Duration = time::Duration::minutes(15);

type Result<T, E = Error> = std::result::Result<T, E>;

/// One authorization-code login between `/login` and `/oauth`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The OAuth `state` parameter sent to `/authorize`.
    #[serde(rename = "state")]
    pub oauth_state: Secret,
    pub verifier: Secret,
    /// OpenID Connect's `nonce`, when the scopes ask for `openid`: the id_token must carry it.
    /// (Absent in logins started by a version before Login with Webex.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Secret>,
    pub started_at: u64,
}

/// The request's session, with typed accessors. Cloning shares the same session.
#[derive(Clone)]
pub struct WebSession(Session);

impl<S: Send + Sync> FromRequestParts<S> for WebSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| AppError::Internal(msg.to_owned()))?;
        let session = Self(session);
        // A HEAD keeps only a live session (one store read, as the GET would make).
        if parts.method != Method::HEAD || (session.0.id().is_some() && !session.is_gone().await?) {
            return Ok(session);
        }
        Ok(Self::throwaway())
    }
}

impl WebSession {
    /// Not the layer's session: what a handler writes here goes nowhere.
    fn throwaway() -> Self {
        Self(Session::new(None, Arc::new(MemoryStore::default()), None))
    }

    /// The logins started in this browser and not yet completed (oldest first).
    pub async fn pending_logins(&self) -> Result<Vec<PendingLogin>> {
        Ok(self.0.get(PENDING_LOGINS_KEY).await?.unwrap_or_default())
    }

    pub async fn set_pending_logins(&self, logins: Vec<PendingLogin>) -> Result<()> {
        self.keep_short_unless_signed_in(ANONYMOUS_LIFETIME).await?;
        if logins.is_empty() {
            self.0.remove_value(PENDING_LOGINS_KEY).await?;
            return Ok(());
        }
        self.0.insert(PENDING_LOGINS_KEY, logins).await
    }

    /// Writes the session now rather than after the response (e.g. a login's state is used up
    /// even when the request then fails: tower-sessions does not save after a 5xx).
    pub async fn save_now(&self) -> Result<()> {
        self.0.save().await
    }

    /// Without tokens, the session lives `at_least` (never less than 15 minutes) past this write.
    async fn keep_short_unless_signed_in(&self, at_least: time::Duration) -> Result<()> {
        if !self.has_tokens().await? {
            let lifetime = at_least.max(ANONYMOUS_LIFETIME);
            self.0.set_expiry(Some(Expiry::OnInactivity(lifetime)));
        }
        Ok(())
    }

    /// The token set, under `TOKENS_KEY` as one JSON string (tower-sessions clones a value at
    /// each read: an object of six fields costs a dozen allocations, a string one). Older
    /// versions kept an object under `OBJECT_TOKENS_KEY`: still read, removed on the next write.
    /// A new key, not a new layout: an older binary (a rollback, a rolling upgrade sharing Redis)
    /// then finds no tokens, instead of failing to decode a string its error would quote.
    pub async fn tokens(&self) -> Result<Option<TokenSet>> {
        Ok(match self.0.get_value(TOKENS_KEY).await? {
            Some(Value::String(json)) => Some(serde_json::from_str(&json)?),
            Some(other) => Some(serde_json::from_value(other)?),
            None => self.0.get(OBJECT_TOKENS_KEY).await?,
        })
    }

    /// Presence only: no need to decode the token set.
    pub async fn has_tokens(&self) -> Result<bool> {
        Ok(self.0.get_value(TOKENS_KEY).await?.is_some()
            || self.0.get_value(OBJECT_TOKENS_KEY).await?.is_some())
    }

    async fn put_tokens(&self, tokens: &TokenSet) -> Result<()> {
        let json = serde_json::to_string(tokens)?;
        self.0.insert_value(TOKENS_KEY, Value::String(json)).await?;
        self.0.remove_value(OBJECT_TOKENS_KEY).await?;
        Ok(())
    }

    /// Keeps the tokens of a new sign-in and who signed in (if an id_token proved it), under a
    /// new session id (against session fixation).
    pub async fn sign_in(&self, tokens: &TokenSet, identity: Option<&Identity>) -> Result<()> {
        self.0
            .set_expiry(Some(Expiry::OnInactivity(SIGNED_IN_INACTIVITY)));
        self.put_tokens(tokens).await?;
        self.0.remove_value(IDENTITY_KEY).await?;
        if let Some(identity) = identity {
            self.0.insert(IDENTITY_KEY, identity).await?;
        }
        self.0.insert(TOUCHED_KEY, unix_now()).await?;
        self.0.cycle_id().await
    }

    /// Replaces the tokens after a refresh and saves at once, so that requests waiting for
    /// the refresh find the new tokens.
    pub async fn save_refreshed(&self, tokens: &TokenSet) -> Result<()> {
        self.put_tokens(tokens).await?;
        self.0.save().await
    }

    /// Who signed in, when an id_token proved it.
    pub async fn identity(&self) -> Result<Option<Identity>> {
        self.0.get(IDENTITY_KEY).await
    }

    /// Drops the tokens (Webex no longer accepts them), and who signed in, and saves at once.
    pub async fn forget_tokens(&self) -> Result<()> {
        self.0.remove_value(IDENTITY_KEY).await?;
        self.0.remove_value(TOKENS_KEY).await?;
        self.0.remove_value(OBJECT_TOKENS_KEY).await?;
        self.0.save().await
    }

    /// Renews the session's expiry when the last renewal is a day old.
    pub async fn touch_if_due(&self, now: u64) -> Result<()> {
        let touched: Option<u64> = self.0.get(TOUCHED_KEY).await?;
        if touched.is_none_or(|t| now.saturating_sub(t) >= TOUCH_EVERY_SECS) {
            self.0.insert(TOUCHED_KEY, now).await?;
        }
        Ok(())
    }

    /// The id of this session's device flow, if one was started.
    pub async fn flow_id(&self) -> Result<Option<String>> {
        self.0.get(FLOW_KEY).await
    }

    /// Records this session's device flow; an anonymous session then lives at least as long
    /// as the flow can (`flow_lifetime`).
    pub async fn set_flow_id(&self, id: &str, flow_lifetime: Duration) -> Result<()> {
        let lifetime = time::Duration::try_from(flow_lifetime).unwrap_or(ANONYMOUS_LIFETIME);
        self.keep_short_unless_signed_in(lifetime.saturating_add(time::Duration::minutes(5)))
            .await?;
        self.0.insert(FLOW_KEY, id).await
    }

    pub async fn take_flow_id(&self) -> Result<Option<String>> {
        self.0.remove(FLOW_KEY).await
    }

    /// Holds this session's `lock` (one at a time per session: in this process, and across
    /// instances with Redis), then reads the session again: another request may have changed
    /// it meanwhile. `None` for a session not yet saved, which no other request can share.
    pub async fn lock(&self, locks: &SessionLocks, lock: Lock) -> AppResult<Option<SessionGuard>> {
        // Keyed by the SHA-256 of the id: the id itself (the cookie value) is never handed out.
        let Some(id) = self.0.id() else {
            return Ok(None);
        };
        let guard = locks.lock(lock, &SessionKey::of(&id.to_string())).await?;
        self.0.load().await?;
        Ok(Some(guard))
    }

    /// True when the session had an id but its record is gone from the store (after
    /// [`lock`](Self::lock): another request cycled the id, or signed out).
    pub async fn is_gone(&self) -> Result<bool> {
        let had_id = self.0.id().is_some();
        // Reading loads the record; tower-sessions drops an id whose record is not found.
        self.0.get_value(FLOW_KEY).await?;
        Ok(had_id && self.0.id().is_none())
    }

    /// Forgets everything, server-side too (sign-out).
    pub async fn flush(&self) -> Result<()> {
        self.0.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Grant;

    #[tokio::test]
    async fn the_token_set_is_one_string_under_a_new_key_and_the_older_object_still_reads() {
        let session = WebSession::throwaway();
        let tokens = TokenSet {
            access_token: Secret::new("access"),
            access_expires_at: 1_900_000_000,
            refresh_token: Some(Secret::new("refresh")),
            refresh_expires_at: Some(1_910_000_000),
            scope: Some("spark:people_read".to_owned()),
            grant: Grant::Device,
        };
        // Every field of the token set a session read gives back.
        let read = async || serde_json::to_value(session.tokens().await.unwrap()).unwrap();
        let want = serde_json::to_value(Some(&tokens)).unwrap();
        let string_at =
            async |key| matches!(session.0.get_value(key).await, Ok(Some(Value::String(_))));
        let ada = Identity {
            sub: "u-1".into(),
            name: Some("Ada".into()),
            email: None,
        };
        session.sign_in(&tokens, Some(&ada)).await.unwrap();
        assert_eq!(session.identity().await.unwrap(), Some(ada.clone()));
        assert!(string_at(TOKENS_KEY).await, "not one string");
        assert_eq!(read().await, want);

        // How versions before this one kept it: read, and replaced when the tokens are next
        // written (a binary before this one, reading only the old key, then finds nothing).
        session.0.remove_value(TOKENS_KEY).await.unwrap();
        session.0.insert(OBJECT_TOKENS_KEY, &tokens).await.unwrap();
        assert!(session.has_tokens().await.unwrap());
        assert_eq!(read().await, want);
        session.save_refreshed(&tokens).await.unwrap();
        let old = session.0.get_value(OBJECT_TOKENS_KEY).await.unwrap();
        assert!(old.is_none() && string_at(TOKENS_KEY).await);

        // A sign-in without an id_token forgets the last one's identity; so does losing the tokens.
        session.sign_in(&tokens, None).await.unwrap();
        assert_eq!(session.identity().await.unwrap(), None);
        session.sign_in(&tokens, Some(&ada)).await.unwrap();
        session.forget_tokens().await.unwrap();
        assert_eq!(session.identity().await.unwrap(), None);
        assert_eq!(read().await, Value::Null);
        assert!(!session.has_tokens().await.unwrap());
    }
}
