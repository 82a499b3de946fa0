//! `/authorize` and `/access_token`: the authorization-code grant with PKCE, and the refresh grant.

use super::{TokenResponse, WebexClient, WebexError, decode_token, send};
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::Url;

/// The S256 code challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose().as_bytes()))
}

impl WebexClient {
    /// The browser goes here to approve the integration. `state`, the nonce and the challenge
    /// may travel in the URL: none is a secret (the verifier stays in the session).
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        scope: &str,
        state: &Secret,
        verifier: &Secret,
        nonce: Option<&Secret>,
    ) -> Url {
        let mut url = self.endpoint("authorize");
        url.query_pairs_mut()
            .append_pair("client_id", &self.creds.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", state.expose())
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(nonce) = nonce {
            url.query_pairs_mut().append_pair("nonce", nonce.expose());
        }
        url
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &Secret,
        verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenResponse, WebexError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", &self.creds.client_id),
            ("client_secret", self.creds.client_secret.expose()),
            ("code", code.expose()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.expose()),
        ];
        self.token_request(&form, "code exchange response").await
    }

    /// Trades a refresh token for a new access token.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, WebexError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", &self.creds.client_id),
            ("client_secret", self.creds.client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ];
        self.token_request(&form, "token refresh response").await
    }

    async fn token_request(
        &self,
        form: &[(&str, &str)],
        what: &'static str,
    ) -> Result<TokenResponse, WebexError> {
        let response = send(self.http.post(self.endpoint("access_token")).form(form)).await?;
        let (mut tokens, tracking_id): (TokenResponse, _) = decode_token(response, what).await?;
        tokens.tracking_id = tracking_id;
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        let verifier = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce_challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn token_json_tolerates_missing_optional_fields_and_rejects_missing_required_ones() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":60}"#).unwrap();
        assert!(t.refresh_token.is_none() && t.scope.is_none());
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"a","expires_in":1209599,"refresh_token":"r","refresh_token_expires_in":7775999,"token_type":"Bearer","scope":"spark:all","extra":1}"#,
        )
        .unwrap();
        assert_eq!(t.refresh_token_expires_in, Some(7775999));
        for bad in [
            "{}",
            r#"{"access_token":"a"}"#,
            r#"{"access_token":1,"expires_in":60}"#,
            r#"{"access_token":"a","expires_in":-5}"#,
            r#"{"access_token":"a","expires_in":"soon"}"#,
            "[]",
            "",
        ] {
            assert!(serde_json::from_str::<TokenResponse>(bad).is_err(), "{bad}");
        }
    }
}
