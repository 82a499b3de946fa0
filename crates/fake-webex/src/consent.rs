//! `GET`/`POST /v1/authorize`: request checks, the PKCE challenge, the consent page and decision.

use std::{collections::HashMap, sync::Arc};

use askama::Template;
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use url::Url;

use super::{
    oidc::OIDC_SCOPES,
    server::{Fake, World},
    wire::{form_pairs, message, render},
};

/// What the consent form carries back to `POST /v1/authorize`.
const AUTHORIZE_PARAMS: &str =
    "response_type client_id redirect_uri scope state nonce code_challenge code_challenge_method";

/// A validated `/authorize` request.
pub(super) struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Normalised to single spaces.
    pub scope: String,
    pub state: Option<String>,
    /// OpenID Connect's `nonce`, echoed in the id_token.
    pub nonce: Option<String>,
    pub challenge: Option<Challenge>,
}

/// The PKCE `code_challenge` of a request, checked against the verifier at code exchange.
#[derive(Clone)]
pub(super) struct Challenge {
    value: String,
    s256: bool,
}

impl Challenge {
    pub fn verifies(&self, verifier: &str) -> bool {
        if self.s256 {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == self.value
        } else {
            verifier == self.value
        }
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub(super) fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl World {
    /// Checks an `/authorize` request; errors go on an HTML page, never to the redirect URI.
    pub fn validate_authorize(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<AuthorizeRequest, String> {
        let get = |name: &str| params.get(name).map(String::as_str);
        if get("response_type") != Some("code") {
            return Err("response_type must be \"code\".".into());
        }
        let client_id = get("client_id").unwrap_or_default();
        if client_id != self.config.client_id {
            return Err("The client_id is unknown.".into());
        }
        let redirect_uri = get("redirect_uri").unwrap_or_default();
        if !self
            .config
            .redirect_uris
            .iter()
            .any(|uri| uri == redirect_uri)
        {
            return Err("The redirect_uri is not registered for this integration.".into());
        }
        let scope = self.check_scope(get("scope").unwrap_or_default())?;
        let challenge = match get("code_challenge").filter(|c| !c.is_empty()) {
            None => None,
            // RFC 7636 §4.3: a challenge without a method is "plain".
            Some(value) => match get("code_challenge_method").unwrap_or("plain") {
                method @ ("S256" | "plain") => Some(Challenge {
                    value: value.to_owned(),
                    s256: method == "S256",
                }),
                other => return Err(format!("Unsupported code_challenge_method {other:?}.")),
            },
        };
        Ok(AuthorizeRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state: get("state").map(str::to_owned),
            nonce: get("nonce").map(str::to_owned),
            challenge,
        })
    }

    /// A non-empty, space-separated list of registered scopes (OpenID Connect's need no
    /// registering, as on Webex), normalised.
    pub fn check_scope(&self, scope: &str) -> Result<String, String> {
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        if scopes.is_empty() {
            return Err("invalid_scope: no scope was requested.".into());
        }
        if let Some(bad) = scopes.iter().find(|s| {
            !OIDC_SCOPES.contains(s) && !self.config.registered_scopes.iter().any(|r| r == *s)
        }) {
            return Err(format!(
                "invalid_scope: {bad} is not registered for this integration."
            ));
        }
        Ok(scopes.join(" "))
    }
}

#[derive(Template)]
#[template(path = "fake/authorize.html")]
struct AuthorizePage<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    scopes: Vec<&'a str>,
    fields: Vec<(&'a str, &'a str)>,
}

/// `GET /v1/authorize`: the consent page, or an error page (never a redirect) for a bad request.
pub(super) async fn authorize_page(
    State(fake): State<Arc<Fake>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let request = fake.lock().validate_authorize(&params);
    match request {
        Err(problem) => message(StatusCode::BAD_REQUEST, "Authorization error", &problem),
        Ok(request) => {
            let fields = AUTHORIZE_PARAMS
                .split(' ')
                .filter_map(|name| params.get(name).map(|value| (name, value.as_str())))
                .collect();
            let page = AuthorizePage {
                client_id: &request.client_id,
                redirect_uri: &request.redirect_uri,
                scopes: request.scope.split(' ').collect(),
                fields,
            };
            render(StatusCode::OK, &page)
        }
    }
}

/// `POST /v1/authorize`: Accept or Decline, answered with a 302 back to the client like real Webex.
pub(super) async fn authorize_decision(State(fake): State<Arc<Fake>>, body: Bytes) -> Response {
    let form = form_pairs(&body);
    let request = match fake.lock().validate_authorize(&form) {
        Ok(request) => request,
        Err(problem) => return message(StatusCode::BAD_REQUEST, "Authorization error", &problem),
    };
    let (Ok(mut target), Some(decision)) =
        (Url::parse(&request.redirect_uri), form.get("decision"))
    else {
        return message(
            StatusCode::BAD_REQUEST,
            "Authorization error",
            "Malformed request.",
        );
    };
    // url's form encoding gives the client back `state` byte-for-byte once decoded. Anything
    // but Accept declines: the safe reading of an unexpected button value.
    let mut query = target.query_pairs_mut();
    if decision == "accept" {
        query.append_pair("code", &fake.lock().issue_code(&request));
    } else {
        query.append_pair("error", "access_denied");
        query.append_pair("error_description", "The user declined");
    }
    if let Some(state) = &request.state {
        query.append_pair("state", state);
    }
    drop(query);
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}
