//! Codes and tokens: issuing, exchanging, refreshing, checking; `POST /v1/access_token`.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::Serialize;

use super::{
    Counter, Endpoint, Fault, Forgery,
    consent::{AuthorizeRequest, Challenge, is_valid_verifier},
    faults::take_fault,
    ids::random_token,
    server::{Fake, World},
    wire::{ApiError, Reply, basic_credentials, form_pairs, json_response, require_form},
};

const INVALID_REFRESH: &str =
    "The refresh token provided is expired, revoked, malformed, or invalid.";

/// The token JSON of `/access_token` and `/device/token`.
#[derive(Serialize)]
pub(super) struct TokenGrant {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_token_expires_in: u64,
    pub token_type: &'static str,
    pub scope: String,
    /// With `openid` granted, on a code exchange or a device grant (never on a refresh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// An authorization code, from Accept on the consent page until its one exchange.
pub(super) struct AuthCode {
    client_id: String,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    challenge: Option<Challenge>,
    expires: Instant,
}

/// An access or refresh token.
pub(super) struct Token {
    client_id: String,
    scope: String,
    expires: Instant,
    revoked: bool,
}

impl World {
    /// Client authentication against the one registered integration.
    pub fn is_client(&self, id: &str, secret: &str) -> bool {
        id == self.config.client_id && secret == self.config.client_secret
    }

    pub fn revoke_access_tokens(&mut self) {
        self.access.values_mut().for_each(|t| t.revoked = true);
    }

    pub fn revoke_refresh_tokens(&mut self) {
        self.refresh.values_mut().for_each(|t| t.revoked = true);
    }

    pub fn issue_code(&mut self, request: &AuthorizeRequest) -> String {
        let code = random_token();
        self.issued.push(code.clone());
        let stored = AuthCode {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            challenge: request.challenge.clone(),
            expires: Instant::now() + self.config.code_ttl,
        };
        self.codes.insert(code.clone(), stored);
        code
    }

    /// `grant_type=authorization_code`. The code is removed before any check, so every use,
    /// even a failed one, consumes it. `forgery`: how to forge the answer's id_token, if at all.
    pub fn exchange_code(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        forgery: Option<&Forgery>,
    ) -> Result<TokenGrant, ApiError> {
        let stored = self.codes.remove(code).ok_or_else(|| {
            ApiError::invalid_grant("The authorization code is invalid or was already used.")
        })?;
        let problem = match (&stored.challenge, verifier) {
            _ if Instant::now() >= stored.expires => Some("The authorization code has expired."),
            _ if stored.client_id != client_id => Some("The code was issued to another client."),
            _ if redirect_uri != Some(&stored.redirect_uri) => {
                Some("The redirect_uri does not match.")
            }
            (None, Some(_)) => Some("A code_verifier was sent but no code_challenge was given."),
            (Some(_), None) => Some("The code_verifier is required."),
            (Some(_), Some(v)) if !is_valid_verifier(v) => Some("The code_verifier is malformed."),
            (Some(c), Some(v)) if !c.verifies(v) => Some("The code_verifier does not match."),
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(ApiError::invalid_grant(problem));
        }
        let refresh = self.mint(true, client_id, &stored.scope);
        let mut grant = self.grant(client_id, &stored.scope, refresh);
        grant.id_token = self.id_token(client_id, &stored.scope, stored.nonce.as_deref(), forgery);
        Ok(grant)
    }

    /// `grant_type=refresh_token`: a new access token; the refresh token changes only if rotating.
    pub fn refresh(&mut self, client_id: &str, token: &str) -> Result<TokenGrant, ApiError> {
        let now = Instant::now();
        let stored = self
            .refresh
            .get(token)
            .filter(|t| !t.revoked && now < t.expires && t.client_id == client_id)
            .ok_or_else(|| ApiError::invalid_grant(INVALID_REFRESH))?;
        let scope = stored.scope.clone();
        // Unrotated, the remaining lifetime keeps counting down, as in Webex's logged responses.
        let remaining = stored.expires.saturating_duration_since(now).as_secs();
        let refresh = if self.config.rotate_refresh_tokens {
            self.refresh.remove(token);
            self.mint(true, client_id, &scope)
        } else {
            (token.to_owned(), remaining)
        };
        Ok(self.grant(client_id, &scope, refresh))
    }

    /// A new access or refresh token with its lifetime in seconds, remembered for `issued_secrets`.
    pub fn mint(&mut self, refresh: bool, client_id: &str, scope: &str) -> (String, u64) {
        let token = random_token();
        self.issued.push(token.clone());
        let (map, ttl) = match refresh {
            true => (&mut self.refresh, self.config.refresh_token_ttl),
            false => (&mut self.access, self.config.access_token_ttl),
        };
        let (client_id, scope) = (client_id.to_owned(), scope.to_owned());
        let expires = Instant::now() + ttl;
        map.insert(
            token.clone(),
            Token {
                client_id,
                scope,
                expires,
                revoked: false,
            },
        );
        (token, ttl.as_secs())
    }

    /// The token JSON: a new access token plus the given refresh token and its lifetime.
    pub fn grant(&mut self, client_id: &str, scope: &str, refresh: (String, u64)) -> TokenGrant {
        let (access_token, expires_in) = self.mint(false, client_id, scope);
        TokenGrant {
            access_token,
            expires_in,
            refresh_token: refresh.0,
            refresh_token_expires_in: refresh.1,
            token_type: "Bearer",
            scope: scope.to_owned(),
            id_token: None,
        }
    }

    /// Checks a Bearer token and that it carries one of `scopes`; returns all its scopes.
    pub fn check_access(
        &self,
        authorization: Option<&str>,
        scopes: &[&str],
    ) -> Result<String, ApiError> {
        let token = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(ApiError::unauthorized)?;
        let now = Instant::now();
        let stored = self
            .access
            .get(token)
            .filter(|t| !t.revoked && now < t.expires)
            .ok_or_else(ApiError::unauthorized)?;
        if stored.scope.split(' ').any(|s| scopes.contains(&s)) {
            Ok(stored.scope.clone())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// `POST /v1/access_token`: authorization code and refresh grants.
pub(super) async fn access_token(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    // Counted from a lenient parse so faulted and malformed requests count too.
    let grant_type = form_pairs(&body).remove("grant_type").unwrap_or_default();
    match grant_type.as_str() {
        "authorization_code" => fake.lock().bump(Counter::CodeExchanges),
        "refresh_token" => fake.lock().bump(Counter::Refreshes),
        _ => {}
    }
    let (forgery, said_lifetime) = match take_fault(&fake, Endpoint::AccessToken, &body).await? {
        Some(Fault::IdToken(forgery)) => (Some(forgery), None),
        Some(Fault::ExpiresIn(secs)) => (None, Some(secs)),
        _ => (None, None),
    };
    let form = require_form(&headers, &body)?;
    let field = |name: &str| form.get(name).map(String::as_str);

    // Body credentials or Basic, as Webex documents; a body client_id must then agree with Basic.
    let (client_id, secret) = match basic_credentials(&headers) {
        Some((id, secret)) if field("client_id").is_none_or(|body_id| body_id == id) => {
            (id, secret)
        }
        Some(_) => return Err(ApiError::invalid_client().into()),
        None => (
            field("client_id").unwrap_or_default().to_owned(),
            field("client_secret").unwrap_or_default().to_owned(),
        ),
    };
    let mut world = fake.lock();
    if !world.is_client(&client_id, &secret) {
        return Err(ApiError::invalid_client().into());
    }
    let mut grant = match grant_type.as_str() {
        "authorization_code" => world.exchange_code(
            &client_id,
            field("code").unwrap_or_default(),
            field("redirect_uri"),
            field("code_verifier"),
            forgery.as_ref(),
        )?,
        "refresh_token" => world.refresh(&client_id, field("refresh_token").unwrap_or_default())?,
        _ => {
            let text = "The authorization grant type is not supported.";
            return Err(ApiError::bad_request("unsupported_grant_type", text).into());
        }
    };
    if let Some(secs) = said_lifetime {
        grant.expires_in = secs;
    }
    Ok(json_response(StatusCode::OK, &grant))
}
