//! The authorization-code flow with PKCE (the Flask sample's GRANT button), and sign-out.
//!
//! 1. `GET /login` keeps a random `state` and PKCE verifier (and a nonce when the scopes ask for
//!    `openid`) in this session, and sends the browser to Webex's `/authorize` with the state,
//!    the nonce and the verifier's S256 challenge. Up to [`MAX_PENDING_LOGINS`] may be pending
//!    per session (two tabs can each sign in), each for [`LOGIN_TTL_SECS`].
//! 2. The user approves (or declines) on Webex, which sends the browser to `GET /oauth`.
//! 3. `/oauth` checks the state against this session's (constant time, single use), exchanges
//!    the code plus verifier for tokens, verifies the id_token (any failure refuses the
//!    sign-in), keeps the tokens and who signed in, cycles the session id, and goes to `/granted`.

use crate::clock::unix_now;
use crate::identity::wants_openid;
use crate::secret::{Secret, random_token};
use crate::state::AppState;
use crate::tokens::{Grant, TokenSet};
use crate::web::error::{AppError, Result};
use crate::web::session::{PendingLogin, WebSession};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

const MAX_PENDING_LOGINS: usize = 5;
const LOGIN_TTL_SECS: u64 = 600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login))
        .route("/oauth", get(callback))
        .route("/logout", post(logout))
}

/// `GET /login`: a new pending login, then off to Webex's consent page.
async fn login(
    State(state): State<AppState>,
    session: WebSession,
    headers: HeaderMap,
) -> Result<Response> {
    let config = state.config();
    let redirect_uri = &config.redirect_uri;
    // The session cookie is per host: a login started on 127.0.0.1 would come back on
    // localhost without it. Move to the redirect URI's origin first.
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok())
        && !host.eq_ignore_ascii_case(&crate::config::authority(redirect_uri))
    {
        let target = format!("{}/login", config.public_origin());
        return Ok(Redirect::to(&target).into_response());
    }

    let now = unix_now();
    let login = PendingLogin {
        oauth_state: random_token(),
        verifier: random_token(),
        // 256 random bits, bound to this login like its state, used up with it.
        nonce: wants_openid(&config.scopes).then(random_token),
        started_at: now,
    };
    let mut pending = session.pending_logins().await?;
    pending.retain(|p| p.started_at.saturating_add(LOGIN_TTL_SECS) > now);
    if pending.len() >= MAX_PENDING_LOGINS {
        pending.remove(0);
    }
    let url = state.webex().authorize_url(
        redirect_uri.as_str(),
        &config.scopes,
        &login.oauth_state,
        &login.verifier,
        login.nonce.as_ref(),
    );
    pending.push(login);
    session.set_pending_logins(pending).await?;
    Ok(Redirect::to(url.as_str()).into_response())
}

/// The callback's `code`, `state`, `error` and `error_description`, read by hand so that nothing
/// a caller sends can make it fail, except a parameter given twice.
fn parse_callback(query: Option<&str>) -> Result<[Option<String>; 4]> {
    const KEYS: [&str; 4] = ["code", "state", "error", "error_description"];
    let mut values = [const { None }; 4];
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if let Some(i) = KEYS.iter().position(|k| *k == key)
            && values[i].replace(value.into_owned()).is_some()
        {
            let repeated = format!("The callback repeats the parameter {key:?}.");
            return Err(AppError::BadRequest(repeated));
        }
    }
    Ok(values)
}

/// `GET /oauth`: Webex's redirect back, with the code (or an error) and our state.
async fn callback(
    State(state): State<AppState>,
    session: WebSession,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let [code, returned_state, error, _] = parse_callback(query.as_deref())?;
    let Some(returned_state) = returned_state.filter(|s| !s.is_empty()) else {
        let why = "The callback has no state parameter.";
        return Err(AppError::BadRequest(why.into()));
    };

    // Find this session's pending login with that state, and remove it: a state works once.
    let now = unix_now();
    let mut pending = session.pending_logins().await?;
    let returned = returned_state.as_bytes();
    let found = pending.iter().position(|p| {
        let same = p.oauth_state.expose().as_bytes().ct_eq(returned);
        bool::from(same) && p.started_at.saturating_add(LOGIN_TTL_SECS) > now
    });
    let Some(index) = found else {
        let why = "This sign-in was not started in this browser, was already used, or is too old.";
        return Err(AppError::BadRequest(why.into()));
    };
    let login = pending.remove(index);
    session.set_pending_logins(pending).await?;
    // Used up now, durably: even if the exchange below fails, this callback URL is dead.
    session.save_now().await?;

    if let Some(error) = error {
        let error = short_code(&error);
        return Err(if error == "access_denied" {
            let why = "You declined to grant this integration access to your Webex account.";
            AppError::Denied(why.into())
        } else {
            AppError::BadRequest(format!("Webex did not grant access ({error})."))
        });
    }
    let Some(code) = code.filter(|c| !c.is_empty()).map(Secret::new) else {
        return Err(AppError::BadRequest("The callback has no code.".into()));
    };

    let uri = state.config().redirect_uri.as_str();
    let exchanged = state.webex().exchange_code(&code, &login.verifier, uri);
    let response = match exchanged.await {
        Ok(response) => response,
        // A code Webex does not know, or one already used: a bad callback, not a Webex fault.
        Err(err) if err.oauth_code() == Some("invalid_grant") => {
            let tracking_id = err.tracking_id();
            tracing::warn!(tracking_id, "Webex refused the authorization code");
            let why = "Webex refused the authorization code (expired or already used).";
            return Err(AppError::BadRequest(why.into()));
        }
        Err(err) => return Err(err.into()),
    };
    // Who signed in, when the scopes ask for `openid`: the id_token, verified with this login's
    // nonce. One that does not verify refuses the sign-in (the login is already used up); an
    // answer without one signs in as before, and says so in the log.
    let mut identity = None;
    if wants_openid(&state.config().scopes) {
        let nonce = login.nonce.as_ref();
        identity = state.identity().identify(&response, nonce).await?;
        if identity.is_none() {
            tracing::warn!(
                tracking_id = response.tracking_id.as_deref(),
                "Webex sent no id_token although the scopes ask for openid; signed in without a verified identity"
            );
        }
    }
    let tokens = TokenSet::new(response, Grant::AuthorizationCode);
    session.sign_in(&tokens, identity.as_ref()).await?;
    tracing::info!(
        verified_identity = identity.is_some(),
        "signed in with the authorization code flow"
    );
    Ok(Redirect::to("/granted").into_response())
}

/// An error code from the URL, made safe to show: printable ASCII, bounded.
fn short_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect()
}

/// `POST /logout`: cancels any device flow, forgets the session (server-side too), back to
/// the start. A failure redirects to its `/problem` page (a reload does not post again).
async fn logout(State(state): State<AppState>, session: WebSession) -> Response {
    let signed_out = async {
        if let Some(flow) = session.flow_id().await? {
            state.flows().cancel(&flow).await?;
        }
        session.flush().await?;
        let mut response = Redirect::to("/").into_response();
        response.extensions_mut().insert(crate::web::SignedOut);
        Ok::<_, AppError>(response)
    };
    signed_out.await.unwrap_or_else(AppError::after_form_post)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_query_parsing_never_fails_on_odd_input_but_refuses_repeats() {
        let query = "code=a%20b&state=s&x=1&error_description=%FF%FE";
        let [code, state, ..] = parse_callback(Some(query)).unwrap();
        let got = [code.as_deref(), state.as_deref()];
        assert_eq!(got, [Some("a b"), Some("s")]);
        assert!(parse_callback(None).unwrap()[1].is_none());
        assert!(parse_callback(Some("&&==&%%%")).is_ok());
        assert!(parse_callback(Some("state=a&state=b")).is_err());
    }

    #[test]
    fn error_codes_are_cleaned_before_display() {
        assert_eq!(short_code("access_denied<script>"), "access_deniedscript");
        assert_eq!(short_code(&"x".repeat(500)).len(), 64);
    }
}
