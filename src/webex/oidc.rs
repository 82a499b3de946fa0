//! Login with Webex's HTTP side (OpenID Connect): the discovery document, the JWKS it points at,
//! and userinfo. Verifying what they say is [`crate::identity`]'s.

use super::{WebexClient, WebexError, decode, has_plain_host, refused, send};
use crate::secret::Secret;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use url::Url;

/// Discovery documents and userinfo answers are a few KB.
const MAX_SMALL_BODY: usize = 64 * 1024;
/// A key set: Webex publishes a few RSA keys, under 2 KB each.
const MAX_KEY_SET: usize = 256 * 1024;
/// Longer than any issuer or key set URL Webex uses.
const MAX_URL_LEN: usize = 2048;

/// The two fields of the discovery document we use.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// The issuer the document names (Webex's id_tokens carry another; see `identity::issuer`).
    pub issuer: String,
    /// Where the key set is: an absolute https URL (http only when `WEBEX_API_BASE` is http).
    pub jwks_uri: Url,
}

#[derive(Deserialize)]
struct RawDiscovery {
    issuer: String,
    jwks_uri: String,
}

/// What userinfo says about the token's user (the claims we show).
#[derive(Debug, Deserialize)]
pub struct UserInfo {
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl WebexClient {
    /// The integration's client id: the `aud` of its id_tokens.
    pub fn client_id(&self) -> &str {
        &self.creds.client_id
    }

    /// `{base}/.well-known/openid-configuration`, checked: an issuer, a key set URL we may fetch.
    pub async fn discovery(&self) -> Result<Discovery, WebexError> {
        const WHAT: &str = "OpenID configuration";
        let url = self.endpoint(".well-known/openid-configuration");
        let response = send(self.http.get(url)).await?;
        let (raw, tracking_id): (RawDiscovery, _) = decode(response, WHAT, MAX_SMALL_BODY).await?;
        let invalid = |problem| refused(WHAT, problem, tracking_id.clone());
        if raw.issuer.is_empty() || raw.issuer.len() > MAX_URL_LEN {
            return Err(invalid("a missing or oversized issuer"));
        }
        let jwks_uri = Url::parse(&raw.jwks_uri)
            .ok()
            .filter(|url| raw.jwks_uri.len() <= MAX_URL_LEN && self.may_fetch(url))
            .ok_or_else(|| invalid("a key set address that is not an https URL"))?;
        Ok(Discovery {
            issuer: raw.issuer,
            jwks_uri,
        })
    }

    /// https with a host and no credentials; http too when the API base is http (demo mode).
    fn may_fetch(&self, url: &Url) -> bool {
        (url.scheme() == "https" || url.scheme() == self.base.scheme()) && has_plain_host(url)
    }

    /// The key set at `uri` (public: no authentication); a body that is not a JWKS is `Decode`.
    pub async fn jwks(&self, uri: &Url) -> Result<JwkSet, WebexError> {
        let response = send(self.http.get(uri.clone())).await?;
        Ok(decode(response, "key set", MAX_KEY_SET).await?.0)
    }

    /// `GET {base}/userinfo` with the access token.
    pub async fn userinfo(&self, access_token: &Secret) -> Result<UserInfo, WebexError> {
        let request = self.http.get(self.endpoint("userinfo"));
        let response = send(request.bearer_auth(access_token.expose())).await?;
        Ok(decode(response, "userinfo answer", MAX_SMALL_BODY).await?.0)
    }
}
