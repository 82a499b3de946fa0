//! `AppError`: every failure becomes an HTML page with the right status, and is logged once.
//!
//! A handler returns `Err(AppError)`; `into_response` logs it (inside the request's span) and
//! leaves an [`ErrorPage`] in the response's extensions. [`render_error_page`], which the guard
//! middleware calls on every response, turns that into `templates/error.html`, and gives the
//! same page to axum's own plain-text rejections (bad query, body too large, 404, 405).
//! Lower layers return their own errors ([`StoreError`], [`FlowError`], [`WebexError`]); the
//! `From` impls here convert them at the edge, keeping the cause as the error's source.

use crate::pollers::FlowError;
use crate::store::StoreError;
use crate::templates::{ErrorTemplate, render};
use crate::webex::WebexError;
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
    TooManyRequests { retry_after: std::time::Duration },
    /// 503: too many device sign-ins pending on this server.
    #[error("too many device sign-ins are pending")]
    Busy,
    /// 503: the session layer failed (its store did not answer, or a record did not decode).
    #[error("session: {0}")]
    Session(#[from] tower_sessions::session::Error),
    /// 503: the flow store or the refresh lock failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 502/503/504/403, depending on what Webex did.
    #[error(transparent)]
    Webex(#[from] WebexError),
    /// 500: a bug of ours.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<FlowError> for AppError {
    fn from(err: FlowError) -> Self {
        match err {
            FlowError::Busy => Self::Busy,
            FlowError::Qr(problem) => Self::Internal(problem),
            FlowError::Store(err) => Self::Store(err),
        }
    }
}

/// What the error page shows. Lives in the response's extensions until the middleware renders it.
#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    pub next_step: String,
    pub tracking_id: Option<String>,
}

impl ErrorPage {
    fn new(status: StatusCode, title: &str, message: impl Into<String>, next_step: &str) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
            next_step: next_step.into(),
            tracking_id: None,
        }
    }

    /// The generic page for a status we have no details for (axum rejections, fallbacks).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::new(
                status,
                "Page not found",
                "There is no page at this address.",
                "Go back to the start page.",
            ),
            StatusCode::METHOD_NOT_ALLOWED => Self::new(
                status,
                "Method not allowed",
                "This page does not accept that kind of request.",
                "Go back to the start page and use its buttons.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                status,
                "Request too large",
                "The request was larger than this server accepts.",
                "Go back to the start page.",
            ),
            s if s.is_client_error() => Self::new(
                status,
                "Bad request",
                "The request could not be understood.",
                "Go back to the start page and try again.",
            ),
            _ => Self::new(
                status,
                "Something went wrong",
                "The server could not complete the request.",
                "Try again in a moment.",
            ),
        }
    }
}

/// What a failure answers: a redirect (no page to show), or an error page.
enum Outcome {
    Redirect(&'static str),
    Page(ErrorPage),
}

impl AppError {
    fn outcome(&self) -> Outcome {
        use StatusCode as S;
        Outcome::Page(match self {
            Self::NotSignedIn => return Outcome::Redirect("/"),
            Self::SignInAgain => return Outcome::Redirect("/?notice=reauth"),
            Self::BadRequest(message) => ErrorPage::new(
                S::BAD_REQUEST,
                "Sign-in failed",
                message.clone(),
                "Go back to the start page and sign in again.",
            ),
            Self::Denied(message) => ErrorPage::new(
                S::FORBIDDEN,
                "Access was not granted",
                message.clone(),
                "If that was a mistake, go back to the start page and click GRANT again.",
            ),
            Self::CrossSite => ErrorPage::new(
                S::FORBIDDEN,
                "Request refused",
                "This form was sent from another site, so it was refused.",
                "Go back to the start page and use its buttons.",
            ),
            Self::UnknownHost => ErrorPage::new(
                S::BAD_REQUEST,
                "Unknown address",
                "This server does not answer to that host name.",
                "Open the address you were given for this app.",
            ),
            Self::QueryTooLong => ErrorPage::new(
                S::URI_TOO_LONG,
                "Address too long",
                "The address of this request is longer than this server accepts.",
                "Go back to the start page.",
            ),
            Self::NotFound => ErrorPage::for_status(S::NOT_FOUND),
            Self::MethodNotAllowed => ErrorPage::for_status(S::METHOD_NOT_ALLOWED),
            Self::TooManyRequests { retry_after } => ErrorPage::new(
                S::TOO_MANY_REQUESTS,
                "Too many sign-ins from here",
                format!(
                    "Sign-ins from your address are limited; the next one is possible in {} seconds.",
                    retry_after.as_secs().max(1)
                ),
                "Wait a moment, then try again.",
            ),
            Self::Busy => ErrorPage::new(
                S::SERVICE_UNAVAILABLE,
                "Too many sign-ins in progress",
                "This server has too many device sign-ins waiting for approval.",
                "Try again in a few minutes.",
            ),
            Self::Session(_) | Self::Store(_) => ErrorPage::new(
                S::SERVICE_UNAVAILABLE,
                "Sessions are unavailable",
                "The session store did not answer.",
                "Try again in a moment.",
            ),
            Self::Internal(_) => ErrorPage::for_status(S::INTERNAL_SERVER_ERROR),
            Self::Webex(err) => {
                let mut page = webex_page(err);
                page.tracking_id = err.tracking_id().map(str::to_owned);
                page
            }
        })
    }
}

fn webex_page(err: &WebexError) -> ErrorPage {
    use StatusCode as S;
    match err {
        WebexError::Timeout => ErrorPage::new(
            S::GATEWAY_TIMEOUT,
            "Webex did not answer in time",
            "The request to Webex timed out.",
            "Try again in a moment; if it keeps happening, check https://status.webex.com.",
        ),
        WebexError::Transport(_) => ErrorPage::new(
            S::SERVICE_UNAVAILABLE,
            "Webex is unreachable",
            "This server could not connect to Webex.",
            "Check the network and WEBEX_API_BASE, then try again.",
        ),
        WebexError::RateLimited { retry_after, .. } => {
            let wait =
                retry_after.map_or("a while".to_owned(), |d| format!("{} seconds", d.as_secs()));
            ErrorPage::new(
                S::SERVICE_UNAVAILABLE,
                "Webex is rate limiting us",
                format!("Webex asked us to wait {wait} before the next request."),
                "Wait, then try again.",
            )
        }
        WebexError::Forbidden { message, .. } => ErrorPage::new(
            S::FORBIDDEN,
            "Webex refused the request",
            format!(
                "Webex said: {message}. The token probably lacks a scope this page needs (spark:rooms_read for spaces, spark:people_read for the profile)."
            ),
            "Check WEBEX_SCOPES / WEBEX_DEVICE_SCOPES and the scopes registered on your integration, then sign in again.",
        ),
        WebexError::Unauthorized { .. } => ErrorPage::new(
            S::BAD_GATEWAY,
            "Webex refused the credentials",
            "Webex did not accept the access token.",
            "Sign out and sign in again.",
        ),
        WebexError::Status {
            status,
            code,
            message,
            ..
        } => {
            let said = code.as_deref().unwrap_or(message);
            let next = if code.as_deref() == Some("invalid_client") {
                "Check WEBEX_CLIENT_ID and WEBEX_CLIENT_SECRET."
            } else {
                "Try again; if it keeps happening, quote the tracking id to Webex support."
            };
            ErrorPage::new(
                S::BAD_GATEWAY,
                "Webex returned an error",
                format!("Webex answered {} ({said}).", status.as_u16()),
                next,
            )
        }
        WebexError::Decode { what, .. } => ErrorPage::new(
            S::BAD_GATEWAY,
            "Webex sent something unexpected",
            format!("Webex sent a {what} this server cannot read."),
            "Try again; if it keeps happening, check WEBEX_API_BASE.",
        ),
        WebexError::TooLarge { what, limit, .. } => ErrorPage::new(
            S::BAD_GATEWAY,
            "Webex sent too much",
            format!(
                "Webex sent a {what} larger than this server reads ({} KiB), so it was refused.",
                limit / 1024
            ),
            "Try again; if it keeps happening, check WEBEX_API_BASE.",
        ),
        WebexError::Invalid { what, problem, .. } => ErrorPage::new(
            S::BAD_GATEWAY,
            "Webex sent something unexpected",
            format!("Webex sent a {what} with {problem}, so it was refused."),
            "Try again; if it keeps happening, check WEBEX_API_BASE.",
        ),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let page = match self.outcome() {
            Outcome::Redirect(to) => {
                if matches!(self, Self::SignInAgain) {
                    tracing::info!("refresh token refused; the user must sign in again");
                }
                return Redirect::to(to).into_response();
            }
            Outcome::Page(page) => page,
        };
        if matches!(self, Self::Session(_) | Self::Store(_)) {
            crate::telemetry::store_error("request");
        }
        // The Display of every variant is safe to log: no variant carries a token or a body.
        if page.status.is_server_error() {
            tracing::error!(status = page.status.as_u16(), tracking_id = page.tracking_id.as_deref(), error = %self, "request failed");
        } else {
            tracing::warn!(status = page.status.as_u16(), tracking_id = page.tracking_id.as_deref(), error = %self, "request refused");
        }
        let mut response = page.status.into_response();
        if let Self::TooManyRequests { retry_after } = &self {
            // Whole seconds, rounded up: never tell a client to come back too early.
            let secs = retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
        }
        response.extensions_mut().insert(page);
        response
    }
}

/// Renders [`ErrorPage`]s, and gives an HTML page to any other error response that has none
/// (axum's rejections are plain text; the JSON API keeps its JSON). The guard middleware calls
/// it on every response; `demo` shows the mode in the page's header.
pub fn render_error_page(demo: bool, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let page = match response.extensions().get::<ErrorPage>() {
        Some(page) => page.clone(),
        None => {
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if content_type.starts_with("text/html") || content_type.starts_with("application/json")
            {
                return response;
            }
            ErrorPage::for_status(status)
        }
    };
    let (mut parts, _) = response.into_parts();
    let mut page_response = render(&ErrorTemplate {
        demo,
        status: page.status.as_u16(),
        title: page.title,
        message: page.message,
        next_step: page.next_step,
        tracking_id: page.tracking_id,
    });
    *page_response.status_mut() = status;
    // Keep headers such as Allow and Retry-After; the body and its type are the page's.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_response.headers_mut().extend(parts.headers);
    page_response
}
