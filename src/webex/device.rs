//! `/device/authorize` and `/device/token`: the device authorization grant (RFC 8628, Webex's way).

use super::{TokenResponse, WebexClient, WebexError, decode, send};
use crate::secret::Secret;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;

/// What `/device/authorize` returns.
#[derive(Debug, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    /// Optional in RFC 8628; Webex sends it. We fall back to `verification_uri`.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    /// Optional in RFC 8628 (default 5 s).
    #[serde(default)]
    pub interval: Option<u64>,
}

/// One `/device/token` answer, classified.
#[derive(Debug)]
pub enum PollReply {
    /// 428 (Webex) or `authorization_pending`: ask again after the interval.
    Pending,
    /// `slow_down`: add 5 s to the interval, for this and every later poll.
    SlowDown,
    /// 429: wait `Retry-After` (at least the interval) and go on.
    RateLimited(Option<Duration>),
    /// The user approved.
    Granted(TokenResponse),
    /// `access_denied`.
    Denied,
    /// `expired_token`, or `invalid_grant` (what Webex may say for an expired code).
    Expired,
    /// 5xx, timeout, connection failure: try again after a back-off.
    Transient(WebexError),
    /// Anything else: stop.
    Failed(WebexError),
}

impl WebexClient {
    /// Starts a device flow.
    #[tracing::instrument(skip_all)]
    pub async fn device_authorize(&self, scope: &str) -> Result<DeviceAuthorization, WebexError> {
        let form = [
            ("client_id", self.creds.client_id.as_str()),
            ("scope", scope),
        ];
        let response = send(
            self.http
                .post(self.endpoint("device/authorize"))
                .form(&form),
        )
        .await?;
        let auth: DeviceAuthorization = decode(response, "device authorization").await?;
        if auth.user_code.is_empty()
            || auth.verification_uri.is_empty()
            || auth.device_code.expose().is_empty()
        {
            return Err(WebexError::Decode {
                what: "device authorization",
                tracking_id: None,
            });
        }
        Ok(auth)
    }

    /// One poll of `/device/token` (Basic auth is required there).
    #[tracing::instrument(skip_all)]
    pub async fn device_poll(&self, device_code: &Secret) -> PollReply {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.expose()),
            ("client_id", &self.creds.client_id),
        ];
        let request = self
            .http
            .post(self.endpoint("device/token"))
            .basic_auth(
                &self.creds.client_id,
                Some(self.creds.client_secret.expose()),
            )
            .form(&form);
        let response = match send(request).await {
            Ok(response) => response,
            Err(err) => return PollReply::Transient(err),
        };
        if response.status() == StatusCode::OK {
            return match decode(response, "token response").await {
                Ok(tokens) => PollReply::Granted(tokens),
                Err(err) if err.is_transient() => PollReply::Transient(err),
                Err(err) => PollReply::Failed(err),
            };
        }
        classify_poll_error(WebexError::from_response(response).await)
    }
}

/// The pure part of [`WebexClient::device_poll`]: an error answer to what the poller does next.
pub fn classify_poll_error(err: WebexError) -> PollReply {
    if let WebexError::Status {
        status: StatusCode::PRECONDITION_REQUIRED,
        ..
    } = err
    {
        return PollReply::Pending;
    }
    if let WebexError::RateLimited { retry_after, .. } = err {
        return PollReply::RateLimited(retry_after);
    }
    match err.oauth_code() {
        Some("authorization_pending") => PollReply::Pending,
        Some("slow_down") => PollReply::SlowDown,
        Some("access_denied") => PollReply::Denied,
        Some("expired_token" | "invalid_grant") => PollReply::Expired,
        _ if err.is_transient() => PollReply::Transient(err),
        _ => PollReply::Failed(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn reply(status: u16, body: &str) -> PollReply {
        let status = StatusCode::from_u16(status).unwrap();
        classify_poll_error(WebexError::classify(
            status,
            &HeaderMap::new(),
            body.as_bytes(),
        ))
    }

    #[test]
    fn webex_poll_answers_are_classified() {
        assert!(matches!(
            reply(428, r#"{"errors":[{"description":"pending"}]}"#),
            PollReply::Pending
        ));
        assert!(matches!(reply(428, "not json"), PollReply::Pending));
        assert!(matches!(
            reply(400, r#"{"message":"authorization_pending"}"#),
            PollReply::Pending
        ));
        assert!(matches!(
            reply(400, r#"{"message":"slow_down"}"#),
            PollReply::SlowDown
        ));
        assert!(matches!(
            reply(400, r#"{"error":"slow_down"}"#),
            PollReply::SlowDown
        ));
        assert!(matches!(
            reply(400, r#"{"message":"access_denied"}"#),
            PollReply::Denied
        ));
        assert!(matches!(
            reply(400, r#"{"message":"expired_token"}"#),
            PollReply::Expired
        ));
        assert!(matches!(
            reply(400, r#"{"message":"invalid_grant"}"#),
            PollReply::Expired
        ));
        assert!(matches!(reply(429, "{}"), PollReply::RateLimited(None)));
        assert!(matches!(reply(500, "{}"), PollReply::Transient(_)));
        assert!(matches!(
            reply(502, "<html>bad gateway</html>"),
            PollReply::Transient(_)
        ));
        assert!(matches!(
            reply(400, r#"{"message":"invalid_client"}"#),
            PollReply::Failed(_)
        ));
        assert!(matches!(reply(400, "garbage"), PollReply::Failed(_)));
        assert!(matches!(reply(401, "{}"), PollReply::Failed(_)));
    }

    #[test]
    fn device_json_needs_its_required_fields() {
        let ok = r#"{"device_code":"d","user_code":"418205","verification_uri":"https://x/verify","expires_in":300}"#;
        let auth: DeviceAuthorization = serde_json::from_str(ok).unwrap();
        assert_eq!(
            (auth.interval, auth.verification_uri_complete),
            (None, None)
        );
        for bad in [
            "{}",
            r#"{"device_code":"d","user_code":"1","verification_uri":"v"}"#,
            r#"{"device_code":"d","user_code":1,"verification_uri":"v","expires_in":300}"#,
            r#"{"device_code":"d","user_code":"1","verification_uri":"v","expires_in":300,"interval":-1}"#,
            "<html>",
        ] {
            assert!(
                serde_json::from_str::<DeviceAuthorization>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
