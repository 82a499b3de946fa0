//! Two app instances on one real redis-server (feature `e2e`: needs `apt-get install redis-server`):
//! a login and a device flow span both, and a surviving instance takes over a dead one's polling.

use crate::helpers::{TestApp, quick_device_fake, text, wait_for};
use crate::support::{ChildGuard, free_port};
use fake_webex::{Counter, FakeConfig};
use reqwest::StatusCode;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::net::TcpListener;
use webex_oauth_axum::StoreConfig;

/// redis-server on a free loopback port, without persistence; killed when dropped.
pub struct Redis {
    pub server: ChildGuard,
    pub url: String,
}

/// redis-server on `port`, on loopback, keeping nothing on disk (not yet answering).
fn start_redis(port: u16) -> ChildGuard {
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
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    ChildGuard::spawn("redis-server (apt-get install redis-server)", &mut command)
}

/// redis-server on `port`, answering `PING` once this returns (a restart on a known port).
async fn spawn_redis(port: u16) -> ChildGuard {
    let server = start_redis(port);
    server
        .wait_ready(Duration::from_secs(10), Duration::from_millis(50), || {
            answers_ping(port)
        })
        .await;
    server
}

/// Something on `port` answers `PING` with `+PONG`: Redis itself, not whatever else took the
/// port between `free_port` and redis-server's bind.
async fn answers_ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut answer = [0u8; 7];
    let exchange = async {
        stream.write_all(b"PING\r\n").await?;
        stream.read_exact(&mut answer).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(_))
    ) && &answer == b"+PONG\r\n"
}

/// Waits (10 s at most) until `server` accepts connections on `port`.
async fn listening(server: &ChildGuard, port: u16) {
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
}

/// A fresh redis-server on a free port. A port another test takes between `free_port` and the
/// bind makes redis-server exit: then another port (5 tries).
pub async fn redis() -> Redis {
    for _ in 0..5 {
        let port = free_port();
        let server = start_redis(port);
        // Polled with a deadline: up (it answers), failed (it exited), or still starting.
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut up = None;
        while up.is_none() && tokio::time::Instant::now() < until {
            if answers_ping(port).await {
                up = Some(true);
            } else if server.has_exited() {
                up = Some(false);
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if up == Some(true) {
            return Redis {
                server,
                url: format!("redis://127.0.0.1:{port}"),
            };
        }
    }
    panic!("redis-server did not start on any of 5 free ports");
}

/// A second instance beside `a`: same fake, same store, same browser.
async fn second_instance(a: &TestApp) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut b = TestApp::serve(a.probe.config().clone(), listener, a.fake.clone()).await;
    b.client = a.client.clone();
    b
}

/// Every instance sharing a Redis must share its encryption key.
const TEST_KEY_BASE64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// A Redis client of the test's own, connected to `url`, to read or tamper with the store.
pub async fn client_of(url: &str) -> fred::prelude::Client {
    use fred::prelude::ClientLike;
    let client = fred::prelude::Client::new(
        fred::prelude::Config::from_url(url).unwrap(),
        None,
        None,
        None,
    );
    client.init().await.unwrap();
    client
}

pub fn use_redis(config: &mut webex_oauth_axum::Config, url: &str) {
    config.session_store = StoreConfig::Redis(url.to_owned());
    config.encryption_keys = vec![webex_oauth_axum::config::EncryptionKey([7; 32])];
}

#[crate::support::test]
async fn a_login_through_one_instance_works_through_the_other() {
    let redis = redis().await;
    let a = TestApp::spawn_with(FakeConfig::default(), |c| use_redis(c, &redis.url)).await;
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
    let a = TestApp::spawn_with(fake, |c| use_redis(c, &redis.url)).await;
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
    let a = TestApp::spawn_with(quick_device_fake(), |c| use_redis(c, &redis.url)).await;
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
        (a.probe.active_pollers(), b.probe.active_pollers()),
        (1, 0),
        "exactly one instance polls"
    );

    // A dies; B takes the flow over when A's lease lapses.
    let fake = a.fake.clone();
    a.stop().await;
    wait_for(
        "B to take the flow over",
        Duration::from_secs(20),
        || async { b.probe.active_pollers() == 1 },
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
    let _ = crate::helpers::captured_logs(); // capture from here on
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // A password in the URL must not reach the message (nor any log line).
    let url = format!("redis://:hunter2-secret@{closed}");
    let config = webex_oauth_axum::Config::from_lookup(|key| match key {
        "SESSION_STORE" => Some(url.clone()),
        "ENCRYPTION_KEYS" => Some(TEST_KEY_BASE64.to_owned()),
        _ => None,
    })
    .unwrap();
    let err = match webex_oauth_axum::App::with_listener(config, listener).await {
        Ok(_) => panic!("started without Redis"),
        Err(err) => err.to_string(),
    };
    assert!(err.starts_with("SESSION_STORE:"), "{err}");
    assert!(!err.contains("hunter2-secret"), "{err}");
    assert!(
        !crate::helpers::captured_logs().contains("hunter2-secret"),
        "the password reached a log line"
    );
}

#[crate::support::test]
async fn a_redis_outage_gives_503_pages_and_the_server_recovers() {
    let mut redis = redis().await;
    let app = TestApp::spawn_with(FakeConfig::default(), |c| use_redis(c, &redis.url)).await;
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
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready without Redis"
    );

    // Redis comes back (empty: no persistence): the server serves again without a restart.
    let port = redis.url.rsplit(':').next().unwrap().to_owned();
    redis.server = spawn_redis(port.parse().unwrap()).await;
    wait_for(
        "the server to use Redis again",
        Duration::from_secs(20),
        || async { app.get("/spaces").await.status() == StatusCode::SEE_OTHER },
    )
    .await;
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::OK,
        "ready again"
    );
    app.login().await;
    assert_eq!(app.get("/spaces").await.status(), StatusCode::OK);
}

#[crate::support::test]
async fn sign_out_is_final_with_the_redis_store() {
    let redis = redis().await;
    let url = redis.url.clone();
    crate::sign_out::sign_out_and_cycled_ids_stay_dead(move |c: &mut webex_oauth_axum::Config| {
        use_redis(c, &url)
    })
    .await;
}

#[crate::support::test]
async fn redis_holds_no_token_device_code_or_cookie_value() {
    use fred::prelude::{ClientLike, KeysInterface, SetsInterface};
    let redis = redis().await;
    let app = TestApp::spawn_with(crate::helpers::quick_device_fake(), |c| {
        use_redis(c, &redis.url)
    })
    .await;
    let (a, jar_a) = crate::sign_out::browser_with_jar();
    let mut cookies = Vec::new();
    a.get(app.url("/login")).send().await.unwrap();
    cookies.push(crate::sign_out::cookie_of(&app, &jar_a));
    app.login_as(&a).await;
    cookies.push(crate::sign_out::cookie_of(&app, &jar_a));
    let (b, jar_b) = crate::sign_out::browser_with_jar();
    let user_code = app.start_device_flow_as(&b).await;
    cookies.push(crate::sign_out::cookie_of(&app, &jar_b));
    // Read the store while the flow is pending (its record holds the device code).
    let client = client_of(&redis.url).await;
    let mut dump = Vec::new();
    let mut read_all = async || {
        let keys: Vec<String> = client.custom(fred::cmd!("KEYS"), vec!["*"]).await.unwrap();
        for key in keys {
            dump.extend_from_slice(key.as_bytes());
            let kind: String = client.r#type(&key).await.unwrap();
            if kind == "set" {
                let members: Vec<String> = client.smembers(&key).await.unwrap();
                dump.extend(members.concat().into_bytes());
            } else if kind == "string" {
                let value: Vec<u8> = client.get(&key).await.unwrap();
                dump.extend(value);
            }
        }
    };
    read_all().await;
    assert!(app.fake.approve_device(&user_code));
    app.wait_for_device_status_as(&b, "granted", Duration::from_secs(15))
        .await;
    cookies.push(crate::sign_out::cookie_of(&app, &jar_b));
    app.fake.expire_access_tokens();
    assert_eq!(
        a.get(app.url("/spaces")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.post_as(&a, "/logout").await.status(),
        StatusCode::SEE_OTHER
    );
    read_all().await;
    assert!(!dump.is_empty());
    crate::at_rest::assert_holds_no_secret("Redis", &dump, &app, &cookies);
}

#[crate::support::test]
async fn a_stopped_instance_releases_only_its_own_leases() {
    use fred::prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface, SetsInterface};
    let redis = redis().await;
    let store = Builder::from_config(RedisConfig::from_url(&redis.url).unwrap())
        .build()
        .unwrap();
    store.init().await.unwrap();
    let a = TestApp::spawn_with(quick_device_fake(), |c| use_redis(c, &redis.url)).await;
    let user_code = a.start_device_flow_as(&a.client).await;
    // Another instance's pending flow and its live lease.
    let _: () = store
        .set(
            "webex-oauth:flow-lease:someone-elses",
            "another-instance",
            None,
            None,
            false,
        )
        .await
        .unwrap();
    let _: () = store
        .sadd("webex-oauth:flows:pending", "someone-elses")
        .await
        .unwrap();
    let (config, fake, client) = (a.probe.config().clone(), a.fake.clone(), a.client.clone());

    a.stop().await;
    let pending: Vec<String> = store.smembers("webex-oauth:flows:pending").await.unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    for id in &pending {
        let holder: Option<String> = store
            .get(format!("webex-oauth:flow-lease:{id}"))
            .await
            .unwrap();
        if id == "someone-elses" {
            assert_eq!(holder.as_deref(), Some("another-instance"), "left alone");
        } else {
            assert_eq!(holder, None, "the stopped instance's lease is gone");
        }
    }

    // A new instance adopts the flow on its first housekeeping round, not after the lease.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut b = TestApp::serve(config, listener, fake).await;
    b.client = client;
    wait_for("B to adopt the flow", Duration::from_secs(5), || async {
        b.probe.active_pollers() == 1
    })
    .await;
    assert!(b.fake.approve_device(&user_code));
    b.wait_for_device_status_as(&b.client, "granted", Duration::from_secs(20))
        .await;
    b.stop().await;
}

#[crate::support::test]
async fn rediss_reaches_a_redis_that_speaks_only_tls() {
    let dir = crate::at_rest::temp_dir("rediss");
    std::fs::create_dir_all(&dir).unwrap();
    // A test CA and a leaf for 127.0.0.1 signed by it (webpki refuses a CA certificate used
    // as the server's own, which is what a bare `openssl req -x509` makes).
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl makes the test certificates");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "cert.pem",
        "-extfile",
        "ext.cnf",
    ]);
    let tls_port = free_port();
    let mut command = Command::new("redis-server");
    command
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--tls-port",
            &tls_port.to_string(),
            "--tls-auth-clients",
            "no",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&ca)
        .stdout(Stdio::null());
    let redis = ChildGuard::spawn("redis-server with TLS", &mut command);
    listening(&redis, tls_port).await;

    // The server binary, trusting the test CA (rustls-native-certs reads SSL_CERT_FILE).
    let port = free_port();
    let fake = fake_webex::FakeWebex::spawn(FakeConfig {
        redirect_uris: vec![format!("http://127.0.0.1:{port}/oauth")],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut server = crate::support::server::command(&fake, port);
    server
        .current_dir(&dir)
        .env("SESSION_STORE", format!("rediss://127.0.0.1:{tls_port}"))
        .env("ENCRYPTION_KEYS", TEST_KEY_BASE64)
        .env("SSL_CERT_FILE", &ca);
    let _server = crate::support::server::start(server, port, Duration::from_millis(50)).await;
    let app = format!("http://127.0.0.1:{port}");
    let browser = crate::helpers::browser();
    crate::support::login::log_in(&browser, &app, &fake.base_url())
        .await
        .unwrap();
    let spaces = browser.get(format!("{app}/spaces")).send().await.unwrap();
    assert_eq!(
        spaces.status(),
        StatusCode::OK,
        "sessions live in the TLS Redis"
    );
    let ready = browser.get(format!("{app}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}
