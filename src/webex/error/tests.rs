//! Unit tests of the error classification: envelopes, codes, plain lines, tracking ids.

use super::*;
use reqwest::header::HeaderValue;

fn api(status: u16, body: &str) -> WebexError {
    let status = StatusCode::from_u16(status).unwrap();
    WebexError::classify_api(status, &HeaderMap::new(), body.as_bytes())
}

fn classify(status: u16, body: &str) -> WebexError {
    let mut headers = HeaderMap::new();
    headers.insert("TrackingID", HeaderValue::from_static("ROUTER_header"));
    let status = StatusCode::from_u16(status).unwrap();
    WebexError::classify(status, &headers, body.as_bytes())
}

fn envelope(code: &str, message: &str, tracking_id: Option<&str>) -> Envelope {
    Envelope {
        code: Some(code.into()),
        message: Some(message.into()),
        tracking_id: tracking_id.map(Into::into),
    }
}

#[test]
fn webex_and_rfc_envelopes_give_code_message_and_tracking_id() {
    let webex = br#"{"message":"slow_down","errors":[{"description":"Polling too fast"}],"trackingId":"ROUTER_1"}"#;
    let want = envelope("slow_down", "slow_down", Some("ROUTER_1"));
    assert_eq!(Envelope::parse(webex), want);
    let rfc =
        br#"{"error":"invalid_grant","error_description":"The refresh token provided is expired"}"#;
    let want = envelope(
        "invalid_grant",
        "The refresh token provided is expired",
        None,
    );
    assert_eq!(Envelope::parse(rfc), want);
    // The code can hide in the description.
    let hidden = br#"{"message":"Bad request","errors":[{"description":"access_denied"}]}"#;
    let want = envelope("access_denied", "Bad request", None);
    assert_eq!(Envelope::parse(hidden), want);
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
fn statuses_map_to_variants() {
    for (status, body, want) in [
        (401, "{}", "Unauthorized"),
        (403, r#"{"message":"missing scope"}"#, "Forbidden"),
        (429, "", "RateLimited { retry_after: None"),
    ] {
        let e = classify(status, body);
        assert!(format!("{e:?}").starts_with(want), "{status}: {e:?}");
        assert_eq!(e.tracking_id(), Some("ROUTER_header"), "{status}");
    }
    let e = classify(
        400,
        r#"{"message":"invalid_grant","trackingId":"ROUTER_body"}"#,
    );
    assert_eq!(e.oauth_code(), Some("invalid_grant"));
    assert_eq!(e.tracking_id(), Some("ROUTER_body"));
    assert!(!e.is_transient());
    assert!(classify(502, "<html>").is_transient());
    // At a token endpoint, a 401 that carries an OAuth code (wrong client secret) is not a
    // token problem; from the API, every 401 is one (a one-word message is no code).
    assert_eq!(
        classify(401, r#"{"message":"invalid_client"}"#).oauth_code(),
        Some("invalid_client")
    );
    for body in [
        r#"{"message":"Unauthorized"}"#,
        r#"{"message":"unauthorized"}"#,
        r#"{"message":"invalid_token"}"#,
        r#"{"error":"invalid_client","message":"invalid_client"}"#,
        "{}",
    ] {
        let e = api(401, body);
        assert!(matches!(e, WebexError::Unauthorized { .. }), "{body}");
    }
    let e = api(400, r#"{"message":"invalid_grant"}"#);
    assert_eq!(e.oauth_code(), None, "no code from the API");
}

#[test]
fn a_token_endpoint_error_keeps_its_code_and_tracking_id_and_no_text() {
    let echo = "grant_type=authorization_code&client_secret=S3CRET&code=C0DE&code_verifier=V3R";
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": echo,
        "message": echo,
        "errors": [{ "description": echo }],
        "trackingId": echo,
    })
    .to_string();
    for status in [400, 403, 500] {
        let e = classify(status, &body);
        let shown = format!("{e} {e:?}");
        for secret in ["S3CRET", "C0DE", "V3R"] {
            assert!(!shown.contains(secret), "{status}: {shown}");
        }
        // The echoed tracking id is no tracking id: the header's is kept.
        assert_eq!(e.tracking_id(), Some("ROUTER_header"), "{status}");
    }
    assert_eq!(classify(400, &body).oauth_code(), Some("invalid_request"));
    assert_eq!(
        classify(400, &body).to_string(),
        "Webex answered 400 Bad Request: invalid_request"
    );
    // Without a code: the status's words.
    let e = classify(400, &format!(r#"{{"message":"{echo}"}}"#));
    assert_eq!(e.to_string(), "Webex answered 400 Bad Request: Bad Request");
    // An `error` that is no plain code is not one.
    for error in ["Invalid Request", "invalid request", "x\u{1b}[31m", echo] {
        let body = serde_json::json!({ "error": error }).to_string();
        assert_eq!(classify(400, &body).oauth_code(), None, "{error}");
    }
}

#[test]
fn api_text_is_one_plain_bounded_line() {
    let text = "missing\u{1b}[31m scope\n2026-01-01 INFO forged\u{0} \u{202e}txet\u{200b} \t";
    let body = serde_json::json!({ "message": text }).to_string();
    let WebexError::Forbidden { message, .. } = api(403, &body) else {
        panic!("not a 403");
    };
    assert_eq!(message, "missing[31m scope 2026-01-01 INFO forged txet");
    assert_eq!(plain_line("\u{7f}\u{202e}\u{feff} \n"), "");
    let long = plain_line(&"é".repeat(1000));
    assert_eq!(long.chars().count(), 301);
    assert!(long.ends_with('…'));
    // A long sentence is no code, and its message is cut too.
    let long = format!(r#"{{"message":"{}"}}"#, "word ".repeat(200));
    let e = Envelope::parse(long.as_bytes());
    assert_eq!(e.code, None);
    assert_eq!(e.message.unwrap().chars().count(), 301);
}

#[test]
fn only_what_looks_like_a_tracking_id_is_kept() {
    let router = "ROUTER_65F3A1B2-0C1D-4E5F-8A9B-0123456789AB";
    assert!(is_tracking_id(router) && is_tracking_id("WEBEX_CLIENT_abc.def:1"));
    let long = "a".repeat(129);
    for bad in ["", "a b", "<b>", "x&kind=busy", &long, "é", "a\nb"] {
        assert!(!is_tracking_id(bad), "{bad}");
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(bad) {
            headers.insert("trackingid", value);
        }
        assert_eq!(tracking_id(&headers), None, "{bad}");
        let body = serde_json::json!({ "trackingId": bad }).to_string();
        assert_eq!(Envelope::parse(body.as_bytes()).tracking_id, None, "{bad}");
    }
}

#[test]
fn retry_after_reads_seconds_only() {
    for (value, want) in [
        (" 7 ", Some(7)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("-1", None),
    ] {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(value));
        assert_eq!(retry_after(&h), want.map(Duration::from_secs), "{value}");
    }
}
