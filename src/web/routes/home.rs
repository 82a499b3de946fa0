//! `GET /` (the two buttons), `GET /healthz` (liveness), `GET /readyz` (the store answers) and
//! `GET /problem` (the page a failed form post redirects to).

use crate::state::AppState;
use crate::web::error::{AppError, ErrorPage, Kind, Result};
use crate::web::session::WebSession;
use crate::web::templates::{IndexTemplate, render};
use crate::webex::is_tracking_id;
use axum::Router;
use axum::extract::{Extension, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        // Liveness only: it never touches the store.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/problem", get(problem))
}

/// `GET /problem?kind=<kind>&tracking=<id>`: where a failed form post sends the browser, so
/// the error page can be reloaded without posting the form again (an unknown kind is the 404
/// page). A 200 whatever the kind, its status shown only as text: the failure was logged and
/// counted where it happened, and a 5xx here would let anyone raise the server's 5xx count and
/// page an operator.
async fn problem(RawQuery(query): RawQuery) -> Response {
    let [kind, tracking] = super::first_values(query.as_deref(), ["kind", "tracking"]);
    let Some(kind) = Kind::named(kind.as_deref().unwrap_or_default()) else {
        return AppError::NotFound.into_response();
    };
    let page = ErrorPage {
        tracking_id: tracking.filter(|id| is_tracking_id(id)),
        ..ErrorPage::of(kind)
    };
    (StatusCode::OK, Extension(page)).into_response()
}

/// `GET /readyz`: 200 when the session store answers, 503 when it does not (JSON, for probes).
async fn ready(State(state): State<AppState>) -> Response {
    match state.sessions().ping().await {
        Ok(()) => Json(json!({ "ready": true })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "not ready: the session store does not answer");
            let not_ready = Json(json!({ "ready": false }));
            (StatusCode::SERVICE_UNAVAILABLE, not_ready).into_response()
        }
    }
}

/// `GET /`: the landing page. `?notice=` only selects one of our fixed messages; its value is never shown.
async fn index(
    State(state): State<AppState>,
    session: WebSession,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let reauth = "Your Webex sign-in has expired or was revoked. Please sign in again.";
    let notice = (query.as_deref() == Some("notice=reauth")).then_some(reauth);
    Ok(render(&IndexTemplate {
        demo: state.is_demo(),
        notice,
        signed_in: session.has_tokens().await?,
    }))
}
