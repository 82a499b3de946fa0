//! Our HTTP client for the Webex endpoints: one shared `reqwest::Client`, the base URL injected.
//!
//! The submodules mirror Webex's endpoints: [`oauth`] (`/authorize`, `/access_token`), [`device`]
//! (`/device/authorize`, `/device/token`), [`api`] (`/rooms`, `/people/me`) and [`oidc`] (the
//! OpenID configuration, the key set, `/userinfo`). Every reply is classified by
//! [`error::WebexError`] before anyone reads it, and every body is read up to a cap ([`body`]).

mod api;
mod body;
pub mod device;
mod error;
mod oauth;
pub mod oidc;

pub use api::Room;
#[cfg(feature = "test-support")]
pub use api::rooms_of_page;
pub use error::{WebexError, is_tracking_id};

use crate::secret::Secret;
use crate::telemetry;
use body::{MAX_BODY, ReadError, read_capped};
use reqwest::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The integration's credentials (demo mode uses the fake's).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// The one Webex client of the process; clones share one connection pool.
#[derive(Clone, Debug)]
pub struct WebexClient {
    http: reqwest::Client,
    base: Arc<Url>,
    creds: Arc<Credentials>,
}

impl WebexClient {
    /// `base` is `WEBEX_API_BASE` (e.g. `https://webexapis.com/v1`): every endpoint derives from it.
    pub fn new(
        base: Url,
        creds: Credentials,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, WebexError> {
        let http = reqwest::Client::builder()
            // OAuth endpoints must never be followed to another place: a redirect would carry our
            // form body (codes, secrets) wherever it points (SSRF and leak).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("webex-oauth-axum/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebexError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: Arc::new(base),
            creds: Arc::new(creds),
        })
    }

    /// `{base}/{path}`: the base may or may not end in `/`.
    fn endpoint(&self, path: &str) -> Url {
        let mut url = (*self.base).clone();
        // A base that cannot be a base (e.g. `mailto:`) is refused by config; kept as is.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.split('/'));
        }
        url
    }
}

/// A URL with a host and no credentials in it: one we may fetch or link to.
fn has_plain_host(url: &Url) -> bool {
    url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
}

/// Sends a request and turns transport failures into [`WebexError`]; counts and times it.
async fn send(request: reqwest::RequestBuilder) -> Result<Response, WebexError> {
    let (client, request) = request.build_split();
    let request = request.map_err(WebexError::from_transport)?;
    let endpoint = endpoint_label(request.url());
    let started = std::time::Instant::now();
    let result = client.execute(request).await;
    if telemetry::metrics_enabled() {
        let status = result
            .as_ref()
            .map_or_else(|_| "error".to_owned(), |r| r.status().as_str().to_owned());
        metrics::counter!(telemetry::WEBEX_REQUESTS, "endpoint" => endpoint, "status" => status)
            .increment(1);
        metrics::histogram!(telemetry::WEBEX_DURATION, "endpoint" => endpoint)
            .record(started.elapsed().as_secs_f64());
    }
    result.map_err(WebexError::from_transport)
}

/// The endpoint a URL calls, from a fixed list (a `next` link's path is Webex's to choose, and
/// must not become a label value of its own).
fn endpoint_label(url: &Url) -> &'static str {
    let path = url.path();
    [
        "access_token",
        "device/authorize",
        "device/token",
        "rooms",
        "people/me",
        "openid-configuration",
        "verification",
        "userinfo",
    ]
    .into_iter()
    .find(|endpoint| path.ends_with(endpoint))
    .unwrap_or("other")
}

/// A 2xx body of at most `limit` bytes and the reply's tracking id, or the failure classified.
async fn read_within(
    response: Response,
    what: &'static str,
    limit: usize,
) -> Result<(Vec<u8>, Option<String>), WebexError> {
    let tracking_id = error::tracking_id(response.headers());
    if !response.status().is_success() {
        return Err(WebexError::from_response(response, WebexError::classify_api).await);
    }
    match read_capped(response, limit).await {
        Ok(body) => Ok((body, tracking_id)),
        Err(ReadError::Transport(err)) => Err(WebexError::from_transport(err)),
        Err(ReadError::TooLarge) => {
            let id = tracking_id.as_deref();
            tracing::warn!(
                what,
                limit,
                tracking_id = id,
                "Webex sent a body larger than we read"
            );
            Err(WebexError::TooLarge {
                what,
                limit,
                tracking_id,
            })
        }
    }
}

/// [`read_within`], the body read as the JSON of a `T`.
async fn decode<T: DeserializeOwned>(
    response: Response,
    what: &'static str,
    limit: usize,
) -> Result<(T, Option<String>), WebexError> {
    let (body, tracking_id) = read_within(response, what, limit).await?;
    match serde_json::from_slice(&body) {
        Ok(value) => Ok((value, tracking_id)),
        Err(err) => Err(undecodable(what, &err, tracking_id)),
    }
}

/// [`decode`] for a token endpoint, whose failure keeps only its code ([`WebexError::classify`]).
async fn decode_token<T: DeserializeOwned>(
    response: Response,
    what: &'static str,
) -> Result<(T, Option<String>), WebexError> {
    if !response.status().is_success() {
        return Err(WebexError::from_response(response, WebexError::classify).await);
    }
    decode(response, what, MAX_BODY).await
}

/// A body that is not the JSON we expect, logged by where and how it failed, never with
/// serde_json's message: that quotes the value it could not read (a token, a terminal escape…).
fn undecodable(
    what: &'static str,
    err: &serde_json::Error,
    tracking_id: Option<String>,
) -> WebexError {
    let (kind, line, column) = (err.classify(), err.line(), err.column());
    let err = format!("{kind:?} error at line {line}, column {column}");
    tracing::warn!(what, %err, tracking_id = tracking_id.as_deref(), "Webex sent a body we cannot read");
    WebexError::Decode { what, tracking_id }
}

/// A readable reply carrying a value we refuse (`problem`, in words fit for the page), logged.
fn refused(what: &'static str, problem: &'static str, tracking_id: Option<String>) -> WebexError {
    let id = tracking_id.as_deref();
    tracing::warn!(
        what,
        problem,
        tracking_id = id,
        "Webex sent a reply we refuse"
    );
    WebexError::Invalid {
        what,
        problem,
        tracking_id,
    }
}

/// The token JSON of `/access_token` and `/device/token`.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: Secret,
    pub expires_in: u64,
    pub refresh_token: Option<Secret>,
    pub refresh_token_expires_in: Option<u64>,
    pub scope: Option<String>,
    /// OpenID Connect: who signed in, a JWS for `crate::identity` to verify (not on a refresh).
    pub id_token: Option<Secret>,
    /// The answer's `TrackingID`, for the page when its id_token is refused.
    #[serde(skip)]
    pub tracking_id: Option<String>,
}
