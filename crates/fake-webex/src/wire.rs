//! What every endpoint of the fake uses: the Webex error envelope, JSON and HTML replies, forms.

use std::collections::HashMap;

use askama::Template;
use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;

use super::ids::tracking_id;

/// Handlers answer errors early with `?`; both sides are finished responses.
pub(super) type Reply = Result<Response, Response>;

/// Webex's JSON content type, charset included.
pub(super) const JSON: &str = "application/json;charset=UTF-8";
/// Webex's text for 400s it cannot attribute to a named OAuth error.
pub(super) const MALFORMED: &str =
    "The request could not be understood by the server due to malformed syntax.";

/// A Webex error: the status plus the envelope's `message` and `errors[0].description`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub description: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: &str, description: &str) -> Self {
        ApiError {
            status,
            message: message.to_owned(),
            description: description.to_owned(),
        }
    }

    pub fn bad_request(message: &str, description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message, description)
    }

    pub fn invalid_grant(description: &str) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    pub fn invalid_client() -> Self {
        let text = "Client authentication failed.";
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", text)
    }

    /// The exact 401 real Webex answers for a missing, unknown or expired access token.
    pub fn unauthorized() -> Self {
        let text =
            "The request requires a valid access token set in the Authorization request header.";
        Self::new(StatusCode::UNAUTHORIZED, text, text)
    }

    pub fn forbidden() -> Self {
        let text = "The server understood the request, but refused to fulfill it because \
                    the access token is missing required scopes.";
        Self::new(StatusCode::FORBIDDEN, text, text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let tracking = tracking_id();
        let body = json!({
            "message": self.message,
            "errors": [{ "description": self.description }],
            "trackingId": tracking,
        });
        let mut response = json_response(self.status, &body);
        if let Ok(value) = HeaderValue::from_str(&tracking) {
            response.headers_mut().insert("trackingid", value);
        }
        response
    }
}

impl From<ApiError> for Response {
    fn from(error: ApiError) -> Response {
        error.into_response()
    }
}

pub(super) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, JSON)], text).into_response()
}

#[derive(Template)]
#[template(path = "fake/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// The fake's pages load only their own stylesheet and images: no script, no inline style.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_SECURITY_POLICY, PAGE_CSP)],
            Html(html),
        )
            .into_response(),
        Err(err) => {
            tracing::error!(%err, "fake Webex template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(super) fn message(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &MessagePage { title, message })
}

/// Form fields of a body (first occurrence wins), whatever its content type.
pub(super) fn form_pairs(body: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        fields.entry(name.into()).or_insert_with(|| value.into());
    }
    fields
}

/// The OAuth endpoints only take form bodies; JSON and anything else get 415.
pub(super) fn require_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(form_pairs(body))
    } else {
        let text = "The request body must be application/x-www-form-urlencoded.";
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            text,
        ))
    }
}

pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub(super) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}
