//! [`Authed`]: the extractor of pages that need tokens; it calls Webex with a fresh access token.
//!
//! Rules (the Flask samples got each of these wrong): tokens live server-side in the session
//! store, the cookie holds only the session id; refresh before a call when the access token
//! expires within 60 s; a 401 (whatever it says: an API reply has no OAuth code) refreshes and
//! retries once, a second one means "sign in again"; at most one refresh per request (a token
//! Webex says lives 0 s serves every page of `/rooms`); one refresh at a time per session
//! (concurrent requests wait on a lock, re-load the session and re-check, so N of them make one
//! refresh call); keep the old refresh token when Webex omits it; `invalid_grant` clears the
//! tokens; a 429 is waited out once when `Retry-After` is 10 s or less.

use super::session::WebSession;
use crate::clock::unix_now;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::Lock;
use crate::telemetry;
use crate::tokens::TokenSet;
use crate::web::error::AppError;
use crate::webex::WebexError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::time::Duration;

/// The longest `Retry-After` we wait out inside a request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A signed-in request: without tokens, it answers with a redirect to `/`.
pub struct Authed {
    session: WebSession,
    tokens: TokenSet,
    state: AppState,
    /// This request made its one refresh (or found the tokens refreshed by another).
    refreshed: bool,
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let session = WebSession::from_request_parts(parts, state).await?;
        let tokens = session.tokens().await?.ok_or(AppError::NotSignedIn)?;
        session.touch_if_due(unix_now()).await?;
        Ok(Self {
            session,
            tokens,
            state: state.clone(),
            refreshed: false,
        })
    }
}

impl Authed {
    /// The tokens as they are now (after any refresh).
    pub fn tokens(&self) -> &TokenSet {
        &self.tokens
    }

    /// "NAME (EMAIL)" of who signed in, when an id_token proved it.
    pub async fn signed_in_as(&self) -> Result<Option<String>, AppError> {
        Ok(self.session.identity().await?.map(|who| who.shown()))
    }

    /// Runs `call` with a fresh access token, by the rules above: at most three calls in all.
    pub async fn call<T, F, Fut>(&mut self, call: F) -> Result<T, AppError>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, WebexError>>,
    {
        if !self.refreshed && self.tokens.needs_refresh(unix_now()) {
            self.refresh(None).await?;
        }
        let mut waited = false;
        loop {
            let token = self.tokens.access_token.clone();
            match call(token.clone()).await {
                Ok(value) => return Ok(value),
                Err(WebexError::Unauthorized { .. }) if !self.refreshed => {
                    self.refresh(Some(&token)).await?;
                }
                Err(WebexError::Unauthorized { .. }) => {
                    tracing::warn!(
                        "Webex refused a freshly refreshed token; clearing the session's tokens"
                    );
                    return self.sign_in_again().await;
                }
                Err(WebexError::RateLimited {
                    retry_after: Some(wait),
                    ..
                }) if !waited && wait <= MAX_RETRY_AFTER => {
                    waited = true;
                    let wait_secs = wait.as_secs();
                    tracing::info!(wait_secs, "Webex rate limited us; waiting once");
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// This request's one refresh, under the session's lock: unless another request already
    /// replaced `rejected` (the token Webex just refused) or, for `None`, the token near expiry.
    async fn refresh(&mut self, rejected: Option<&Secret>) -> Result<(), AppError> {
        self.refreshed = true;
        // One refresh at a time per session; another may have refreshed while we waited.
        let locks = self.state.session_locks();
        let Some(_guard) = self.session.lock(locks, Lock::Refresh).await? else {
            return Err(AppError::NotSignedIn);
        };
        let current = self.session.tokens().await?.ok_or(AppError::NotSignedIn)?;
        let still_needed = match rejected {
            Some(token) => current.access_token == *token,
            None => current.needs_refresh(unix_now()),
        };
        if !still_needed {
            count_refresh("already_refreshed");
            self.tokens = current;
            return Ok(());
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            count_refresh("sign_in_again");
            return self.sign_in_again().await;
        };
        match self.state.webex().refresh(&refresh_token).await {
            Ok(response) => {
                let next = current.refreshed(response);
                // Saved before the lock opens, so the waiting requests find the new tokens.
                self.session.save_refreshed(&next).await?;
                self.tokens = next;
                tracing::info!("access token refreshed");
                count_refresh("refreshed");
                Ok(())
            }
            Err(err) if err.oauth_code() == Some("invalid_grant") => {
                count_refresh("sign_in_again");
                self.sign_in_again().await
            }
            Err(err) => {
                count_refresh("error");
                Err(err.into())
            }
        }
    }

    /// Webex no longer accepts this session's tokens: they go, and the user signs in again.
    async fn sign_in_again<T>(&self) -> Result<T, AppError> {
        self.session.forget_tokens().await?;
        Err(AppError::SignInAgain)
    }
}

fn count_refresh(outcome: &'static str) {
    metrics::counter!(telemetry::TOKEN_REFRESHES, "outcome" => outcome).increment(1);
}
