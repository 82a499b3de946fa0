//! Fault injection: the misbehaviours tests queue per endpoint, and `take_fault` that applies them.

use std::{convert::Infallible, iter, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde_json::json;

use super::{
    Forgery,
    ids::tracking_id,
    server::{Fake, World},
    wire::{ApiError, JSON, form_pairs, json_response},
};

/// The endpoints a fault can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    AccessToken,
    DeviceAuthorize,
    DeviceToken,
    Rooms,
    PeopleMe,
    /// `/v1/.well-known/openid-configuration`.
    Discovery,
    /// `/v1/verification`, the JWKS.
    Jwks,
    UserInfo,
}

/// One misbehaviour, consumed by one request to the endpoint it was injected into.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Let this request through untouched (to target a later one).
    Pass,
    /// JSON error envelope with that status.
    Status(u16),
    /// That status with a text/html body, as a proxy would send.
    HtmlStatus(u16),
    /// 200 with a JSON content type but a body that is not JSON.
    InvalidJson,
    /// 200 `{"unexpected": true}`: valid JSON without the required fields.
    MissingFields,
    /// Sleep, then answer normally.
    Delay(Duration),
    /// 429 with `Retry-After: N` and an envelope.
    RateLimited { retry_after: u64 },
    /// 401 envelope even for a valid token.
    Unauthorized,
    /// 403 envelope (missing scope).
    Forbidden,
    /// 400 `slow_down`; on the device token endpoint the poll is still recorded.
    SlowDown,
    /// Rooms: 200 `{"items":[]}` with a `next` link to the page that would have been served.
    EmptyPageWithNext,
    /// Rooms: the normal page, but its `next` link points to `https://attacker.example`.
    ForeignNextLink,
    /// That status with a JSON content type and a body of `bytes` bytes (`{"items":[` then
    /// spaces, never closed), streamed from one static chunk so the fake allocates none of it.
    /// `declare_length`: send `Content-Length`; otherwise the body is chunked.
    HugeBody {
        status: u16,
        bytes: u64,
        declare_length: bool,
    },
    /// 200 with exactly this JSON: any reply Webex could send, e.g. a device authorization with
    /// `"interval": 18446744073709551615` or a `javascript:` verification link.
    Json(serde_json::Value),
    /// Access token or device token: the answer's id_token forged as said (only these two
    /// endpoints issue id_tokens; elsewhere it does nothing). On the device token endpoint it
    /// waits for the poll that grants.
    IdToken(Forgery),
    /// That status with a body that echoes the request's form back, as a broken token endpoint
    /// or egress proxy might: `error` is `invalid_request`, while `error_description`, `message`,
    /// `errors[0].description` and `trackingId` hold the form as sent and then decoded, one pair
    /// a line (client secret, code, verifier…, with a terminal escape in between). The
    /// `TrackingID` header is a real one.
    EchoForm(u16),
    /// That status with an envelope whose `message` and description are this text, e.g. a 401
    /// saying just `Unauthorized`.
    Message(u16, &'static str),
    /// Access token: served as usual, but the token JSON says `"expires_in": N` whatever the
    /// token's real lifetime (the token keeps working).
    ExpiresIn(u64),
}

impl World {
    pub fn push_fault(&mut self, endpoint: Endpoint, fault: Fault) {
        self.faults.entry(endpoint).or_default().push_back(fault);
    }

    /// Puts `fault` back first in line (one that waits for a later request).
    pub fn requeue_fault(&mut self, endpoint: Endpoint, fault: Fault) {
        self.faults.entry(endpoint).or_default().push_front(fault);
    }

    fn pop_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        self.faults.get_mut(&endpoint)?.pop_front()
    }
}

/// Pops and applies the endpoint's next fault to the request whose body is `body`. `Err` is the
/// faulty answer; `Ok(Some(_))` hands the endpoint-specific faults (`SlowDown` on device/token,
/// the link faults on rooms, `IdToken` on the two token endpoints, `ExpiresIn` on access_token)
/// to the handler.
pub(super) async fn take_fault(
    fake: &Fake,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<Option<Fault>, Response> {
    let Some(fault) = fake.lock().pop_fault(endpoint) else {
        return Ok(None);
    };
    let oauth = matches!(
        endpoint,
        Endpoint::AccessToken | Endpoint::DeviceAuthorize | Endpoint::DeviceToken
    );
    match fault {
        Fault::Pass => Ok(None),
        Fault::Delay(duration) => {
            tokio::time::sleep(duration).await;
            Ok(None)
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let reason = status.canonical_reason().unwrap_or("Error");
            Err(ApiError::new(status, reason, reason).into())
        }
        Fault::HtmlStatus(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            let html =
                format!("<html><body><h1>{status}</h1><p>upstream proxy error</p></body></html>");
            Err((status, Html(html)).into_response())
        }
        Fault::InvalidJson => {
            let body = "{\"items\": [ <html>this is not JSON";
            Err((StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response())
        }
        Fault::MissingFields => Err(json_response(
            StatusCode::OK,
            &json!({ "unexpected": true }),
        )),
        Fault::Json(body) => Err(json_response(StatusCode::OK, &body)),
        Fault::HugeBody {
            status,
            bytes,
            declare_length,
        } => Err(huge_body(status, bytes, declare_length)),
        Fault::RateLimited { retry_after } => {
            let text = "Too many requests have been sent in a given amount of time.";
            let mut response =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, text, text).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            Err(response)
        }
        Fault::Unauthorized if oauth => Err(ApiError::invalid_client().into()),
        Fault::Unauthorized => Err(ApiError::unauthorized().into()),
        Fault::Forbidden => Err(ApiError::forbidden().into()),
        Fault::SlowDown if endpoint == Endpoint::DeviceToken => Ok(Some(fault)),
        Fault::SlowDown => {
            Err(ApiError::bad_request("slow_down", "The client is polling too quickly.").into())
        }
        Fault::EchoForm(code) => Err(echo_form(fake, code, body)),
        Fault::Message(code, text) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            Err(ApiError::new(status, text, text).into())
        }
        Fault::EmptyPageWithNext | Fault::ForeignNextLink if endpoint == Endpoint::Rooms => {
            Ok(Some(fault))
        }
        Fault::IdToken(_) if matches!(endpoint, Endpoint::AccessToken | Endpoint::DeviceToken) => {
            Ok(Some(fault))
        }
        Fault::ExpiresIn(_) if endpoint == Endpoint::AccessToken => Ok(Some(fault)),
        // Link faults mean nothing elsewhere, nor does a token lifetime or an id_token.
        Fault::EmptyPageWithNext
        | Fault::ForeignNextLink
        | Fault::ExpiresIn(_)
        | Fault::IdToken(_) => Ok(None),
    }
}

/// [`Fault::EchoForm`]'s answer to a request whose body was `body` (recorded in `World::echoed`).
fn echo_form(fake: &Fake, code: u16, body: &[u8]) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    let form = form_pairs(body);
    let decoded: String = form
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    let echo = format!("{}\n\u{1b}[2K{decoded}", String::from_utf8_lossy(body));
    let tracking = tracking_id();
    let mut response = json_response(
        status,
        &json!({
            "error": "invalid_request",
            "error_description": echo,
            "message": echo,
            "errors": [{ "description": echo }],
            "trackingId": echo,
        }),
    );
    if let Ok(value) = HeaderValue::from_str(&tracking) {
        response.headers_mut().insert("trackingid", value);
    }
    fake.lock().echoed.push((tracking, form));
    response
}

/// One chunk of filler, shared by every huge body (JSON whitespace).
static FILLER: [u8; 64 * 1024] = [b' '; 64 * 1024];
const HUGE_PREFIX: &[u8] = b"{\"items\":[";

/// `bytes` bytes streamed lazily: the prefix, whole filler chunks, then the rest.
fn huge_body(status: u16, bytes: u64, declare_length: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let chunk = FILLER.len() as u64;
    let prefix_len = (HUGE_PREFIX.len() as u64).min(bytes);
    let rest = bytes - prefix_len;
    let (whole, tail) = (rest / chunk, rest % chunk);
    let prefix = Bytes::from_static(&HUGE_PREFIX[..prefix_len as usize]);
    let chunks = iter::once(prefix)
        .chain((0..whole).map(|_| Bytes::from_static(&FILLER)))
        .chain(iter::once(Bytes::from_static(&FILLER[..tail as usize])))
        .map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    if declare_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes));
    }
    response
}
