//! The token set kept in the session, and [`Authed`]: calls Webex with a fresh access token.
//!
//! Rules (the Flask samples got each of these wrong):
//! - tokens live server-side in the session store; the cookie only holds the session id;
//! - refresh before a call when the access token expires within 60 s;
//! - a call answered 401 refreshes once and retries once; a second 401 means "sign in again";
//! - one refresh at a time per session: concurrent requests wait on a lock, re-load the session
//!   and re-check, so N parallel requests with an expired token make one refresh call;
//! - keep the old refresh token when Webex omits it; `invalid_grant` clears the tokens;
//! - a 429 is waited out once when `Retry-After` is 10 s or less.

use crate::error::AppError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::webex::{TokenResponse, WebexError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower_sessions::Session;

/// Session key of the [`TokenSet`].
pub const TOKENS_KEY: &str = "webex.tokens";
/// Session key of when a signed-in request last renewed the session's expiry (Unix seconds).
const TOUCHED_KEY: &str = "session.touched";
/// A signed-in session is written (and so its inactivity expiry renewed) at most once a day,
/// not on every request.
pub const TOUCH_EVERY_SECS: u64 = 86_400;
/// Refresh when the access token expires within this margin.
const REFRESH_MARGIN_SECS: u64 = 60;
/// The longest `Retry-After` we wait out inside a request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Which flow produced the tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grant {
    AuthorizationCode,
    Device,
}

impl Grant {
    pub fn describe(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization code",
            Self::Device => "device sign-in",
        }
    }
}

/// What the session keeps. Instants are Unix seconds, so any store can hold them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: Secret,
    pub access_expires_at: u64,
    pub refresh_token: Option<Secret>,
    pub refresh_expires_at: Option<u64>,
    pub scope: Option<String>,
    pub grant: Grant,
}

pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TokenSet {
    pub fn new(response: TokenResponse, grant: Grant) -> Self {
        let now = unix_now();
        Self {
            access_token: response.access_token,
            access_expires_at: now.saturating_add(response.expires_in),
            refresh_token: response.refresh_token,
            refresh_expires_at: response
                .refresh_token_expires_in
                .map(|s| now.saturating_add(s)),
            scope: response.scope,
            grant,
        }
    }

    /// The set after a refresh: Webex may omit the refresh token (keep ours) or the scope.
    fn refreshed(&self, response: TokenResponse) -> Self {
        let mut next = Self::new(response, self.grant);
        if next.refresh_token.is_none() {
            next.refresh_token = self.refresh_token.clone();
            next.refresh_expires_at = self.refresh_expires_at;
        }
        if next.scope.is_none() {
            next.scope = self.scope.clone();
        }
        next
    }

    pub fn needs_refresh(&self, now: u64) -> bool {
        now.saturating_add(REFRESH_MARGIN_SECS) >= self.access_expires_at
    }

    /// Seconds until the access token expires (0 when it has).
    pub fn expires_in(&self, now: u64) -> u64 {
        self.access_expires_at.saturating_sub(now)
    }
}

/// Stores a new token set after a sign-in, under a new session id (against session fixation).
pub async fn store_new_login(session: &Session, tokens: &TokenSet) -> Result<(), AppError> {
    session.insert(TOKENS_KEY, tokens).await?;
    session.insert(TOUCHED_KEY, unix_now()).await?;
    session.cycle_id().await?;
    Ok(())
}

pub async fn has_tokens(session: &Session) -> Result<bool, AppError> {
    // Presence only: no need to decode the token set.
    Ok(session.get_value(TOKENS_KEY).await?.is_some())
}

/// One async mutex per session id that is refreshing or waiting to; entries go away when the
/// last holder is done, so the map only holds sessions refreshing right now.
#[derive(Clone, Default)]
pub struct RefreshLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

pub struct RefreshGuard {
    locks: RefreshLocks,
    key: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl RefreshLocks {
    pub async fn lock(&self, key: &str) -> RefreshGuard {
        let mutex = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_owned()).or_default().clone()
        };
        RefreshGuard {
            locks: self.clone(),
            key: key.to_owned(),
            _guard: mutex.lock_owned().await,
        }
    }

    /// How many sessions are refreshing now (for tests).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // Two owners left (the map and our guard): nobody else is waiting, forget the entry.
        // Every clone is taken under this same map lock, so the count cannot grow meanwhile.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

/// The extractor for pages that need tokens: without them, the request goes to `/`.
pub struct Authed {
    pub session: Session,
    pub tokens: TokenSet,
    state: AppState,
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| AppError::Internal(msg.to_owned()))?;
        let tokens = session
            .get::<TokenSet>(TOKENS_KEY)
            .await?
            .ok_or(AppError::NotSignedIn)?;
        let now = unix_now();
        let touched: Option<u64> = session.get(TOUCHED_KEY).await?;
        if touched.is_none_or(|t| now.saturating_sub(t) >= TOUCH_EVERY_SECS) {
            session.insert(TOUCHED_KEY, now).await?;
        }
        Ok(Self {
            session,
            tokens,
            state: state.clone(),
        })
    }
}

impl Authed {
    /// Runs `call` with a fresh access token: refreshes ahead of expiry, refreshes once and
    /// retries once on 401, waits out one short 429. At most three calls in all.
    pub async fn call<T, F, Fut>(&mut self, call: F) -> Result<T, AppError>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, WebexError>>,
    {
        if self.tokens.needs_refresh(unix_now()) {
            self.refresh(None).await?;
        }
        let (mut refreshed, mut waited) = (false, false);
        loop {
            let token = self.tokens.access_token.clone();
            match call(token.clone()).await {
                Ok(value) => return Ok(value),
                Err(WebexError::Unauthorized { .. }) if !refreshed => {
                    refreshed = true;
                    self.refresh(Some(&token)).await?;
                }
                Err(WebexError::Unauthorized { .. }) => {
                    tracing::warn!(
                        "Webex refused a freshly refreshed token; clearing the session's tokens"
                    );
                    self.forget().await?;
                    return Err(AppError::SignInAgain);
                }
                Err(WebexError::RateLimited {
                    retry_after: Some(wait),
                    ..
                }) if !waited && wait <= MAX_RETRY_AFTER => {
                    waited = true;
                    tracing::info!(
                        wait_secs = wait.as_secs(),
                        "Webex rate limited us; waiting once"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Refreshes under the session's lock. `rejected` is the token Webex just refused (refresh
    /// unless someone already replaced it); `None` means "refresh if it is still near expiry".
    async fn refresh(&mut self, rejected: Option<&Secret>) -> Result<(), AppError> {
        let key = self
            .session
            .id()
            .map(|id| id.to_string())
            .ok_or(AppError::NotSignedIn)?;
        // One refresh at a time per session: in this process, then across instances (Redis).
        let _guard = self.state.refresh_locks.lock(&key).await;
        let owner = crate::webex::oauth::random_token();
        let _shared = self
            .state
            .store
            .shared_lock(&format!("refresh:{key}"), owner.expose())
            .await?;
        // Another request may have refreshed while we waited: read what the store has now.
        self.session.load().await?;
        let current = self
            .session
            .get::<TokenSet>(TOKENS_KEY)
            .await?
            .ok_or(AppError::NotSignedIn)?;
        let still_needed = match rejected {
            Some(token) => current.access_token == *token,
            None => current.needs_refresh(unix_now()),
        };
        if !still_needed {
            self.tokens = current;
            return Ok(());
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            self.forget().await?;
            return Err(AppError::SignInAgain);
        };
        match self.state.webex.refresh(&refresh_token).await {
            Ok(response) => {
                let next = current.refreshed(response);
                self.session.insert(TOKENS_KEY, &next).await?;
                // Save now, before the lock opens, so the waiting requests find the new tokens.
                self.session.save().await?;
                self.tokens = next;
                tracing::info!("access token refreshed");
                Ok(())
            }
            Err(err) if err.oauth_code() == Some("invalid_grant") => {
                self.forget().await?;
                Err(AppError::SignInAgain)
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn forget(&self) -> Result<(), AppError> {
        self.session.remove::<TokenSet>(TOKENS_KEY).await?;
        self.session.save().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> TokenResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn refresh_keeps_the_old_refresh_token_when_webex_omits_it() {
        let first = TokenSet::new(
            response(
                r#"{"access_token":"a1","expires_in":100,"refresh_token":"r1","refresh_token_expires_in":1000,"scope":"spark:all"}"#,
            ),
            Grant::Device,
        );
        let next = first.refreshed(response(r#"{"access_token":"a2","expires_in":100}"#));
        assert_eq!(next.access_token.expose(), "a2");
        assert_eq!(next.refresh_token.as_ref().map(Secret::expose), Some("r1"));
        assert_eq!(next.scope.as_deref(), Some("spark:all"));
        assert_eq!(next.grant, Grant::Device);
        let rotated = first.refreshed(response(
            r#"{"access_token":"a3","expires_in":100,"refresh_token":"r2"}"#,
        ));
        assert_eq!(
            rotated.refresh_token.as_ref().map(Secret::expose),
            Some("r2")
        );
    }

    #[test]
    fn refresh_is_due_within_sixty_seconds_of_expiry() {
        let t = TokenSet::new(
            response(r#"{"access_token":"a","expires_in":1000}"#),
            Grant::AuthorizationCode,
        );
        let now = unix_now();
        assert!(!t.needs_refresh(now));
        assert!(t.needs_refresh(now + 940));
        assert!(!format!("{t:?}").contains("\"a\""));
    }

    #[tokio::test]
    async fn refresh_locks_serialise_one_key_and_clean_up() {
        let locks = RefreshLocks::default();
        let first = locks.lock("s1").await;
        let other = locks.lock("s2").await; // another session is not blocked
        assert_eq!(locks.len(), 2);
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _g = locks.lock("s1").await;
            })
        };
        drop(other);
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(locks.is_empty());
    }
}
