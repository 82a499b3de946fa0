//! Abusive clients (issue 10, the small ones): DNS rebinding, header-less posts, the `__Host-`
//! cookie, and a login's state that stays used up when the code exchange fails.

use crate::helpers::{TestApp, location, text};
use fake_webex::{Counter, Endpoint, FakeConfig, Fault};
use reqwest::StatusCode;
use reqwest::header::{HOST, SET_COOKIE};

#[crate::support::test]
async fn a_host_we_do_not_serve_gets_a_400_page_but_healthz_answers_any_host() {
    let app = TestApp::spawn_with(FakeConfig::default(), |c| {
        c.allowed_hosts = vec!["app.example.com".into()]
    })
    .await;
    let client = reqwest::Client::new();
    let rebound = client
        .get(app.url("/"))
        .header(HOST, "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::BAD_REQUEST);
    assert!(text(rebound).await.contains("does not answer to that host"));
    for host in ["attacker.example", "localhost:1"] {
        let health = client
            .get(app.url("/healthz"))
            .header(HOST, host)
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    let listed = client
        .get(app.url("/"))
        .header(HOST, "app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK, "ALLOWED_HOSTS are served");
    assert_eq!(
        app.get("/").await.status(),
        StatusCode::OK,
        "the redirect URI's host is served"
    );
}

#[crate::support::test]
async fn a_post_without_browser_headers_passes_and_a_foreign_origin_does_not() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // curl-like: no Sec-Fetch-Site, no Origin, no cookie to abuse.
    let plain = client.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&plain), "/");
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let refused = client
            .post(app.url("/logout"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    let typed = client
        .post(app.url("/logout"))
        .header("sec-fetch-site", "none")
        .send()
        .await
        .unwrap();
    assert_eq!(
        typed.status(),
        StatusCode::SEE_OTHER,
        "a user-typed request passes"
    );
}

#[crate::support::test]
async fn over_https_the_session_cookie_has_the_host_prefix() {
    let app = TestApp::spawn_with(FakeConfig::default(), |c| {
        let https = c.redirect_uri.as_str().replacen("http://", "https://", 1);
        c.redirect_uri = https.parse().unwrap();
    })
    .await;
    let login = app.get("/login").await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("__Host-webex_oauth_session="),
        "{cookie}"
    );
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
}

#[crate::support::test]
async fn a_state_stays_used_up_when_the_code_exchange_fails() {
    let app = TestApp::spawn().await;
    let callback = app.authorize(&app.client, "accept").await;
    app.fake.inject(Endpoint::AccessToken, Fault::Status(500));
    let failed = app.client.get(&callback).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    let again = app.client.get(&callback).send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "the same callback works only once"
    );
    assert_eq!(app.fake.count(Counter::CodeExchanges), 1);
}

/// A client from `ip` (127.0.0.2, 127.0.0.3 … stand in for distinct clients).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[crate::support::test]
async fn sign_ins_are_rate_limited_per_client_address() {
    let app = TestApp::spawn_with(FakeConfig::default(), |c| c.rate_limit_per_minute = 5).await;
    let flooder = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            flooder
                .get(app.url("/login"))
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
    let refused = flooder.get(app.url("/login")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Refused at the edge, yet with its request id and the security headers.
    assert_eq!(refused.headers()["x-request-id"].len(), 36);
    assert!(refused.headers().contains_key("content-security-policy"));
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let page = text(refused).await;
    assert!(page.contains("Too many sign-ins"));
    // The page says the wait the header gives (both rounded up to whole seconds).
    let said = format!("possible in {wait} seconds");
    assert!(
        page.contains(&said),
        "the page and Retry-After disagree: {wait}"
    );
    let sign_in = flooder
        .post(app.url("/sign-in"))
        .form(&[("", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        sign_in.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "POST /sign-in shares the quota"
    );
    let before = app.fake.count(Counter::DeviceAuthorizations);
    assert_eq!(before, 0, "a refused sign-in never reached Webex");

    // Another client is not affected, and neither are other pages for the flooder.
    let other = client_from("127.0.0.3");
    assert_eq!(
        other.get(app.url("/login")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        flooder.get(app.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[crate::support::test]
async fn behind_a_proxy_the_last_hop_of_client_ip_header_is_the_client() {
    let app = TestApp::spawn_with(FakeConfig::default(), |c| {
        c.rate_limit_per_minute = 2;
        c.client_ip_header = Some(reqwest::header::HeaderName::from_static("x-forwarded-for"));
    })
    .await;
    // Every request comes from the proxy (127.0.0.1); the clients differ in the header.
    let proxy = client_from("127.0.0.1");
    let via = |client: &'static str| {
        proxy
            .get(app.url("/login"))
            .header("x-forwarded-for", format!("198.51.100.1, {client}"))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            via("203.0.113.5").await.unwrap().status(),
            StatusCode::SEE_OTHER
        );
    }
    assert_eq!(
        via("203.0.113.5").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        via("203.0.113.6").await.unwrap().status(),
        StatusCode::SEE_OTHER,
        "the forged first hop does not matter; the last one does"
    );
}

#[crate::support::test]
async fn ten_racing_sign_ins_on_one_cookie_leave_one_pending_flow() {
    let app = TestApp::spawn_with(crate::helpers::quick_device_fake(), |_| {}).await;
    // A saved session first (the cookie the ten requests share).
    app.start_device_flow_as(&app.client).await;
    let racing: Vec<_> = (0..10)
        .map(|_| {
            let (client, url, origin) = (app.client.clone(), app.url("/sign-in"), app.base.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("Origin", origin)
                    .form(&[("", "")])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for request in racing {
        assert_eq!(request.await.unwrap(), StatusCode::SEE_OTHER);
    }
    assert_eq!(
        app.probe.flow_count().await,
        1,
        "one pending flow per session"
    );
    assert_eq!(app.probe.active_pollers(), 1);
    let (status, body) = app.device_status_as(&app.client).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
}

#[crate::support::test]
async fn a_flow_whose_page_nobody_watches_stops_and_reads_as_expired() {
    let app = TestApp::spawn_with(crate::helpers::quick_device_fake(), |c| {
        c.abandoned_flow = std::time::Duration::from_secs(2)
    })
    .await;
    let user_code = app.start_device_flow_as(&app.client).await;
    crate::helpers::wait_for(
        "the abandoned flow's poller to stop",
        std::time::Duration::from_secs(15),
        || async { app.probe.active_pollers() == 0 },
    )
    .await;
    let polls = app.fake.device_polls(&user_code).len();
    let (_, body) = app.device_status_as(&app.client).await;
    assert_eq!(body["status"], "expired");
    assert_eq!(
        app.fake.device_polls(&user_code).len(),
        polls,
        "no poll after it stopped"
    );

    // A watched flow goes on past the same time.
    let watcher = crate::helpers::browser();
    app.start_device_flow_as(&watcher).await;
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        let (_, body) = app.device_status_as(&watcher).await;
        assert_eq!(body["status"], "pending");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(app.probe.active_pollers(), 1);
}

#[crate::support::test]
async fn two_tabs_seeing_the_grant_both_end_signed_in_and_no_cookie_is_deleted() {
    let app = TestApp::spawn_with(crate::helpers::quick_device_fake(), |_| {}).await;
    let user_code = app.start_device_flow_as(&app.client).await;
    assert!(app.fake.approve_device(&user_code));
    crate::helpers::wait_for("the grant", std::time::Duration::from_secs(15), || async {
        app.probe.active_pollers() == 0
    })
    .await;
    // Both tabs send the same (old) cookie at the same moment.
    let tabs: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/device/status"));
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                let deletes_cookie = response
                    .headers()
                    .get_all(SET_COOKIE)
                    .iter()
                    .any(|c| c.to_str().unwrap_or("").contains("Max-Age=0"));
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap();
                (
                    status,
                    body["status"].as_str().map(str::to_owned),
                    deletes_cookie,
                )
            })
        })
        .collect();
    for tab in tabs {
        let (status, said, deletes_cookie) = tab.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{said:?}");
        assert_eq!(said.as_deref(), Some("granted"));
        assert!(!deletes_cookie, "no response deletes the session cookie");
    }
    assert_eq!(
        app.get("/spaces").await.status(),
        StatusCode::OK,
        "signed in"
    );
}

#[crate::support::test]
async fn head_login_counts_against_the_rate_limit() {
    let app = TestApp::spawn_with(FakeConfig::default(), |c| c.rate_limit_per_minute = 3).await;
    let flooder = client_from("127.0.0.2");
    for _ in 0..3 {
        let response = flooder.head(app.url("/login")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let refused = flooder.head(app.url("/login")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        flooder
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "HEAD and GET share the quota"
    );
}

/// Sessions in the SQLite file at `db` (read-only, beside the server's own connection).
async fn sessions_in(db: &std::path::Path) -> i64 {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (count,): (i64,) = sqlx::query_as("select count(*) from sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

#[crate::support::test]
async fn a_head_request_sets_no_cookie_and_stores_no_session() {
    let db = crate::at_rest::temp_dir("head").join("sessions.db");
    let app = TestApp::spawn_with(FakeConfig::default(), |c| {
        c.session_store = webex_oauth_axum::StoreConfig::Sqlite(db.clone())
    })
    .await;
    let client = client_from("127.0.0.1");
    // No cookie, and a well-formed cookie naming no session.
    for cookie in [None, Some("webex_oauth_session=AAAAAAAAAAAAAAAAAAAAAA")] {
        for path in ["/login", "/", "/sign-in", "/device/status", "/spaces"] {
            let mut request = client.head(app.url(path));
            if let Some(cookie) = cookie {
                request = request.header(reqwest::header::COOKIE, cookie);
            }
            let response = request.send().await.unwrap();
            assert!(
                response.status().is_success()
                    || response.status().is_redirection()
                    || response.status() == StatusCode::NOT_FOUND,
                "HEAD {path}: {}",
                response.status()
            );
            assert!(
                !response.headers().contains_key(SET_COOKIE),
                "HEAD {path} ({cookie:?}) set a cookie: {:?}",
                response.headers().get(SET_COOKIE)
            );
        }
    }
    assert_eq!(sessions_in(&db).await, 0, "a HEAD stored a session");
    // The same GET does store one: the count above can see sessions.
    let login = client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert!(login.headers().contains_key(SET_COOKIE));
    assert_eq!(sessions_in(&db).await, 1);
}
