//! The token set a signed-in session keeps (plain data), and when it is due for a refresh. The
//! refresh rules that use it live in [`crate::web`]'s `Authed` extractor.

use crate::clock::unix_now;
use crate::secret::Secret;
use crate::webex::TokenResponse;
use serde::{Deserialize, Serialize};

/// Refresh when the access token expires within this margin.
const REFRESH_MARGIN_SECS: u64 = 60;

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

impl TokenSet {
    pub fn new(response: TokenResponse, grant: Grant) -> Self {
        let now = unix_now();
        let at = |secs: u64| now.saturating_add(secs);
        Self {
            access_token: response.access_token,
            access_expires_at: at(response.expires_in),
            refresh_token: response.refresh_token,
            refresh_expires_at: response.refresh_token_expires_in.map(at),
            scope: response.scope,
            grant,
        }
    }

    /// The set after a refresh: Webex may omit the refresh token (keep ours) or the scope.
    pub fn refreshed(&self, response: TokenResponse) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> TokenResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn refresh_keeps_the_old_refresh_token_when_webex_omits_it() {
        let json = r#"{"access_token":"a1","expires_in":100,"refresh_token":"r1","refresh_token_expires_in":1000,"scope":"spark:all"}"#;
        let first = TokenSet::new(response(json), Grant::Device);
        let refresh = |json| first.refreshed(response(json));
        let next = refresh(r#"{"access_token":"a2","expires_in":100}"#);
        assert_eq!(next.access_token.expose(), "a2");
        assert_eq!(next.refresh_token.as_ref().map(Secret::expose), Some("r1"));
        assert_eq!(next.scope.as_deref(), Some("spark:all"));
        assert_eq!(next.grant, Grant::Device);
        let rotated = refresh(r#"{"access_token":"a3","expires_in":100,"refresh_token":"r2"}"#);
        let rotated = rotated.refresh_token.as_ref().map(Secret::expose);
        assert_eq!(rotated, Some("r2"));
    }

    #[test]
    fn refresh_is_due_within_sixty_seconds_of_expiry() {
        let json = r#"{"access_token":"a","expires_in":1000}"#;
        let t = TokenSet::new(response(json), Grant::AuthorizationCode);
        let now = unix_now();
        assert!(!t.needs_refresh(now));
        assert!(t.needs_refresh(now + 940));
        assert!(!format!("{t:?}").contains("\"a\""));
    }
}
