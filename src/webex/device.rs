//! `/device/authorize` and `/device/token`: the device authorization grant (RFC 8628, Webex's way).

use super::body::MAX_BODY;
use super::{
    TokenResponse, WebexClient, WebexError, decode, decode_token, has_plain_host, refused, send,
};
use crate::secret::Secret;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// RFC 8628's interval when Webex gives none.
pub const DEFAULT_INTERVAL: u64 = 5;
/// Webex's `interval` is clamped to this (Webex sends 2): a longer one could not poll in time.
pub const MAX_INTERVAL: u64 = 60;
/// Webex's `expires_in` is clamped to this (Webex sends 300): it bounds every poller's life.
pub const MAX_EXPIRES_IN: u64 = 1800;
/// The longest verification link we accept: a QR code (version 40, level M) holds 2,331 bytes;
/// Webex's links are about 110.
pub const MAX_VERIFICATION_URI_LEN: usize = 2048;
/// Webex's user codes are six digits, its device codes UUIDs; anything far longer is not one.
const MAX_USER_CODE_LEN: usize = 64;
const MAX_DEVICE_CODE_LEN: usize = 4096;

/// What `/device/authorize` returned, checked ([`DeviceAuthorization::check`]): every value is
/// safe to show, link and schedule with.
#[derive(Debug)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    /// An absolute https URL (http only when `WEBEX_API_BASE` is http), normalised.
    pub verification_uri: String,
    /// The same kind of URL; `verification_uri` when Webex sent none (optional in RFC 8628).
    pub verification_uri_complete: String,
    /// Seconds, 1 to [`MAX_EXPIRES_IN`].
    pub expires_in: u64,
    /// Seconds, 1 to [`MAX_INTERVAL`]; [`DEFAULT_INTERVAL`] when Webex sent none.
    pub interval: u64,
}

/// The JSON as Webex sends it, before any check.
#[derive(Debug, Deserialize)]
pub struct RawDeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: Option<u64>,
}

impl DeviceAuthorization {
    /// Clamps the numbers and checks the strings; `allow_http` only when the API base is http
    /// (demo mode, tests). The `Err` is a phrase for the error page.
    pub fn check(raw: RawDeviceAuthorization, allow_http: bool) -> Result<Self, &'static str> {
        if raw.device_code.is_empty() || raw.device_code.len() > MAX_DEVICE_CODE_LEN {
            return Err("a missing or oversized device code");
        }
        if raw.user_code.is_empty()
            || raw.user_code.len() > MAX_USER_CODE_LEN
            || raw.user_code.chars().any(char::is_control)
        {
            return Err("a missing or malformed user code");
        }
        let verification_uri = checked_link(&raw.verification_uri, allow_http)?;
        let verification_uri_complete = match raw.verification_uri_complete {
            Some(uri) => checked_link(&uri, allow_http)?,
            None => verification_uri.clone(),
        };
        Ok(Self {
            device_code: Secret::new(raw.device_code),
            user_code: raw.user_code,
            verification_uri,
            verification_uri_complete,
            expires_in: raw.expires_in.clamp(1, MAX_EXPIRES_IN),
            interval: raw
                .interval
                .unwrap_or(DEFAULT_INTERVAL)
                .clamp(1, MAX_INTERVAL),
        })
    }
}

/// A verification link fit for an `href` and a QR code, normalised: absolute, https (or http if
/// allowed), with a host and no credentials, short enough to encode.
fn checked_link(uri: &str, allow_http: bool) -> Result<String, &'static str> {
    const TOO_LONG: &str = "a verification link too long to show as a QR code";
    // Before parsing too: a megabyte of link is not parsed at all.
    if uri.len() > MAX_VERIFICATION_URI_LEN {
        return Err(TOO_LONG);
    }
    let url = Url::parse(uri).map_err(|_| "a verification link that is not an absolute URL")?;
    if !(url.scheme() == "https" || (allow_http && url.scheme() == "http")) {
        return Err("a verification link that is not https");
    }
    if !has_plain_host(&url) {
        return Err("a verification link without a proper host");
    }
    // Normalising percent-encodes what needs it, which can lengthen the link.
    let normalised = String::from(url);
    (normalised.len() <= MAX_VERIFICATION_URI_LEN)
        .then_some(normalised)
        .ok_or(TOO_LONG)
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
    pub async fn device_authorize(&self, scope: &str) -> Result<DeviceAuthorization, WebexError> {
        let form = [("client_id", &*self.creds.client_id), ("scope", scope)];
        let request = self.http.post(self.endpoint("device/authorize"));
        let response = send(request.form(&form)).await?;
        let (raw, tracking_id) = decode_token(response, "device authorization").await?;
        let allow_http = self.base.scheme() == "http";
        DeviceAuthorization::check(raw, allow_http)
            .map_err(|problem| refused("device authorization", problem, tracking_id))
    }

    /// One poll of `/device/token` (Basic auth is required there).
    pub async fn device_poll(&self, device_code: &Secret) -> PollReply {
        let creds = &self.creds;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.expose()),
            ("client_id", &creds.client_id),
        ];
        let request = self.http.post(self.endpoint("device/token"));
        let request = request.basic_auth(&creds.client_id, Some(creds.client_secret.expose()));
        let response = match send(request.form(&form)).await {
            Ok(response) => response,
            Err(err) => return PollReply::Transient(err),
        };
        if response.status() != StatusCode::OK {
            let err = WebexError::from_response(response, WebexError::classify).await;
            return classify_poll_error(err);
        }
        match decode(response, "device token response", MAX_BODY).await {
            Ok((tokens, tracking_id)) => PollReply::Granted(TokenResponse {
                tracking_id,
                ..tokens
            }),
            Err(err) if err.is_transient() => PollReply::Transient(err),
            Err(err) => PollReply::Failed(err),
        }
    }
}

/// The pure part of [`WebexClient::device_poll`]: an error answer to what the poller does next.
pub fn classify_poll_error(err: WebexError) -> PollReply {
    match &err {
        WebexError::Status { status, .. } if *status == StatusCode::PRECONDITION_REQUIRED => {
            return PollReply::Pending;
        }
        WebexError::RateLimited { retry_after, .. } => return PollReply::RateLimited(*retry_after),
        _ => {}
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
    use proptest::prelude::*;
    use reqwest::header::HeaderMap;
    use serde_json::{Value, json};

    #[test]
    fn webex_poll_answers_are_classified() {
        for (status, body, want) in [
            (428, r#"{"errors":[{"description":"pending"}]}"#, "Pending"),
            (428, "not json", "Pending"),
            (400, r#"{"message":"authorization_pending"}"#, "Pending"),
            (400, r#"{"message":"slow_down"}"#, "SlowDown"),
            (400, r#"{"error":"slow_down"}"#, "SlowDown"),
            (400, r#"{"message":"access_denied"}"#, "Denied"),
            (400, r#"{"message":"expired_token"}"#, "Expired"),
            (400, r#"{"message":"invalid_grant"}"#, "Expired"),
            (429, "{}", "RateLimited(None)"),
            (500, "{}", "Transient"),
            (502, "<html>bad gateway</html>", "Transient"),
            (400, r#"{"message":"invalid_client"}"#, "Failed"),
            (400, "garbage", "Failed"),
            (401, "{}", "Failed"),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            let err = WebexError::classify(status, &HeaderMap::new(), body.as_bytes());
            let got = format!("{:?}", classify_poll_error(err));
            assert!(got.starts_with(want), "{status} {body}: {got}");
        }
    }

    /// The JSON through both steps, as `device_authorize` does it.
    fn parse(json: &str, allow_http: bool) -> Result<DeviceAuthorization, String> {
        let raw: RawDeviceAuthorization = serde_json::from_str(json).map_err(|e| e.to_string())?;
        DeviceAuthorization::check(raw, allow_http).map_err(str::to_owned)
    }

    fn with(fields: &str) -> String {
        format!(
            r#"{{"device_code":"d","user_code":"418205","verification_uri":"https://x.example/verify",{fields}}}"#
        )
    }

    #[test]
    fn device_json_needs_its_required_fields() {
        let auth = parse(&with(r#""expires_in":300"#), false).unwrap();
        assert_eq!(auth.interval, DEFAULT_INTERVAL);
        assert_eq!(auth.verification_uri_complete, "https://x.example/verify");
        for bad in [
            "{}",
            r#"{"device_code":"d","user_code":"1","verification_uri":"v"}"#,
            r#"{"device_code":"d","user_code":1,"verification_uri":"v","expires_in":300}"#,
            r#"{"device_code":"d","user_code":"1","verification_uri":"v","expires_in":300,"interval":-1}"#,
            r#"{"device_code":"","user_code":"1","verification_uri":"https://x/v","expires_in":300}"#,
            r#"{"device_code":"d","user_code":"","verification_uri":"https://x/v","expires_in":300}"#,
            r#"{"device_code":"d","user_code":"1\n2","verification_uri":"https://x/v","expires_in":300}"#,
            "<html>",
        ] {
            assert!(parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_are_clamped_to_what_a_poller_can_keep() {
        let max = format!(r#""expires_in":{0},"interval":{0}"#, u64::MAX);
        for (fields, interval, expires_in) in [
            (r#""expires_in":300,"interval":2"#, 2, 300),
            (r#""expires_in":0,"interval":0"#, 1, 1),
            (max.as_str(), MAX_INTERVAL, MAX_EXPIRES_IN),
            (r#""expires_in":1801,"interval":61"#, 60, 1800),
        ] {
            let auth = parse(&with(fields), false).unwrap();
            let got = (auth.interval, auth.expires_in);
            assert_eq!(got, (interval, expires_in), "{fields}");
        }
        // Past u64, negative or fractional: not a number of seconds at all.
        for fields in [
            r#""expires_in":18446744073709551616"#,
            r#""expires_in":1e400"#,
            r#""expires_in":-300"#,
            r#""expires_in":300,"interval":1.5"#,
        ] {
            assert!(parse(&with(fields), false).is_err(), "{fields}");
        }
    }

    #[test]
    fn links_must_be_absolute_https_with_a_host() {
        let link = |uri: &str, allow_http: bool| {
            let uri = json!(uri);
            let fields = format!(r#""verification_uri_complete":{uri},"expires_in":300"#);
            parse(&with(&fields), allow_http).map(|auth| auth.verification_uri_complete)
        };
        for (uri, allow_http) in [
            ("https://x.example/verify?userCode=ab", false),
            ("http://127.0.0.1:9/verify", true),
        ] {
            assert_eq!(link(uri, allow_http).as_deref(), Ok(uri), "{uri}");
        }
        let normalised = link("HTTPS://X.example", false);
        assert_eq!(normalised.as_deref(), Ok("https://x.example/"));
        for bad in [
            "http://127.0.0.1:9/verify",
            "javascript:alert(1)",
            "JavaScript://x.example/%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "/verify",
            "//x.example/verify",
            "x.example/verify",
            "ftp://x.example/verify",
            "https://user:pw@x.example/verify",
            "file:///etc/passwd",
            "",
        ] {
            assert!(link(bad, false).is_err(), "{bad}");
        }
        assert!(link("javascript:alert(1)", true).is_err());
        let too_long = || Err("a verification link too long to show as a QR code".into());
        let long = format!("https://x.example/{}", "a".repeat(MAX_VERIFICATION_URI_LEN));
        assert_eq!(link(&long, true), too_long());
        // Percent-encoding can push a link over the cap after normalising.
        let spaces = " ".repeat(MAX_VERIFICATION_URI_LEN / 2);
        let spaced = format!("https://x.example/{spaces}x");
        assert_eq!(link(&spaced, true), too_long());
    }

    /// Number literals as Webex could write them, in or far out of range.
    fn number_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            Just("0".to_owned()),
            Just("18446744073709551615".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("1e400".to_owned()),
            Just("null".to_owned()),
            Just("\"5\"".to_owned()),
        ]
    }

    fn link() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!("https://oauth-helper-r.wbx2.com/verify")),
            Just(json!("http://127.0.0.1:1/verify?userCode=ab")),
            Just(json!("javascript:alert(1)")),
            Just(json!("data:text/html,x")),
            Just(json!("/verify")),
            Just(json!("https://u:p@h/verify")),
            Just(json!(42)),
            Just(Value::Null),
            "\\PC{0,40}".prop_map(Value::from),
            "https?://[a-z.]{0,12}(:[0-9]{1,6})?/[ -~]{0,40}".prop_map(Value::from),
            (2030usize..2100).prop_map(|n| Value::from(format!("https://h/{}", "a".repeat(n)))),
        ]
    }

    proptest! {
        #[test]
        fn random_device_json_never_panics_and_what_passes_is_safe(
            expires_in in number_text(),
            interval in proptest::option::of(number_text()),
            uri in link(),
            complete in proptest::option::of(link()),
            user_code in "\\PC{0,80}",
            allow_http in any::<bool>(),
        ) {
            let mut json = format!(
                r#"{{"device_code":"d","user_code":{},"verification_uri":{uri},"expires_in":{expires_in}"#,
                Value::from(user_code)
            );
            if let Some(interval) = interval {
                json.push_str(&format!(r#","interval":{interval}"#));
            }
            if let Some(complete) = complete {
                json.push_str(&format!(r#","verification_uri_complete":{complete}"#));
            }
            json.push('}');
            if let Ok(auth) = parse(&json, allow_http) {
                prop_assert!((1..=MAX_INTERVAL).contains(&auth.interval));
                prop_assert!((1..=MAX_EXPIRES_IN).contains(&auth.expires_in));
                for link in [&auth.verification_uri, &auth.verification_uri_complete] {
                    prop_assert!(link.len() <= MAX_VERIFICATION_URI_LEN);
                    let url = Url::parse(link).unwrap();
                    prop_assert!(url.scheme() == "https" || (allow_http && url.scheme() == "http"), "{link}");
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(raw) = serde_json::from_slice::<RawDeviceAuthorization>(&body) {
                let _ = DeviceAuthorization::check(raw, true);
            }
        }
    }
}
