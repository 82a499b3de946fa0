//! `GET /` (the two buttons), `GET /healthz` (liveness), `GET /readyz` (the store answers) and
//! `GET /problem` (the page a failed form post redirects to).

use crate::state::AppState;
use crate::web::error::Result;
use crate::web::session::WebSession;
use crate::web::templates::{IndexTemplate, render};
use axum::Router;
use axum::extract::{RawQuery, State};
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
/// the error page can be reloaded without posting the form again (a 200 whatever the kind).
async fn problem(RawQuery(query): RawQuery) -> Response {
    let [kind, tracking] = super::first_values(query.as_deref(), ["kind", "tracking"]);
    crate::web::error::problem_page(kind.as_deref().unwrap_or_default(), tracking.as_deref())
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
