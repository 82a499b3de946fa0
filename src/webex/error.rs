//! `WebexError`: every way a Webex call can fail, read from the status first, then from the body.
//!
//! Webex answers errors with its own envelope (`message`, `errors[0].description`, `trackingId`)
//! or RFC 6749 style (`error`, `error_description`); we read either, never keeping the raw body.
//! Of a token endpoint's error we keep only the OAuth code and the tracking id: its text could
//! echo the form we sent (client secret, code, PKCE verifier, refresh or device code), as a
//! broken endpoint or egress proxy may. Other text we keep is one plain line, 300 characters.

use super::body::{MAX_ERROR_BODY, read_capped};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use std::time::Duration;

/// [`WebexError::classify`] or [`WebexError::classify_api`].
type Classify = fn(StatusCode, &HeaderMap, &[u8]) -> WebexError;

#[derive(Debug, thiserror::Error)]
pub enum WebexError {
    /// 401: the access token is missing, expired or revoked.
    #[error("Webex refused the access token (401)")]
    Unauthorized { tracking_id: Option<String> },
    /// 403: the token lacks a scope or the user lacks a permission.
    #[error("Webex refused the request (403): {message}")]
    Forbidden {
        message: String,
        tracking_id: Option<String>,
    },
    /// 429: too many requests; `Retry-After` in seconds when Webex gave one.
    #[error("Webex is rate limiting us (429)")]
    RateLimited {
        retry_after: Option<Duration>,
        tracking_id: Option<String>,
    },
    /// Any other non-2xx answer. `code` is the OAuth-style code when the body had one
    /// (`invalid_grant`, `slow_down`, ...), `message` a short human text.
    #[error("Webex answered {status}: {message}")]
    Status {
        status: StatusCode,
        code: Option<String>,
        message: String,
        tracking_id: Option<String>,
    },
    /// A 2xx whose body is not the JSON we expect.
    #[error("Webex sent a {what} we cannot read")]
    Decode {
        what: &'static str,
        tracking_id: Option<String>,
    },
    /// A 2xx whose body is longer than we read (`limit` bytes): refused, not buffered.
    #[error("Webex sent a {what} larger than {limit} bytes")]
    TooLarge {
        what: &'static str,
        limit: usize,
        tracking_id: Option<String>,
    },
    /// A 2xx that reads as JSON but carries a value we refuse (`problem` says which, in words
    /// fit for the page: "a verification link that is not https").
    #[error("Webex sent a {what} with {problem}")]
    Invalid {
        what: &'static str,
        problem: &'static str,
        tracking_id: Option<String>,
    },
    /// Webex did not answer within the client's timeout.
    #[error("Webex did not answer in time")]
    Timeout,
    /// Connection refused, DNS, TLS, reset...
    #[error("cannot reach Webex: {0}")]
    Transport(String),
}

impl WebexError {
    /// Keeps only the failure's kind: reqwest's text names the URL and the causes.
    pub(crate) fn from_transport(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return Self::Timeout;
        }
        let kind = if err.is_connect() {
            "connection failed"
        } else if err.is_body() || err.is_decode() {
            "the connection broke while reading the answer"
        } else if err.is_request() {
            "the request could not be sent"
        } else {
            "transport error"
        };
        Self::Transport(kind.into())
    }

    /// Classifies a non-2xx answer with `classify` (one of the two below), its body read up to
    /// [`MAX_ERROR_BODY`]: an oversized or broken body is classified by its status alone (a 5xx
    /// stays transient).
    pub(crate) async fn from_response(response: Response, classify: Classify) -> Self {
        let (status, headers) = (response.status(), response.headers().clone());
        let body = read_capped(response, MAX_ERROR_BODY).await;
        classify(status, &headers, &body.unwrap_or_default())
    }

    /// A token endpoint's answer (`/access_token`, `/device/authorize`, `/device/token`): only
    /// its OAuth code and tracking id are kept, the message is the code (or the status's reason),
    /// never the body's text. A 401 with a code (`invalid_client`: the app's own credentials) is
    /// a [`Self::Status`], not a refused token.
    pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut envelope = Envelope::parse(body);
        envelope.message = envelope.code.clone();
        Self::from_parts(status, headers, envelope)
    }

    /// An API answer (`/rooms`, `/people/me`): the message is the body's, made one plain line.
    /// An API reply carries no OAuth code: a 401 is always [`Self::Unauthorized`] (refresh once
    /// and retry), whatever one word its `message` says (`unauthorized`, `invalid_token`).
    pub fn classify_api(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut envelope = Envelope::parse(body);
        envelope.code = None;
        Self::from_parts(status, headers, envelope)
    }

    /// The variant for `status`, its message the envelope's (else the status's reason).
    fn from_parts(status: StatusCode, headers: &HeaderMap, envelope: Envelope) -> Self {
        let message = envelope.message.unwrap_or_else(|| reason(status));
        let tracking_id = envelope.tracking_id.or_else(|| tracking_id(headers));
        match status {
            StatusCode::UNAUTHORIZED if envelope.code.is_none() => {
                Self::Unauthorized { tracking_id }
            }
            StatusCode::FORBIDDEN => Self::Forbidden {
                message,
                tracking_id,
            },
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited {
                retry_after: retry_after(headers),
                tracking_id,
            },
            _ => Self::Status {
                status,
                message,
                code: envelope.code,
                tracking_id,
            },
        }
    }

    /// The OAuth error code (`invalid_grant`, `slow_down`, ...), when Webex gave one.
    pub fn oauth_code(&self) -> Option<&str> {
        match self {
            Self::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn tracking_id(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { tracking_id }
            | Self::Forbidden { tracking_id, .. }
            | Self::RateLimited { tracking_id, .. }
            | Self::Status { tracking_id, .. }
            | Self::Decode { tracking_id, .. }
            | Self::TooLarge { tracking_id, .. }
            | Self::Invalid { tracking_id, .. } => tracking_id.as_deref(),
            Self::Timeout | Self::Transport(_) => None,
        }
    }

    /// Worth trying again later: 5xx, timeouts and transport failures.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => status.is_server_error(),
            Self::Timeout | Self::Transport(_) => true,
            _ => false,
        }
    }
}

/// The status's own words (`Bad Request`), for an answer without a code or text.
fn reason(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("error").to_owned()
}

/// The `TrackingID` header Webex puts on every response, when it looks like one.
pub fn tracking_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("trackingid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_tracking_id(v))
        .map(str::to_owned)
}

/// What Webex's tracking ids look like (`ROUTER_65F3…`, `WEBEX_…_0a1b-…`); anything else is not
/// kept, shown, logged or put in a URL (a broken endpoint may echo our form there).
pub fn is_tracking_id(id: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
    !id.is_empty() && id.len() <= 128 && id.bytes().all(allowed)
}

/// `Retry-After` in seconds (Webex documents seconds; an HTTP date is not used by Webex).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse().ok().map(Duration::from_secs)
}

/// What we read of an error body. Every field is optional; anything else is ignored.
#[derive(Debug, Default, PartialEq)]
pub struct Envelope {
    /// An OAuth-style code (one short word of `[a-z_]`), from `error`, or from
    /// `message`/`errors[0].description` when they hold a bare code such as `slow_down`.
    pub code: Option<String>,
    /// One line, without control characters, at most 300 characters (see [`plain_line`]).
    pub message: Option<String>,
    /// Only when it looks like one ([`is_tracking_id`]).
    pub tracking_id: Option<String>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    error: Option<serde_json::Value>,
    error_description: Option<String>,
    message: Option<String>,
    #[serde(default)]
    errors: Vec<RawItem>,
    #[serde(rename = "trackingId")]
    tracking_id: Option<String>,
}

#[derive(Deserialize)]
struct RawItem {
    description: Option<String>,
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Self {
        let Ok(raw) = serde_json::from_slice::<RawEnvelope>(body) else {
            return Self::default();
        };
        let description = raw.errors.into_iter().find_map(|item| item.description);
        let error = raw.error.and_then(|v| v.as_str().map(str::to_owned));
        let code = [&error, &raw.message, &description]
            .into_iter()
            .flatten()
            .find(|text| is_code(text))
            .cloned();
        let message = raw
            .error_description
            .or(raw.message)
            .or(description)
            .or(error)
            .map(|m| plain_line(&m))
            .filter(|m| !m.is_empty());
        Self {
            code,
            message,
            tracking_id: raw.tracking_id.filter(|t| is_tracking_id(t)),
        }
    }
}

/// `slow_down`, `invalid_grant`...: one short lowercase word with underscores.
fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Upstream text fit for a page and a log line: its words on one line, without control
/// characters (a terminal escape, a NUL) or the Unicode controls that reorder or hide text
/// (bidi overrides, zero-width marks), at most 300 characters (then `…`).
fn plain_line(s: &str) -> String {
    const MAX_CHARS: usize = 300;
    let visible = |c: &char| !c.is_control() && !is_format_control(*c);
    let words = s
        .split_whitespace()
        .map(|w| w.chars().filter(visible).collect::<String>());
    let line = words
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if line.chars().count() <= MAX_CHARS {
        return line;
    }
    line.chars().take(MAX_CHARS).chain(['…']).collect()
}

/// The invisible format characters that can make text read other than it is: bidi embeddings,
/// overrides and isolates, zero-width joiners and marks, the BOM.
fn is_format_control(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{061c}')
}

#[cfg(test)]
mod tests;
