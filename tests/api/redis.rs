//! Two app instances on one real redis-server (feature `e2e`: needs `apt-get install redis-server`):
//! a login and a device flow span both, and a surviving instance takes over a dead one's polling.

use crate::helpers::{TestApp, quick_device_fake, text, wait_for};
use crate::support::{ChildGuard, free_port};
use reqwest::StatusCode;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::net::TcpListener;
use webex_oauth_axum::config::SessionStore;
use webex_oauth_axum::fake_webex::{Counter, FakeConfig};

/// redis-server on a free loopback port, without persistence; killed when dropped.
struct Redis {
    server: ChildGuard,
    url: String,
}

/// redis-server on `port`, on loopback, keeping nothing on disk; answering once this returns.
async fn spawn_redis(port: u16) -> ChildGuard {
    let mut command = Command::new("redis-server");
    command
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null());
    let server = ChildGuard::spawn("redis-server (apt-get install redis-server)", &mut command);
    server
        .wait_ready(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
    server
}

async fn redis() -> Redis {
    let port = free_port();
    Redis {
        server: spawn_redis(port).await,
        url: format!("redis://127.0.0.1:{port}"),
    }
}

/// A second instance beside `a`: same fake, same store, same browser.
async fn second_instance(a: &TestApp) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut b = TestApp::serve((*a.state.config).clone(), listener, a.fake.clone()).await;
    b.client = a.client.clone();
    b
}

#[crate::support::test]
async fn a_login_through_one_instance_works_through_the_other() {
    let redis = redis().await;
    let a = TestApp::spawn_with(FakeConfig::default(), |c| {
        c.session_store = SessionStore::Redis(redis.url.clone())
    })
    .await;
    let b = second_instance(&a).await;
    a.login().await;
    let spaces = b.get("/spaces").await;
    assert_eq!(spaces.status(), StatusCode::OK);
    assert!(text(spaces).await.contains("Design review"));
    // A refresh through either instance is seen by both.
    a.fake.expire_access_tokens();
    assert_eq!(b.get("/whoami").await.status(), StatusCode::OK);
    assert_eq!(a.get("/whoami").await.status(), StatusCode::OK);
    assert_eq!(a.fake.count(Counter::Refreshes), 1);
}

#[crate::support::test]
async fn concurrent_requests_on_two_instances_make_one_refresh() {
    let redis = redis().await;
    let fake = FakeConfig {
        access_token_ttl: Duration::from_secs(30),
        ..FakeConfig::default()
    };
    let a = TestApp::spawn_with(fake, |c| {
        c.session_store = SessionStore::Redis(redis.url.clone())
    })
    .await;
    let b = second_instance(&a).await;
    a.login().await;
    a.fake.set_access_token_ttl(Duration::from_secs(3600));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (client, url) = (
            a.client.clone(),
            if i % 2 == 0 {
                a.url("/whoami")
            } else {
                b.url("/whoami")
            },
        );
        requests.spawn(async move { client.get(url).send().await.unwrap().status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        a.fake.count(Counter::Refreshes),
        1,
        "one refresh across both instances"
    );
}

#[crate::support::test]
async fn a_device_flow_spans_instances_and_survives_the_death_of_its_poller() {
    let redis = redis().await;
    let a = TestApp::spawn_with(quick_device_fake(), |c| {
        c.session_store = SessionStore::Redis(redis.url.clone())
    })
    .await;
    let b = second_instance(&a).await;

    // Started through A, its status read through B.
    let user_code = a.start_device_flow_as(&a.client).await;
    let (status, json) = b.device_status_as(&b.client).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    wait_for("a first poll", Duration::from_secs(5), || async {
        !a.fake.device_polls(&user_code).is_empty()
    })
    .await;
    assert_eq!(
        (
            a.state.flows.active_pollers(),
            b.state.flows.active_pollers()
        ),
        (1, 0),
        "exactly one instance polls"
    );

    // A dies; B takes the flow over when A's lease lapses.
    let fake = a.fake.clone();
    a.stop().await;
    wait_for(
        "B to take the flow over",
        Duration::from_secs(20),
        || async { b.state.flows.active_pollers() == 1 },
    )
    .await;
    assert!(fake.approve_device(&user_code));
    b.wait_for_device_status_as(&b.client, "granted", Duration::from_secs(20))
        .await;
    assert!(text(b.get("/whoami").await).await.contains("Ada Lovelace"));

    let polls = fake.device_polls(&user_code);
    for pair in polls.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "an early poll across the handover"
        );
    }
}

#[crate::support::test]
async fn start_up_fails_with_one_line_when_redis_is_unreachable() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{closed}");
    let config =
        webex_oauth_axum::Config::from_lookup(|key| (key == "SESSION_STORE").then(|| url.clone()))
            .unwrap();
    let err = match webex_oauth_axum::App::with_listener(config, listener).await {
        Ok(_) => panic!("started without Redis"),
        Err(err) => err.to_string(),
    };
    assert!(err.starts_with("SESSION_STORE:"), "{err}");
}

#[crate::support::test]
async fn a_redis_outage_gives_503_pages_and_the_server_recovers() {
    let mut redis = redis().await;
    let app = TestApp::spawn_with(FakeConfig::default(), |c| {
        c.session_store = SessionStore::Redis(redis.url.clone())
    })
    .await;
    app.login().await;
    redis.server.kill();
    for path in ["/spaces", "/granted"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            text(response).await.contains("Sessions are unavailable"),
            "{path}"
        );
    }
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    // Redis comes back (empty: no persistence): the server serves again without a restart.
    let port = redis.url.rsplit(':').next().unwrap().to_owned();
    redis.server = spawn_redis(port.parse().unwrap()).await;
    wait_for(
        "the server to use Redis again",
        Duration::from_secs(20),
        || async { app.get("/spaces").await.status() == StatusCode::SEE_OTHER },
    )
    .await;
    app.login().await;
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
}
