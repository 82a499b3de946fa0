//! Unit tests of the environment contract: defaults, every bad value naming its key.

use super::*;
use std::collections::HashMap;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    Config::from_lookup(|k| map.get(k).map(|v| v.to_string()))
}

/// The key a single bad `key=value` is reported under.
fn refused(key: &str, value: &str) -> ConfigError {
    let err = config(&[(key, value)]).unwrap_err();
    assert_eq!(err.key, key, "{value}");
    err
}

#[test]
fn defaults_give_demo_mode_on_localhost_10060() {
    let c = config(&[]).unwrap();
    assert!(c.is_demo());
    assert_eq!(c.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
    assert_eq!(c.scopes, "openid email profile spark:all");
    let device_scopes = "openid email profile meeting:recordings_read spark:all spark:kms";
    assert_eq!(c.device_scopes, device_scopes);
    assert!(c.oidc_issuers.is_empty());
    assert_eq!(c.api_base.as_str(), "https://webexapis.com/v1");
    assert_eq!(c.listen_addr.to_string(), DEFAULT_LISTEN_ADDR);
    let sqlite = StoreConfig::Sqlite("data/sessions.db".into());
    assert_eq!(c.session_store, sqlite);
    assert_eq!(c.max_pending_flows, 10_000);
    assert_eq!(c.max_pending_flows_per_client, 5);
    assert_eq!(c.max_connections, 10_000);
    assert_eq!(c.max_connections_per_client, 64);
    assert_eq!(c.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.abandoned_flow, Duration::from_secs(60));
    assert_eq!(c.rate_limit_per_minute, 20);
    assert!(c.client_ip_header.is_none() && c.allowed_hosts.is_empty());
    assert!(c.encryption_keys.is_empty());
    assert!(!c.secure_cookies());
    assert_eq!(c.public_origin(), "http://localhost:10060");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.log_filter, DEFAULT_LOG_FILTER);
    assert_eq!(c.metrics_addr, None);
}

#[test]
fn live_mode_needs_the_secret() {
    let err = config(&[("WEBEX_CLIENT_ID", "Cabc")]).unwrap_err();
    assert_eq!(err.key, "WEBEX_CLIENT_SECRET");
    let live = [
        ("WEBEX_CLIENT_ID", "Cabc"),
        ("WEBEX_CLIENT_SECRET", "s3cret"),
    ];
    let c = config(&live).unwrap();
    assert!(matches!(&c.mode, Mode::Live { client_id, .. } if client_id == "Cabc"));
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn bad_values_name_their_key_and_a_store_url_is_never_shown() {
    for (key, value) in [
        ("WEBEX_REDIRECT_URI", "not a url"),
        ("WEBEX_REDIRECT_URI", "ftp://host/oauth"),
        ("WEBEX_REDIRECT_URI", "http://localhost:10060/oauth?x=1"),
        ("WEBEX_API_BASE", "webexapis.com/v1"),
        ("WEBEX_API_BASE", "https://user:pw@webexapis.com/v1"),
        ("LISTEN_ADDR", "localhost"),
        ("SESSION_STORE", "postgres://x"),
        ("SESSION_STORE", "sqlite://"),
        ("SESSION_STORE", "redis://"),
        // A store URL may hold a password: its message never shows it.
        ("SESSION_STORE", "redis://user:hunter2@[bad"),
        ("SESSION_STORE", "rediss://:hunter2@"),
        ("SESSION_STORE", "redis://user:hunter2@host:port"),
        ("SESSION_STORE", "redis:user:hunter2@cache.internal:6379"),
        ("SESSION_STORE", "postgres://user:hunter2@db.internal/x"),
        ("WEBEX_SCOPES", "spark:all \"x"),
        ("MAX_PENDING_DEVICE_FLOWS", "0"),
        ("MAX_PENDING_DEVICE_FLOWS", "lots"),
        ("MAX_PENDING_FLOWS_PER_CLIENT", "0"),
        ("HEADER_READ_TIMEOUT_SECS", "0"),
        ("MAX_CONNECTIONS", "-1"),
        ("MAX_CONNECTIONS_PER_CLIENT", "0"),
        ("MAX_CONNECTIONS_PER_CLIENT", "lots"),
        ("RATE_LIMIT_PER_MINUTE", "many"),
        ("ABANDONED_FLOW_SECS", "1.5"),
        ("CLIENT_IP_HEADER", "not a header"),
        ("ENCRYPTION_KEYS", "c2hvcnQ="),
        ("PORT", "http"),
        ("PORT", "70000"),
        ("METRICS_ADDR", "9100"),
        ("LOG_FORMAT", "yaml"),
        ("RUST_LOG", "webex_oauth_axum=loud"),
        ("WEBEX_OIDC_ISSUERS", "idbroker.webex.com/idb"),
        ("WEBEX_OIDC_ISSUERS", "ftp://x/idb"),
        ("WEBEX_OIDC_ISSUERS", "https://u:p@x/idb"),
        ("WEBEX_OIDC_ISSUERS", "https://x/idb?q=1"),
        ("WEBEX_OIDC_ISSUERS", "https://x/idb#f"),
    ] {
        let err = refused(key, value).to_string();
        assert!(err.starts_with(key) && !err.contains("hunter2"), "{err}");
    }
}

#[test]
fn set_values_are_read_and_empty_ones_count_as_unset() {
    let c = config(&[
        ("WEBEX_CLIENT_ID", "  "),
        ("WEBEX_SCOPES", "  spark:all   spark:kms "),
    ])
    .unwrap();
    assert!(c.is_demo());
    assert_eq!(c.scopes, "spark:all spark:kms");
    let c = config(&[("WEBEX_REDIRECT_URI", "https://app.example.com/oauth")]).unwrap();
    assert!(c.secure_cookies());
    let redis = "redis://127.0.0.1:6379/2";
    let rediss = "rediss://:hunter2@cache.internal:6379/0";
    let err = config(&[("SESSION_STORE", redis)]).unwrap_err();
    assert_eq!(err.key, "ENCRYPTION_KEYS", "Redis needs a shared key");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let sqlite = StoreConfig::Sqlite("/var/lib/app/s.db".into());
    for (store, expected) in [
        ("memory", StoreConfig::Memory),
        ("sqlite:///var/lib/app/s.db", sqlite),
        (redis, StoreConfig::Redis(redis.into())),
        (rediss, StoreConfig::Redis(rediss.into())),
    ] {
        let c = config(&[("SESSION_STORE", store), ("ENCRYPTION_KEYS", key)]).unwrap();
        assert_eq!(c.session_store, expected);
    }
    let shown = StoreConfig::Redis(rediss.into()).to_string();
    assert_eq!(shown, "Redis at cache.internal");
    let c = config(&[
        ("ENCRYPTION_KEYS", &format!("{key}, {key}")),
        ("ALLOWED_HOSTS", "App.Example.com, ,10.0.0.5:10060"),
        ("CLIENT_IP_HEADER", "X-Forwarded-For"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("METRICS_ADDR", "127.0.0.1:9100"),
    ])
    .unwrap();
    assert_eq!(c.encryption_keys.len(), 2);
    assert_eq!(c.encryption_keys[0].0[31], 31);
    assert!(!format!("{c:?}").contains(key));
    assert_eq!(c.allowed_hosts, ["app.example.com", "10.0.0.5:10060"]);
    assert_eq!(c.client_ip_header.unwrap().as_str(), "x-forwarded-for");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
}

#[test]
fn the_default_redirect_uri_follows_the_listen_port_and_port() {
    let c = config(&[("LISTEN_ADDR", "127.0.0.1:18090")]).unwrap();
    assert_eq!(c.redirect_uri.as_str(), "http://localhost:18090/oauth");
    assert_eq!(c.public_origin(), "http://localhost:18090");
    let mut c = config(&[("PORT", "8080")]).unwrap();
    assert_eq!(c.listen_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(c.redirect_uri.as_str(), "http://localhost:8080/oauth");
    c.bound_to("127.0.0.1:41234".parse().unwrap());
    assert_eq!(c.redirect_uri.as_str(), "http://localhost:41234/oauth");
    // LISTEN_ADDR wins over PORT; an explicit redirect URI never moves.
    let c = config(&[("PORT", "8080"), ("LISTEN_ADDR", "127.0.0.1:9000")]).unwrap();
    assert_eq!(c.listen_addr.to_string(), "127.0.0.1:9000");
    let mut c = config(&[
        ("LISTEN_ADDR", "127.0.0.1:9000"),
        ("WEBEX_REDIRECT_URI", "https://app.example.com/oauth"),
    ])
    .unwrap();
    c.bound_to("127.0.0.1:41234".parse().unwrap());
    assert_eq!(c.redirect_uri.as_str(), "https://app.example.com/oauth");
    assert_eq!(c.listen_addr.port(), 41234);
}

#[test]
fn oidc_issuers_are_a_list_of_urls_kept_exactly_and_own_scopes_are_sent_as_given() {
    let (a, b) = (
        "https://login.example.com/idb",
        "https://idbroker-x.example/idb",
    );
    let c = config(&[
        ("WEBEX_OIDC_ISSUERS", &format!(" {a} , ,{b}")),
        ("WEBEX_SCOPES", "spark:all"),
        ("WEBEX_DEVICE_SCOPES", "spark:all openid"),
    ])
    .unwrap();
    assert_eq!(c.oidc_issuers, [a, b]);
    // No openid added to an operator's scopes, none removed.
    assert_eq!(c.scopes, "spark:all");
    assert_eq!(c.device_scopes, "spark:all openid");
}

#[test]
fn an_oidc_issuer_that_is_not_https_stops_start_up_with_a_clear_error() {
    for listed in [
        "http://idbroker-b-us.webex.com/idb",
        "https://login.example.com/idb, http://127.0.0.1:9/idb",
        "HTTP://login.example.com/idb",
    ] {
        let problem = refused("WEBEX_OIDC_ISSUERS", listed).problem;
        assert!(problem.contains("is not https"), "{listed}: {problem}");
        assert!(problem.contains("http://") || problem.contains("HTTP://"));
    }
}
