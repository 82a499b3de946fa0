//! The authorization-code login walk, as a browser makes it: `GET /login` → the fake's consent
//! page → its form posted with a decision → the callback (`/oauth`) → `/granted`.

use reqwest::header::LOCATION;
use reqwest::{Client, Response, StatusCode};

/// Requests one whole [`log_in`] sends.
pub const LOGIN_REQUESTS: usize = 5;

/// A hop of the walk that did not answer as it should.
#[derive(Debug)]
pub struct LoginError {
    /// The hop, e.g. `GET /login`.
    pub hop: &'static str,
    /// Its status, when an answer came.
    pub status: Option<StatusCode>,
    /// What was wrong.
    pub detail: String,
    /// Requests sent so far, this one included.
    pub sent: usize,
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{}: {status}: {}", self.hop, self.detail),
            None => write!(f, "{}: {}", self.hop, self.detail),
        }
    }
}

/// One walk in one browser: a cookie-keeping client that follows no redirect.
struct Walk<'a> {
    browser: &'a Client,
    sent: usize,
}

impl Walk<'_> {
    /// Sends `request` as `hop` and checks that it answers `want`.
    async fn hop(
        &mut self,
        hop: &'static str,
        request: reqwest::RequestBuilder,
        want: StatusCode,
    ) -> Result<Response, LoginError> {
        self.sent += 1;
        let fail = |status, detail: String| LoginError {
            hop,
            status,
            detail,
            sent: self.sent,
        };
        let response = request
            .send()
            .await
            .map_err(|e| fail(None, e.to_string()))?;
        let status = response.status();
        if status == want {
            Ok(response)
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(fail(Some(status), format!("expected {want}; {body}")))
        }
    }

    /// The `Location` of `response`, which must start with `prefix`.
    fn location(
        &self,
        hop: &'static str,
        response: &Response,
        prefix: &str,
    ) -> Result<String, LoginError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if location.starts_with(prefix) {
            Ok(location.to_owned())
        } else {
            Err(LoginError {
                hop,
                status: Some(response.status()),
                detail: format!("Location {location:?} does not start with {prefix:?}"),
                sent: self.sent,
            })
        }
    }

    async fn authorize(
        &mut self,
        app: &str,
        fake: &str,
        decision: &str,
    ) -> Result<String, LoginError> {
        let login = self
            .hop(
                "GET /login",
                self.browser.get(format!("{app}/login")),
                StatusCode::SEE_OTHER,
            )
            .await?;
        let authorize = self.location("GET /login", &login, &format!("{fake}/authorize?"))?;
        self.hop(
            "GET the fake's consent page",
            self.browser.get(&authorize),
            StatusCode::OK,
        )
        .await?;
        let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
            .expect("an /authorize URL")
            .query_pairs()
            .into_owned()
            .collect();
        form.push(("decision".into(), decision.into()));
        let answer = self
            .hop(
                "POST the fake's consent",
                self.browser.post(format!("{fake}/authorize")).form(&form),
                StatusCode::FOUND,
            )
            .await?;
        self.location("POST the fake's consent", &answer, &format!("{app}/oauth?"))
    }
}

/// `GET /login` on the app at `app`, then the consent page of the fake at `fake` answered with
/// `decision`; returns the callback URL the fake sends the browser to (not yet visited).
pub async fn authorize(
    browser: &Client,
    app: &str,
    fake: &str,
    decision: &str,
) -> Result<String, LoginError> {
    Walk { browser, sent: 0 }
        .authorize(app, fake, decision)
        .await
}

/// The whole walk, accepting: through the callback to `/granted`, which must answer 200.
pub async fn log_in(browser: &Client, app: &str, fake: &str) -> Result<(), LoginError> {
    let mut walk = Walk { browser, sent: 0 };
    let callback = walk.authorize(app, fake, "accept").await?;
    walk.hop("GET /oauth", browser.get(&callback), StatusCode::SEE_OTHER)
        .await?;
    walk.hop(
        "GET /granted",
        browser.get(format!("{app}/granted")),
        StatusCode::OK,
    )
    .await?;
    debug_assert_eq!(walk.sent, LOGIN_REQUESTS);
    Ok(())
}
