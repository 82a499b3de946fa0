//! The fake's HTTP surface: consent and verify pages, OAuth endpoints, rooms, people, avatar.

use std::{collections::HashMap, sync::Arc, time::Instant};

use askama::Template;
use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::json;
use url::Url;

use super::{
    Counter, Endpoint, Fault,
    state::{
        ApiError, LAST_ACTIVITY_MS, MALFORMED, Shared, iso_millis, org_id, person_id, tracking_id,
    },
};

type AppState = State<Arc<Shared>>;
/// Handlers answer errors early with `?`; both sides are finished responses.
type Reply = Result<Response, Response>;

/// Webex's JSON content type, charset included.
const JSON: &str = "application/json;charset=UTF-8";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// What the consent form carries back to `POST /v1/authorize`.
const AUTHORIZE_PARAMS: &str =
    "response_type client_id redirect_uri scope state code_challenge code_challenge_method";
const MAX_PAGE: u64 = 1000;
const NOT_FOUND: &str = "The requested resource could not be found.";
const UNKNOWN_CODE: &str = "This code is unknown, expired or already used.";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/v1/authorize",
            get(authorize_page).post(authorize_decision),
        )
        .route("/v1/access_token", post(access_token))
        .route("/v1/device/authorize", post(device_authorize))
        .route("/v1/device/token", post(device_token))
        .route("/verify", get(verify_page).post(verify_decision))
        .route("/v1/rooms", get(rooms))
        .route("/v1/people/me", get(people_me))
        .route("/avatar.svg", get(avatar))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, NOT_FOUND, NOT_FOUND) })
        .layer(middleware::map_response(add_tracking_id))
        .with_state(shared)
}

/// Every Webex response carries a `TrackingID`; envelopes set their own so body and header agree.
async fn add_tracking_id(mut response: Response) -> Response {
    if !response.headers().contains_key("trackingid")
        && let Ok(value) = HeaderValue::from_str(&tracking_id())
    {
        response.headers_mut().insert("trackingid", value);
    }
    response
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

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, JSON)], text).into_response()
}

/// Pops and applies the endpoint's next fault. `Err` is the faulty answer; `Ok(Some(_))` hands the
/// endpoint-specific faults (`SlowDown` on device/token, the link faults on rooms) to the handler.
async fn take_fault(shared: &Shared, endpoint: Endpoint) -> Result<Option<Fault>, Response> {
    let Some(fault) = shared.lock().pop_fault(endpoint) else {
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
        Fault::EmptyPageWithNext | Fault::ForeignNextLink if endpoint == Endpoint::Rooms => {
            Ok(Some(fault))
        }
        // Link faults mean nothing elsewhere.
        Fault::EmptyPageWithNext | Fault::ForeignNextLink => Ok(None),
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

#[derive(Template)]
#[template(path = "fake/verify.html")]
struct VerifyPage {
    /// Known code to confirm, or `None` to ask for one.
    user_code: Option<String>,
}

#[derive(Template)]
#[template(path = "fake/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(%err, "fake Webex template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn message(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &MessagePage { title, message })
}

/// Form fields of a body (first occurrence wins), whatever its content type.
fn form_pairs(body: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        fields.entry(name.into()).or_insert_with(|| value.into());
    }
    fields
}

/// The OAuth endpoints only take form bodies; JSON and anything else get 415.
fn require_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
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

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `GET /v1/authorize`: the consent page, or an error page (never a redirect) for a bad request.
async fn authorize_page(
    State(shared): AppState,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let request = shared.lock().validate_authorize(&params);
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
async fn authorize_decision(State(shared): AppState, body: Bytes) -> Response {
    let form = form_pairs(&body);
    let request = match shared.lock().validate_authorize(&form) {
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
        query.append_pair("code", &shared.lock().issue_code(&request));
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

/// `GET /verify`: confirm the code from `verification_uri_complete`, or type one in.
async fn verify_page(
    State(shared): AppState,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(hash) = params.get("userCode") else {
        return render(StatusCode::OK, &VerifyPage { user_code: None });
    };
    let user_code = shared
        .lock()
        .pending_flow_by_hash(hash)
        .map(|f| f.user_code.clone());
    match user_code {
        Some(_) => render(StatusCode::OK, &VerifyPage { user_code }),
        None => message(StatusCode::NOT_FOUND, "Unknown code", UNKNOWN_CODE),
    }
}

/// `POST /verify`: the user's decision for a pending device flow.
async fn verify_decision(State(shared): AppState, body: Bytes) -> Response {
    let form = form_pairs(&body);
    let user_code = form.get("user_code").map_or("", |code| code.trim());
    let approve = form.get("decision").is_some_and(|d| d == "approve");
    match (shared.lock().decide_device(user_code, approve), approve) {
        (false, _) => message(StatusCode::NOT_FOUND, "Unknown code", UNKNOWN_CODE),
        (true, true) => message(
            StatusCode::OK,
            "Approved",
            "Approved: return to your device.",
        ),
        (true, false) => message(
            StatusCode::OK,
            "Denied",
            "Denied: the device stays signed out.",
        ),
    }
}

/// `POST /v1/access_token`: authorization code and refresh grants.
async fn access_token(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Reply {
    // Counted from a lenient parse so faulted and malformed requests count too.
    let grant_type = form_pairs(&body).remove("grant_type").unwrap_or_default();
    match grant_type.as_str() {
        "authorization_code" => shared.lock().bump(Counter::CodeExchanges),
        "refresh_token" => shared.lock().bump(Counter::Refreshes),
        _ => {}
    }
    take_fault(&shared, Endpoint::AccessToken).await?;
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
    let mut inner = shared.lock();
    if !inner.is_client(&client_id, &secret) {
        return Err(ApiError::invalid_client().into());
    }
    let grant = match grant_type.as_str() {
        "authorization_code" => inner.exchange_code(
            &client_id,
            field("code").unwrap_or_default(),
            field("redirect_uri"),
            field("code_verifier"),
        )?,
        "refresh_token" => inner.refresh(&client_id, field("refresh_token").unwrap_or_default())?,
        _ => {
            let text = "The authorization grant type is not supported.";
            return Err(ApiError::bad_request("unsupported_grant_type", text).into());
        }
    };
    Ok(json_response(StatusCode::OK, &grant))
}

/// `POST /v1/device/authorize`: starts a device flow; no client authentication.
async fn device_authorize(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Reply {
    shared.lock().bump(Counter::DeviceAuthorizations);
    take_fault(&shared, Endpoint::DeviceAuthorize).await?;
    let form = require_form(&headers, &body)?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let started = shared
        .lock()
        .start_device(field("client_id"), field("scope"))?;
    let body = json!({
        "device_code": started.device_code,
        "expires_in": started.expires_in,
        "user_code": started.user_code,
        "verification_uri": format!("{}/verify", shared.origin),
        "verification_uri_complete": shared.verification_uri_complete(&started.user_code),
        "interval": started.interval,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v1/device/token`: one poll of a device flow.
async fn device_token(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Reply {
    // Arrival is taken before any fault delay: tests measure when the client sent the poll.
    let arrival = Instant::now();
    {
        let mut inner = shared.lock();
        inner.bump(Counter::DevicePolls);
        if let Some(device_code) = form_pairs(&body).get("device_code") {
            inner.record_poll(device_code, arrival);
        }
    }
    let forced_slow_down = take_fault(&shared, Endpoint::DeviceToken).await?.is_some();
    let basic = basic_credentials(&headers);
    if !basic.is_some_and(|(id, secret)| shared.lock().is_client(&id, &secret)) {
        return Err(ApiError::invalid_client().into());
    }
    let form = require_form(&headers, &body)?;
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some(DEVICE_GRANT) {
        let text = "The authorization grant type is not supported.";
        return Err(ApiError::bad_request("unsupported_grant_type", text).into());
    }
    let (Some(device_code), Some(client_id)) = (field("device_code"), field("client_id")) else {
        let text = "device_code and client_id are required.";
        return Err(ApiError::bad_request("invalid_request", text).into());
    };
    let grant = shared
        .lock()
        .poll_device(device_code, client_id, arrival, forced_slow_down)?;
    Ok(json_response(StatusCode::OK, &grant))
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

/// The cursor is opaque to clients; here it is just the offset, base64url-encoded.
fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    text.strip_prefix("offset:")?.parse().ok()
}

/// `GET /v1/rooms`: one page, with an absolute `Link: <…>; rel="next"` while more remain.
async fn rooms(
    State(shared): AppState,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    shared.lock().bump(Counter::RoomsCalls);
    let link_fault = take_fault(&shared, Endpoint::Rooms).await?;
    let inner = shared.lock();
    inner.check_access(authorization(&headers), &["spark:all", "spark:rooms_read"])?;

    // Above the cap Webex clamps; zero or garbage is rejected (a strict choice, contract §8.11).
    let max = match params.get("max").map(|m| m.parse::<u64>()) {
        None => 100,
        Some(Ok(max)) if max >= 1 => max.min(MAX_PAGE) as usize,
        Some(_) => return Err(ApiError::bad_request(MALFORMED, "max must be 1 to 1000.").into()),
    };
    let total = inner.rooms.len();
    let offset = match params.get("cursor").map(|c| decode_cursor(c)) {
        None => 0,
        Some(Some(offset)) if offset <= total => offset,
        Some(_) => return Err(ApiError::bad_request(MALFORMED, "The cursor is invalid.").into()),
    };
    let end = (offset + max).min(total);
    let link = |origin: &str, at: usize| {
        let cursor = encode_cursor(at);
        format!("<{origin}/v1/rooms?max={max}&cursor={cursor}>; rel=\"next\"")
    };
    let page = &inner.rooms[offset..end];
    let (items, next) = match link_fault {
        // A page may be empty yet still be followed by a link; point it at the page we skipped.
        Some(Fault::EmptyPageWithNext) => (&page[..0], Some(link(&shared.origin, offset))),
        // Present even on the last page, so a client that follows links blindly is caught.
        Some(Fault::ForeignNextLink) => (page, Some(link("https://attacker.example", end))),
        _ => (page, (end < total).then(|| link(&shared.origin, end))),
    };
    let mut response = json_response(StatusCode::OK, &json!({ "items": items }));
    if let Some(Ok(value)) = next.map(|next| HeaderValue::from_str(&next)) {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// `GET /v1/people/me`: the signed-in user, always Ada Lovelace.
async fn people_me(State(shared): AppState, headers: HeaderMap) -> Reply {
    shared.lock().bump(Counter::PeopleCalls);
    take_fault(&shared, Endpoint::PeopleMe).await?;
    shared
        .lock()
        .check_access(authorization(&headers), &["spark:all", "spark:people_read"])?;
    let person = json!({
        "id": person_id("Ada Lovelace"),
        "emails": ["ada@example.com"],
        "phoneNumbers": [{ "type": "work", "value": "+1 555 0100", "primary": true }],
        "displayName": "Ada Lovelace",
        "nickName": "Ada",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "avatar": format!("{}/avatar.svg", shared.origin),
        "orgId": org_id(),
        "created": "2024-05-01T12:00:00.000Z",
        "lastActivity": iso_millis(LAST_ACTIVITY_MS),
        "status": "active",
        "type": "person",
    });
    Ok(json_response(StatusCode::OK, &person))
}

async fn avatar() -> Response {
    // Ada's initials on a blue circle.
    let svg = concat!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">"##,
        r##"<circle cx="48" cy="48" r="48" fill="#0a62c9"/><text x="48" y="60" "##,
        r##"font-family="sans-serif" font-size="36" font-weight="bold" fill="#fff" "##,
        r##"text-anchor="middle">AL</text></svg>"##
    );
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}
