//! `AppError`: every failure becomes an HTML page with the right status, and is logged once.
//!
//! `into_response` logs an error (inside the request's span) and leaves an [`ErrorPage`] in the
//! response's extensions for [`render_error_page`], which also gives axum's plain-text rejections
//! a page. A form post's failure answers a 303 to `/problem` ([`AppError::after_form_post`]).
//! Pages speak to the person; what the operator should check goes to the log (`hint`).

use crate::device_flow::FlowError;
use crate::identity::IdentityError;
use crate::store::StoreError;
use crate::web::templates::{ErrorTemplate, render};
use crate::webex::{WebexError, is_tracking_id};
use axum::Extension;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No tokens in this session: 303 to the landing page.
    #[error("not signed in")]
    NotSignedIn,
    /// The refresh token is no longer accepted: tokens cleared, 303 to `/?notice=reauth`.
    #[error("Webex no longer accepts the refresh token")]
    SignInAgain,
    /// 400: a callback or form that does not fit this session.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the user declined at Webex.
    #[error("{0}")]
    Denied(String),
    /// 414: a query string longer than we accept.
    #[error("query string too long")]
    QueryTooLong,
    /// 400: a `Host` this server does not answer to (DNS rebinding).
    #[error("unknown host")]
    UnknownHost,
    /// 403: a POST from another site.
    #[error("cross-site request refused")]
    CrossSite,
    /// 404.
    #[error("no such page")]
    NotFound,
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 429: this client started too many sign-ins in the last minute (`Retry-After` is set).
    #[error("client rate limited")]
    TooManyRequests { retry_after_secs: u64 },
    /// 429: too many device sign-ins pending from this client address.
    #[error("too many device sign-ins from this client are pending")]
    TooManyFlows,
    /// 503: too many device sign-ins pending on this server.
    #[error("too many device sign-ins are pending")]
    Busy,
    /// 503: the session store did not answer, or a record did not decode.
    #[error("session: {}", session_error(.0))]
    Session(#[from] tower_sessions::session::Error),
    /// 503: the flow store or the refresh lock failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 502/503/504/403, depending on what Webex did.
    #[error(transparent)]
    Webex(#[from] WebexError),
    /// 502 (400 for another login's nonce), or 502/503 without Webex's keys: nobody signed in.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// 500: a bug of ours.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A session error as a log line gives it: a store's as it is, a value that did not decode
/// without serde_json's message, which quotes what it could not read (a token, for one).
fn session_error(err: &tower_sessions::session::Error) -> String {
    match err {
        tower_sessions::session::Error::SerdeJson(err) => {
            let (kind, line, col) = (err.classify(), err.line(), err.column());
            format!("a session value did not decode ({kind:?} error at line {line}, column {col})")
        }
        other => other.to_string(),
    }
}

impl From<FlowError> for AppError {
    fn from(err: FlowError) -> Self {
        match err {
            FlowError::Busy => Self::Busy,
            FlowError::ClientBusy => Self::TooManyFlows,
            FlowError::Store(err) => Self::Store(err),
        }
    }
}

/// One kind of failure page: its name in `/problem?kind=`, its status, its words (a page may
/// say more than `message`, e.g. what Webex answered), and the operator's hint for the log.
#[derive(Debug)]
pub struct Kind {
    pub name: &'static str,
    pub status: StatusCode,
    pub title: &'static str,
    message: &'static str,
    next_step: &'static str,
    hint: Option<&'static str>,
}

macro_rules! kinds {
    (@hint) => { None };
    (@hint $hint:literal) => { Some($hint) };
    ($($id:ident = $name:literal, $status:ident, $title:literal, $message:literal, $next:literal
        $(, hint $hint:literal)?;)*) => {
        $(const $id: Kind = Kind {
            name: $name,
            status: StatusCode::$status,
            title: $title,
            message: $message,
            next_step: $next,
            hint: kinds!(@hint $($hint)?),
        };)*
        /// Every kind, for `/problem?kind=` (and the tests, through `test_support`).
        pub const KINDS: &[&Kind] = &[$(&$id),*];
    };
}

kinds! {
    NOT_FOUND = "not-found", NOT_FOUND, "Page not found",
        "There is no page at this address.", "Go back to the start page.";
    METHOD = "method", METHOD_NOT_ALLOWED, "Method not allowed",
        "This page does not accept that kind of request.", "Go back to the start page and use its buttons.";
    TOO_LARGE = "too-large", PAYLOAD_TOO_LARGE, "Request too large",
        "The request was larger than this server accepts.", "Go back to the start page.";
    BAD_REQUEST = "bad-request", BAD_REQUEST, "Bad request",
        "The request could not be understood.", "Go back to the start page and try again.";
    SIGN_IN_FAILED = "sign-in-failed", BAD_REQUEST, "Sign-in failed",
        "This sign-in does not fit this browser's session.", "Go back to the start page and sign in again.";
    DENIED = "denied", FORBIDDEN, "Access was not granted",
        "Access was not granted.", "If that was a mistake, go back to the start page and click GRANT again.";
    CROSS_SITE = "cross-site", FORBIDDEN, "Request refused",
        "This form was sent from another site, so it was refused.", "Go back to the start page and use its buttons.";
    UNKNOWN_HOST = "unknown-host", BAD_REQUEST, "Unknown address",
        "This server does not answer to that host name.", "Open the address you were given for this app.";
    QUERY_TOO_LONG = "query-too-long", URI_TOO_LONG, "Address too long",
        "The address of this request is longer than this server accepts.", "Go back to the start page.";
    RATE_LIMITED = "rate-limited", TOO_MANY_REQUESTS, "Too many sign-ins from here",
        "Sign-ins from your address are limited.", "Wait a moment, then try again.";
    TOO_MANY_FLOWS = "too-many-flows", TOO_MANY_REQUESTS, "Too many sign-ins in progress",
        "Too many sign-ins from your address are waiting for approval.", "Finish or cancel one, or wait until its code expires, then try again.";
    BUSY = "busy", SERVICE_UNAVAILABLE, "Too many sign-ins in progress",
        "This server has too many device sign-ins waiting for approval.", "Try again in a few minutes.",
        hint "raise MAX_PENDING_DEVICE_FLOWS if this is normal load";
    SESSIONS = "sessions", SERVICE_UNAVAILABLE, "Sessions are unavailable",
        "This server cannot keep track of sign-ins just now.", "Try again in a moment.",
        hint "check SESSION_STORE and that its store answers";
    INTERNAL = "internal", INTERNAL_SERVER_ERROR, "Something went wrong",
        "The server could not complete the request.", "Try again in a moment.";
    WEBEX_TIMEOUT = "webex-timeout", GATEWAY_TIMEOUT, "Webex did not answer in time",
        "The request to Webex timed out.", "Try again in a moment; if it keeps happening, check https://status.webex.com.",
        hint "check WEBEX_API_BASE and the network";
    WEBEX_UNREACHABLE = "webex-unreachable", SERVICE_UNAVAILABLE, "Webex is unreachable",
        "This server could not connect to Webex.", "Try again in a moment; if it keeps happening, check https://status.webex.com.",
        hint "check WEBEX_API_BASE and the network";
    WEBEX_RATE_LIMITED = "webex-rate-limited", SERVICE_UNAVAILABLE, "Webex is rate limiting us",
        "Webex asked us to wait before the next request.", "Wait a minute, then try again.";
    WEBEX_FORBIDDEN = "webex-forbidden", FORBIDDEN, "Webex refused the request",
        "Your sign-in does not allow this: it needs permission to read your spaces (scope spark:rooms_read) or your profile (spark:people_read).",
        "Sign out, then sign in again and allow what the app asks for; if it keeps happening, tell whoever runs this app.",
        hint "check WEBEX_SCOPES / WEBEX_DEVICE_SCOPES and the scopes registered on the integration";
    WEBEX_UNAUTHORIZED = "webex-unauthorized", BAD_GATEWAY, "Webex refused the credentials",
        "Webex did not accept the access token.", "Sign out and sign in again.";
    WEBEX_SETUP = "webex-setup", BAD_GATEWAY, "Webex refused this app",
        "Webex did not accept this app's own credentials.", "Try again later: whoever runs this app needs to fix its Webex registration.",
        hint "check WEBEX_CLIENT_ID and WEBEX_CLIENT_SECRET";
    WEBEX_ERROR = "webex-error", BAD_GATEWAY, "Webex returned an error",
        "Webex could not complete the request.", "Try again; if it keeps happening, quote the tracking id to Webex support.";
    WEBEX_UNEXPECTED = "webex-unexpected", BAD_GATEWAY, "Webex sent something unexpected",
        "Webex sent an answer this server cannot use.", "Try again in a moment.",
        hint "check WEBEX_API_BASE and the network";
    WEBEX_TOO_MUCH = "webex-too-much", BAD_GATEWAY, "Webex sent too much",
        "Webex sent an answer larger than this server reads.", "Try again in a moment.",
        hint "check WEBEX_API_BASE and the network";
    IDENTITY = "identity", BAD_GATEWAY, "Your identity could not be verified",
        "Webex's answer did not prove who signed in, so nobody was signed in.",
        "Go back to the start page and sign in again; if it keeps happening, quote the tracking id to whoever runs this app.";
}

impl Kind {
    /// The kind named `name`, if there is one.
    pub fn named(name: &str) -> Option<&'static Kind> {
        KINDS.iter().copied().find(|kind| kind.name == name)
    }
}

/// What the error page shows, in the response's extensions until the edge renders it.
#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub kind: &'static str,
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
    pub next_step: &'static str,
    pub tracking_id: Option<String>,
    /// For the operator: goes to the log line, never to the page.
    pub hint: Option<&'static str>,
}

impl ErrorPage {
    /// `kind`'s page, in its own words.
    pub fn of(kind: &'static Kind) -> Self {
        Self {
            kind: kind.name,
            status: kind.status,
            title: kind.title,
            message: kind.message.into(),
            next_step: kind.next_step,
            tracking_id: None,
            hint: kind.hint,
        }
    }

    fn saying(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

impl AppError {
    /// How a form post (`POST /sign-in`, `/sign-in/cancel`, `/logout`) answers this failure,
    /// logged here with its status: a 303 to `GET /problem?kind=…` (with Webex's tracking id,
    /// never a secret), so a reload does not post the form again.
    pub fn after_form_post(self) -> Response {
        let response = self.into_response();
        let Some(page) = response.extensions().get::<ErrorPage>() else {
            return response; // a redirect already
        };
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("kind", page.kind);
        if let Some(id) = page.tracking_id.as_deref().filter(|id| is_tracking_id(id)) {
            query.append_pair("tracking", id);
        }
        Redirect::to(&format!("/problem?{}", query.finish())).into_response()
    }
}

/// Webex's failure as its page, with Webex's tracking id.
fn webex_page(err: &WebexError) -> ErrorPage {
    let page = match err {
        WebexError::Timeout => ErrorPage::of(&WEBEX_TIMEOUT),
        WebexError::Transport(_) => ErrorPage::of(&WEBEX_UNREACHABLE),
        WebexError::RateLimited { retry_after, .. } => {
            let wait =
                retry_after.map_or("a while".to_owned(), |d| format!("{} seconds", d.as_secs()));
            let said = format!("Webex asked us to wait {wait} before the next request.");
            ErrorPage::of(&WEBEX_RATE_LIMITED).saying(said)
        }
        WebexError::Forbidden { message, .. } => {
            let said = format!("Webex said: {message}. {}", WEBEX_FORBIDDEN.message);
            ErrorPage::of(&WEBEX_FORBIDDEN).saying(said)
        }
        WebexError::Unauthorized { .. } => ErrorPage::of(&WEBEX_UNAUTHORIZED),
        WebexError::Status { code, .. } if code.as_deref() == Some("invalid_client") => {
            ErrorPage::of(&WEBEX_SETUP)
        }
        WebexError::Status {
            status,
            code,
            message,
            ..
        } => {
            let said = code.as_deref().unwrap_or(message);
            ErrorPage::of(&WEBEX_ERROR)
                .saying(format!("Webex answered {} ({said}).", status.as_u16()))
        }
        WebexError::Decode { what, .. } => ErrorPage::of(&WEBEX_UNEXPECTED)
            .saying(format!("Webex sent a {what} this server cannot read.")),
        WebexError::TooLarge { what, limit, .. } => {
            let kib = limit / 1024;
            let said = format!(
                "Webex sent a {what} larger than this server reads ({kib} KiB), so it was refused."
            );
            ErrorPage::of(&WEBEX_TOO_MUCH).saying(said)
        }
        WebexError::Invalid { what, problem, .. } => {
            let said = format!("Webex sent a {what} with {problem}, so it was refused.");
            ErrorPage::of(&WEBEX_UNEXPECTED).saying(said)
        }
    };
    ErrorPage {
        tracking_id: err.tracking_id().map(str::to_owned),
        ..page
    }
}

/// The identity page: a refused id_token's (400 when it belongs to another login), or, for keys
/// that could not be had, Webex's page under the identity page's title: 503 when Webex could
/// not be reached in time (try again soon), 502 for any answer that is not a key set.
fn identity_page(err: &IdentityError) -> ErrorPage {
    match err {
        IdentityError::Refused {
            refusal,
            tracking_id,
        } => ErrorPage {
            status: if refusal.wrong_nonce {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::BAD_GATEWAY
            },
            tracking_id: tracking_id.clone(),
            ..ErrorPage::of(&IDENTITY)
        },
        IdentityError::Keys(err) => {
            let page = webex_page(err);
            let unreachable = matches!(
                **err,
                WebexError::Timeout | WebexError::Transport(_) | WebexError::RateLimited { .. }
            );
            ErrorPage {
                kind: IDENTITY.name,
                status: if unreachable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                },
                title: IDENTITY.title,
                message: format!(
                    "{} Webex's signing keys are needed to check who signed in, so nobody was signed in.",
                    page.message
                ),
                ..page
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let page = match &self {
            Self::NotSignedIn => return Redirect::to("/").into_response(),
            Self::SignInAgain => {
                tracing::info!("refresh token refused; the user must sign in again");
                return Redirect::to("/?notice=reauth").into_response();
            }
            Self::BadRequest(message) => ErrorPage::of(&SIGN_IN_FAILED).saying(message.clone()),
            Self::Denied(message) => ErrorPage::of(&DENIED).saying(message.clone()),
            Self::CrossSite => ErrorPage::of(&CROSS_SITE),
            Self::UnknownHost => ErrorPage::of(&UNKNOWN_HOST),
            Self::QueryTooLong => ErrorPage::of(&QUERY_TOO_LONG),
            Self::NotFound => ErrorPage::of(&NOT_FOUND),
            Self::MethodNotAllowed => ErrorPage::of(&METHOD),
            Self::TooManyRequests { retry_after_secs } => ErrorPage::of(&RATE_LIMITED).saying(format!(
                "Sign-ins from your address are limited; the next one is possible in {} seconds.",
                retry_after_secs
            )),
            Self::TooManyFlows => ErrorPage::of(&TOO_MANY_FLOWS),
            Self::Busy => ErrorPage::of(&BUSY),
            Self::Session(_) | Self::Store(_) => {
                crate::telemetry::store_error("request");
                ErrorPage::of(&SESSIONS)
            }
            Self::Internal(_) => ErrorPage::of(&INTERNAL),
            Self::Webex(err) => webex_page(err),
            Self::Identity(err) => identity_page(err),
        };
        // The Display of every variant is safe to log: no variant carries a token or a body.
        // A refused id_token is Webex's answer (or a forgery) refused as designed: a warning.
        let refused = matches!(self, Self::Identity(IdentityError::Refused { .. }));
        let (status, tracking_id, hint) = (page.status, page.tracking_id.as_deref(), page.hint);
        if status.is_server_error() && !refused {
            tracing::error!(status = status.as_u16(), tracking_id, hint, error = %self, "request failed");
        } else {
            tracing::warn!(status = status.as_u16(), tracking_id, hint, error = %self, "request refused");
        }
        let mut response = (status, Extension(page)).into_response();
        if let Self::TooManyRequests { retry_after_secs } = self {
            let value = header::HeaderValue::from(retry_after_secs);
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// Renders [`ErrorPage`]s (with the response's status: a `/problem` page's is 200), and gives an
/// HTML page to any other error response without an HTML or JSON body (axum's rejections are
/// plain text). A bare server error came from a layer (the handler timeout's 504, the panic
/// catcher's 500), not from an [`AppError`], which logs its own: it is logged here.
pub fn render_error_page(demo: bool, response: Response) -> Response {
    let status = response.status();
    let page = match response.extensions().get::<ErrorPage>() {
        Some(page) => page.clone(),
        None if !(status.is_client_error() || status.is_server_error()) => return response,
        None => {
            let content_type = response.headers().get(header::CONTENT_TYPE);
            let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
            if content_type.starts_with("text/html") || content_type.starts_with("application/json")
            {
                return response;
            }
            if status.is_server_error() {
                let what = if status == StatusCode::GATEWAY_TIMEOUT {
                    "the request took longer than the handler timeout"
                } else {
                    "a layer answered with a server error"
                };
                tracing::error!(status = status.as_u16(), "{what}");
            }
            // The generic page of a status with no details (axum's rejections, the layers').
            let kind = match status {
                StatusCode::NOT_FOUND => &NOT_FOUND,
                StatusCode::METHOD_NOT_ALLOWED => &METHOD,
                StatusCode::PAYLOAD_TOO_LARGE => &TOO_LARGE,
                s if s.is_client_error() => &BAD_REQUEST,
                _ => &INTERNAL,
            };
            ErrorPage {
                status,
                ..ErrorPage::of(kind)
            }
        }
    };
    let (mut parts, _) = response.into_parts();
    // Keep headers such as Allow and Retry-After; the body and its type are the page's.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    (parts, render(&ErrorTemplate { demo, page })).into_response()
}

#[cfg(test)]
mod tests;
