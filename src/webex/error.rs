//! `WebexError`: every way a Webex call can fail, read from the status first, then from the body.
//!
//! Webex answers errors with its own envelope (`message`, `errors[0].description`, `trackingId`);
//! its identity service may answer RFC 6749 style (`error`, `error_description`). We read any of
//! them and never keep the raw body, which could echo what we sent.

use super::body::{MAX_ERROR_BODY, read_capped};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use std::time::Duration;

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
    pub(crate) fn from_transport(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else {
            // reqwest's Display includes the URL, which never carries a secret here (secrets go in
            // bodies and headers), but keep only the cause chain's kind to stay short.
            Self::Transport(describe_transport(&err))
        }
    }

    /// Classifies a non-2xx response (consumes the body, keeps only the fields we know).
    pub(crate) async fn from_response(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        // A bounded read: Webex error bodies are small, and a broken proxy's may not be. An
        // oversized or broken one is classified by its status alone (a 5xx stays transient).
        let body = read_capped(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        Self::classify(status, &headers, &body)
    }

    /// The pure part of [`Self::from_response`], for unit tests.
    pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let envelope = Envelope::parse(body);
        let tracking_id = envelope
            .tracking_id
            .clone()
            .or_else(|| tracking_id(headers));
        match status {
            StatusCode::UNAUTHORIZED if envelope.code.is_none() => {
                Self::Unauthorized { tracking_id }
            }
            StatusCode::FORBIDDEN => Self::Forbidden {
                message: envelope.text(status),
                tracking_id,
            },
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited {
                retry_after: retry_after(headers),
                tracking_id,
            },
            _ => Self::Status {
                status,
                message: envelope.text(status),
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

fn describe_transport(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "connection failed".into()
    } else if err.is_body() || err.is_decode() {
        "the connection broke while reading the answer".into()
    } else if err.is_request() {
        "the request could not be sent".into()
    } else {
        "transport error".into()
    }
}

/// The `TrackingID` header Webex puts on every response.
pub fn tracking_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("trackingid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned)
}

/// `Retry-After` in seconds (Webex documents seconds; an HTTP date is not used by Webex).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// What we read of an error body. Every field is optional; anything else is ignored.
#[derive(Debug, Default, PartialEq)]
pub struct Envelope {
    /// An OAuth-style code, from `error`, or from `message`/`errors[0].description` when they
    /// hold a bare code such as `slow_down`.
    pub code: Option<String>,
    pub message: Option<String>,
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
        let code = error
            .clone()
            .or_else(|| raw.message.clone().filter(|m| is_code(m)))
            .or_else(|| description.clone().filter(|d| is_code(d)));
        let message = raw
            .error_description
            .or(raw.message)
            .or(description)
            .or(error)
            .map(|m| short(&m));
        Self {
            code,
            message,
            tracking_id: raw.tracking_id.filter(|t| !t.is_empty() && t.len() <= 200),
        }
    }

    fn text(&self, status: StatusCode) -> String {
        self.message
            .clone()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
    }
}

/// `slow_down`, `invalid_grant`...: one lowercase word with underscores.
fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// A message shown on a page: one line, bounded.
fn short(s: &str) -> String {
    let line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 300 {
        line.chars().take(300).chain("…".chars()).collect()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn classify(status: u16, body: &str) -> WebexError {
        let mut headers = HeaderMap::new();
        headers.insert("TrackingID", HeaderValue::from_static("ROUTER_header"));
        WebexError::classify(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
        )
    }

    #[test]
    fn webex_envelope_gives_message_code_and_tracking_id() {
        let e = Envelope::parse(
            br#"{"message":"slow_down","errors":[{"description":"Polling too fast"}],"trackingId":"ROUTER_1"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("slow_down"));
        assert_eq!(e.message.as_deref(), Some("slow_down"));
        assert_eq!(e.tracking_id.as_deref(), Some("ROUTER_1"));
    }

    #[test]
    fn rfc_style_error_is_read_too() {
        let e = Envelope::parse(br#"{"error":"invalid_grant","error_description":"The refresh token provided is expired"}"#);
        assert_eq!(e.code.as_deref(), Some("invalid_grant"));
        assert_eq!(
            e.message.as_deref(),
            Some("The refresh token provided is expired")
        );
    }

    #[test]
    fn code_can_hide_in_the_description() {
        let e = Envelope::parse(
            br#"{"message":"Bad request","errors":[{"description":"access_denied"}]}"#,
        );
        assert_eq!(e.code.as_deref(), Some("access_denied"));
        assert_eq!(e.message.as_deref(), Some("Bad request"));
    }

    #[test]
    fn malformed_bodies_give_an_empty_envelope() {
        for body in [
            &b""[..],
            b"<html>502 Bad Gateway</html>",
            b"{",
            b"[]",
            b"null",
            br#"{"message": 42}"#,
            br#"{"errors": "nope"}"#,
            b"\xff\xfe",
        ] {
            assert_eq!(Envelope::parse(body), Envelope::default(), "{body:?}");
        }
        // A non-string `error` is ignored, the rest still read.
        let e = Envelope::parse(br#"{"error": {"x": 1}, "message": "Oops"}"#);
        assert_eq!((e.code, e.message.as_deref()), (None, Some("Oops")));
    }

    #[test]
    fn sentences_are_not_codes_and_long_messages_are_cut() {
        let long = format!(r#"{{"message":"{}"}}"#, "word ".repeat(200));
        let e = Envelope::parse(long.as_bytes());
        assert_eq!(e.code, None);
        assert!(e.message.unwrap().chars().count() <= 301);
    }

    #[test]
    fn statuses_map_to_variants() {
        assert!(
            matches!(classify(401, "{}"), WebexError::Unauthorized { tracking_id: Some(t) } if t == "ROUTER_header")
        );
        assert!(matches!(
            classify(403, r#"{"message":"missing scope"}"#),
            WebexError::Forbidden { .. }
        ));
        assert!(matches!(
            classify(429, ""),
            WebexError::RateLimited {
                retry_after: None,
                ..
            }
        ));
        let e = classify(
            400,
            r#"{"message":"invalid_grant","trackingId":"ROUTER_body"}"#,
        );
        assert_eq!(e.oauth_code(), Some("invalid_grant"));
        assert_eq!(e.tracking_id(), Some("ROUTER_body"));
        assert!(!e.is_transient());
        assert!(classify(502, "<html>").is_transient());
        // A 401 that carries an OAuth code (wrong client secret) is not a token problem.
        assert_eq!(
            classify(401, r#"{"message":"invalid_client"}"#).oauth_code(),
            Some("invalid_client")
        );
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&h), None);
    }
}
