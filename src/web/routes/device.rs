//! The device authorization grant (the Flask sample's Sign-In button), Webex's way.
//!
//! 1. `POST /sign-in` asks Webex's `/device/authorize` for a user code, records the flow (it
//!    replaces this session's old one), spawns its poller, and goes to `GET /sign-in`.
//! 2. `GET /sign-in` shows the QR code, the user code and a countdown; `static/app.js` asks
//!    `GET /device/status` every 2 s. `POST /sign-in/cancel` stops the poller.
//! 3. The user approves on another device; the poller gets the tokens and verifies their
//!    id_token when the scopes ask for `openid` (one that does not verify fails the flow).
//! 4. The next `/device/status` or `/sign-in` moves the tokens (and who signed in) into the
//!    session, once, under a new session id; the page goes on to `/granted`.
//!
//! The flow id lives only in the session, so no page can show another session's flow.

use crate::device_flow::{FlowRecord, FlowStatus};
use crate::identity::Verdict;
use crate::qr;
use crate::secret::fingerprint;
use crate::state::AppState;
use crate::store::Lock;
use crate::web::error::{AppError, Result};
use crate::web::rate_limit::ClientAddr;
use crate::web::session::WebSession;
use crate::web::templates::{SignInTemplate, render};
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sign-in", post(start).get(show))
        .route("/sign-in/cancel", post(cancel))
        .route("/device/status", get(status))
}

/// `POST /sign-in`: a new device flow, then its page. A failure redirects to its `/problem`
/// page, except a client over `MAX_PENDING_FLOWS_PER_CLIENT`: refused before anything started,
/// it gets its 429 page at once, as the rate limit answers.
async fn start(
    State(state): State<AppState>,
    client: Option<Extension<ClientAddr>>,
    session: WebSession,
) -> Response {
    let started = async {
        let flows = state.flows();
        // One start or claim at a time per session: ten racing `POST /sign-in` leave one
        // pending flow, and two tabs seeing the grant both end signed in.
        let locked = session.lock(state.session_locks(), Lock::Flow).await?;
        if let Some(old) = session.take_flow_id().await? {
            flows.cancel(&old).await?;
        }
        // This client's place, held from before Webex is asked until the flow ends.
        let client = client.map(|Extension(ClientAddr(ip))| ip);
        let slot = flows.reserve(client).await?;
        let scopes = &state.config().device_scopes;
        let auth = state.webex().device_authorize(scopes).await?;
        let lifetime = std::time::Duration::from_secs(auth.expires_in);
        let id = flows.start(auth, slot).await?;
        session.set_flow_id(&id, lifetime).await?;
        if locked.is_some() {
            // Saved before the lock opens, so the next request of this session sees this flow.
            session.save_now().await?;
        }
        tracing::info!(flow = %fingerprint(&id), "device flow started");
        Ok(Redirect::to("/sign-in").into_response())
    };
    match started.await {
        Ok(response) => response,
        Err(err @ AppError::TooManyFlows) => err.into_response(),
        Err(err) => err.after_form_post(),
    }
}

/// What this session's flow looks like now. Claims the tokens when the flow was granted.
enum Current {
    None,
    SignedIn,
    Flow(Box<FlowRecord>),
}

/// A session with no flow (any more): signed in, or nothing to show.
async fn without_flow(session: &WebSession) -> Result<Current> {
    Ok(if session.has_tokens().await? {
        Current::SignedIn
    } else {
        Current::None
    })
}

async fn current(state: &AppState, session: &WebSession) -> Result<Current> {
    if session.is_gone().await? {
        // A stale cookie: most likely another tab of this browser just signed in with this
        // flow under a new id (its cookie is already in the browser). Say so; write nothing.
        return Ok(Current::SignedIn);
    }
    let Some(id) = session.flow_id().await? else {
        return without_flow(session).await;
    };
    let flows = state.flows();
    flows.mark_seen(&id).await?;
    if let Some(record) = flows.get(&id).await?
        && record.status != FlowStatus::Granted
    {
        return Ok(Current::Flow(Box::new(record)));
    }
    // Granted (or gone): claim under the session's lock. The tab that wins signs in under a
    // new session id; the other finds its old id deleted and must not touch the session (an
    // empty session would answer with a cookie deletion that could sign the user out).
    let _locked = session.lock(state.session_locks(), Lock::Flow).await?;
    if session.is_gone().await? {
        return Ok(Current::SignedIn);
    }
    let Some(id) = session.flow_id().await? else {
        return without_flow(session).await;
    };
    // Who signed in, as the poller verified it; written with the tokens, read before they go.
    let identity = match flows.get(&id).await? {
        Some(FlowRecord {
            id_token: Verdict::Verified(identity),
            ..
        }) => Some(identity),
        _ => None,
    };
    if let Some(tokens) = flows.take_tokens(&id).await? {
        session.take_flow_id().await?;
        session.sign_in(&tokens, identity.as_ref()).await?;
        // Saved before the lock opens: the other tab then finds the old id gone.
        session.save_now().await?;
        tracing::info!(flow = %fingerprint(&id), "signed in with the device flow");
        return Ok(Current::SignedIn);
    }
    match flows.get(&id).await? {
        Some(record) => Ok(Current::Flow(Box::new(record))),
        None => {
            // Cancelled, purged, or claimed by a concurrent request.
            session.take_flow_id().await?;
            without_flow(session).await
        }
    }
}

/// `GET /sign-in`: the QR code, the user code and the countdown of this session's flow.
async fn show(State(state): State<AppState>, session: WebSession) -> Result<Response> {
    let record = match current(&state, &session).await? {
        Current::None => return Ok(Redirect::to("/").into_response()),
        Current::SignedIn => return Ok(Redirect::to("/granted").into_response()),
        Current::Flow(record) => record,
    };
    let status = record.shown_status();
    let status_text = match status {
        FlowStatus::Pending if record.slowed_down => {
            "Webex asked us to slow down; still waiting for approval."
        }
        FlowStatus::Pending => "Waiting for approval on your other device…",
        FlowStatus::Granted => "Approved. Signing you in…",
        FlowStatus::Denied => "The sign-in was denied on the other device.",
        // The heading already says the code expired.
        FlowStatus::Expired => "Nobody approved it in time. Start again for a new code.",
        FlowStatus::Error => match record.id_token {
            Verdict::Refused => {
                "Your identity could not be verified: Webex's answer did not prove who signed in, so nobody was signed in."
            }
            Verdict::Unverifiable => {
                "Your identity could not be verified: Webex's signing keys could not be fetched, so nobody was signed in."
            }
            _ => "Webex could not complete the sign-in.",
        },
    };
    // Drawn for each view: a pending flow keeps only its link.
    let qr = qr::png_data_uri(&record.verification_uri_complete).map_err(AppError::Internal)?;
    Ok(render(&SignInTemplate {
        demo: state.is_demo(),
        expires_in: record.expires_in(),
        lifetime: record.lifetime_secs.max(1),
        user_code: record.user_code,
        verification_uri: record.verification_uri,
        loopback_host: loopback_host(&record.verification_uri_complete),
        verification_uri_complete: record.verification_uri_complete,
        qr_data_uri: qr,
        status: status.as_str(),
        status_text,
        finished: status.is_final(),
    }))
}

/// `GET /device/status`: the flow's state as JSON, for the page's script.
async fn status(State(state): State<AppState>, session: WebSession) -> Result<Response> {
    Ok(match current(&state, &session).await? {
        Current::None => (StatusCode::NOT_FOUND, Json(json!({ "status": "none" }))).into_response(),
        Current::SignedIn => {
            Json(json!({ "status": "granted", "expires_in": 0, "slowed_down": false }))
                .into_response()
        }
        Current::Flow(record) => Json(json!({
            "status": record.shown_status(),
            "expires_in": record.expires_in(),
            "slowed_down": record.slowed_down,
        }))
        .into_response(),
    })
}

/// `POST /sign-in/cancel`: stops this session's flow, back to the start (or to the failure's
/// `/problem` page).
async fn cancel(State(state): State<AppState>, session: WebSession) -> Response {
    let cancelled = async {
        if let Some(id) = session.take_flow_id().await? {
            state.flows().cancel(&id).await?;
            tracing::info!(flow = %fingerprint(&id), "device flow cancelled");
        }
        Ok::<_, AppError>(Redirect::to("/").into_response())
    };
    cancelled.await.unwrap_or_else(AppError::after_form_post)
}

/// The host of `link` when it is this computer (a 127.0.0.0/8 or `::1` address, `localhost`
/// or a name under `.localhost`), as the page shows it; `None` for any other host or no URL.
fn loopback_host(link: &str) -> Option<String> {
    let url = url::Url::parse(link).ok()?;
    let local = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    local.then(|| url.host_str().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn links_to_this_computer_are_recognised() {
        for (link, host) in [
            ("http://127.0.0.1:10060/verify?code=1", Some("127.0.0.1")),
            ("http://127.9.8.7/verify", Some("127.9.8.7")),
            ("http://[::1]:8080/verify", Some("[::1]")),
            ("http://LocalHost:10060/verify", Some("localhost")),
            ("http://app.localhost/verify", Some("app.localhost")),
            ("http://192.168.1.20:10060/verify", None),
            ("https://oauth-helper-a.wbx2.com/verify", None),
            ("http://localhost.example.com/verify", None),
            ("http://[::ffff:192.168.1.2]/verify", None),
            ("not a url", None),
            ("", None),
        ] {
            assert_eq!(loopback_host(link).as_deref(), host, "{link}");
        }
    }
}
