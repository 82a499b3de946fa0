//! The environment contract (`WEBEX_*`, `LISTEN_ADDR`, `SESSION_STORE`), read and checked at start-up.

use crate::secret::Secret;
use std::net::SocketAddr;
use std::time::Duration;
use url::Url;

pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:10060/oauth";
pub const DEFAULT_SCOPES: &str = "spark:all";
pub const DEFAULT_DEVICE_SCOPES: &str = "meeting:recordings_read spark:all spark:kms";
pub const DEFAULT_API_BASE: &str = "https://webexapis.com/v1";
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:10060";
pub const DEFAULT_MAX_PENDING_DEVICE_FLOWS: usize = 10_000;

/// Live against real Webex, or demo on the embedded fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `WEBEX_CLIENT_ID` is unset: the embedded fake Webex plays Webex.
    Demo,
    /// Real credentials, real Webex (or whatever `WEBEX_API_BASE` points at).
    Live {
        client_id: String,
        client_secret: Secret,
    },
}

/// Where sessions and device flows live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process: lost on restart.
    Memory,
    /// A SQLite file (created, with its folder, mode 0600): survives restarts.
    Sqlite(std::path::PathBuf),
    /// `redis://HOST:PORT[/DB]`: shared by several instances.
    Redis(String),
}

pub const DEFAULT_SESSION_STORE: &str = "sqlite://data/sessions.db";

impl std::fmt::Display for StoreConfig {
    /// For the start-up log (a Redis URL may hold a password: only its host is shown).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory (lost on restart)"),
            Self::Sqlite(path) => write!(f, "SQLite file {}", path.display()),
            Self::Redis(url) => {
                let host = Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned));
                write!(f, "Redis at {}", host.unwrap_or_default())
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `WEBEX_CLIENT_ID` / `WEBEX_CLIENT_SECRET`.
    pub mode: Mode,
    /// `WEBEX_REDIRECT_URI`: where Webex sends the browser back with the code.
    pub redirect_uri: Url,
    /// `WEBEX_SCOPES`: scopes of the authorization-code flow.
    pub scopes: String,
    /// `WEBEX_DEVICE_SCOPES`: scopes of the device flow.
    pub device_scopes: String,
    /// `WEBEX_API_BASE`: every Webex URL derives from it (ignored in demo mode).
    pub api_base: Url,
    /// `LISTEN_ADDR`: the address to bind.
    pub listen_addr: SocketAddr,
    /// `SESSION_STORE`.
    pub session_store: StoreConfig,
    /// `MAX_PENDING_DEVICE_FLOWS`: past this many pending device sign-ins, new ones get a 503.
    pub max_pending_flows: usize,
    /// Webex HTTP timeouts (not in the environment contract; tests shorten them).
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

/// A configuration error: one line naming the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    pub key: &'static str,
    pub problem: String,
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads the process environment (after `.env`, which `main` loads when present).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let mode = match get("WEBEX_CLIENT_ID") {
            None => Mode::Demo,
            Some(client_id) => {
                let client_secret = get("WEBEX_CLIENT_SECRET").ok_or_else(|| {
                    invalid(
                        "WEBEX_CLIENT_SECRET",
                        "required when WEBEX_CLIENT_ID is set",
                    )
                })?;
                if client_id
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(invalid("WEBEX_CLIENT_ID", "must not contain spaces"));
                }
                Mode::Live {
                    client_id,
                    client_secret: Secret::new(client_secret),
                }
            }
        };

        let redirect_uri = http_url(
            "WEBEX_REDIRECT_URI",
            get("WEBEX_REDIRECT_URI").as_deref(),
            DEFAULT_REDIRECT_URI,
        )?;
        if redirect_uri.query().is_some() || redirect_uri.fragment().is_some() {
            return Err(invalid(
                "WEBEX_REDIRECT_URI",
                "must not have a query or a fragment",
            ));
        }
        let api_base = http_url(
            "WEBEX_API_BASE",
            get("WEBEX_API_BASE").as_deref(),
            DEFAULT_API_BASE,
        )?;

        let scopes = scope_list("WEBEX_SCOPES", get("WEBEX_SCOPES"), DEFAULT_SCOPES)?;
        let device_scopes = scope_list(
            "WEBEX_DEVICE_SCOPES",
            get("WEBEX_DEVICE_SCOPES"),
            DEFAULT_DEVICE_SCOPES,
        )?;

        let listen = get("LISTEN_ADDR").unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned());
        let listen_addr = listen.parse().map_err(|_| {
            invalid(
                "LISTEN_ADDR",
                format!("{listen:?} is not an address like 127.0.0.1:10060"),
            )
        })?;

        let store = get("SESSION_STORE").unwrap_or_else(|| DEFAULT_SESSION_STORE.to_owned());
        let session_store = match store.as_str() {
            "memory" => StoreConfig::Memory,
            redis if redis.starts_with("redis://") => {
                let url = Url::parse(redis).map_err(|e| {
                    invalid("SESSION_STORE", format!("{redis:?} is not a URL ({e})"))
                })?;
                if url.host().is_none() {
                    return Err(invalid("SESSION_STORE", format!("{redis:?} has no host")));
                }
                StoreConfig::Redis(redis.to_owned())
            }
            other => match other.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => StoreConfig::Sqlite(path.into()),
                _ => {
                    return Err(invalid(
                        "SESSION_STORE",
                        format!(
                            "{other:?} is not supported; use memory, sqlite://PATH or redis://HOST:PORT[/DB]"
                        ),
                    ));
                }
            },
        };

        let max_pending_flows = match get("MAX_PENDING_DEVICE_FLOWS") {
            None => DEFAULT_MAX_PENDING_DEVICE_FLOWS,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    invalid(
                        "MAX_PENDING_DEVICE_FLOWS",
                        format!("{raw:?} is not a positive whole number"),
                    )
                })?,
        };

        Ok(Self {
            mode,
            redirect_uri,
            scopes,
            device_scopes,
            api_base,
            listen_addr,
            session_store,
            max_pending_flows,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        })
    }

    pub fn is_demo(&self) -> bool {
        self.mode == Mode::Demo
    }

    /// Cookies get `Secure` when the app is served over https (judged from the redirect URI).
    pub fn secure_cookies(&self) -> bool {
        self.redirect_uri.scheme() == "https"
    }

    /// The URL to open in a browser: the redirect URI's origin, so the session cookie set on
    /// the landing page comes back on the OAuth callback.
    pub fn public_origin(&self) -> String {
        self.redirect_uri.origin().ascii_serialization()
    }
}

fn http_url(key: &'static str, value: Option<&str>, default: &str) -> Result<Url, ConfigError> {
    let raw = value.unwrap_or(default);
    let url = Url::parse(raw).map_err(|e| invalid(key, format!("{raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            key,
            format!("{raw:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(key, "must not carry a user name or password"));
    }
    Ok(url)
}

fn scope_list(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let raw = value.unwrap_or_else(|| default.to_owned());
    let scopes: Vec<&str> = raw.split_whitespace().collect();
    if let Some(bad) = scopes.iter().find(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        return Err(invalid(key, format!("{bad:?} is not a valid scope")));
    }
    Ok(scopes.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_give_demo_mode_on_localhost_10060() {
        let c = config(&[]).unwrap();
        assert!(c.is_demo());
        assert_eq!(c.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
        assert_eq!(c.scopes, "spark:all");
        assert_eq!(
            c.device_scopes,
            "meeting:recordings_read spark:all spark:kms"
        );
        assert_eq!(c.api_base.as_str(), DEFAULT_API_BASE);
        assert_eq!(c.listen_addr.to_string(), DEFAULT_LISTEN_ADDR);
        assert_eq!(
            c.session_store,
            StoreConfig::Sqlite("data/sessions.db".into())
        );
        assert_eq!(c.max_pending_flows, 10_000);
        assert!(!c.secure_cookies());
        assert_eq!(c.public_origin(), "http://localhost:10060");
    }

    #[test]
    fn live_mode_needs_the_secret() {
        let err = config(&[("WEBEX_CLIENT_ID", "Cabc")]).unwrap_err();
        assert_eq!(err.key, "WEBEX_CLIENT_SECRET");
        let c = config(&[
            ("WEBEX_CLIENT_ID", "Cabc"),
            ("WEBEX_CLIENT_SECRET", "s3cret"),
        ])
        .unwrap();
        assert!(matches!(&c.mode, Mode::Live { client_id, .. } if client_id == "Cabc"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bad_values_name_their_key() {
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
            ("WEBEX_SCOPES", "spark:all \"x"),
            ("MAX_PENDING_DEVICE_FLOWS", "0"),
            ("MAX_PENDING_DEVICE_FLOWS", "lots"),
        ] {
            let err = config(&[(key, value)]).unwrap_err();
            assert_eq!(err.key, key, "{value}");
            assert!(err.to_string().starts_with(key));
        }
    }

    #[test]
    fn empty_values_count_as_unset_and_scopes_are_normalised() {
        let c = config(&[
            ("WEBEX_CLIENT_ID", "  "),
            ("WEBEX_SCOPES", "  spark:all   spark:kms "),
        ])
        .unwrap();
        assert!(c.is_demo());
        assert_eq!(c.scopes, "spark:all spark:kms");
        let c = config(&[("WEBEX_REDIRECT_URI", "https://app.example.com/oauth")]).unwrap();
        assert!(c.secure_cookies());
        let c = config(&[("SESSION_STORE", "memory")]).unwrap();
        assert_eq!(c.session_store, StoreConfig::Memory);
        let c = config(&[("SESSION_STORE", "sqlite:///var/lib/app/s.db")]).unwrap();
        assert_eq!(
            c.session_store,
            StoreConfig::Sqlite("/var/lib/app/s.db".into())
        );
        let c = config(&[("SESSION_STORE", "redis://127.0.0.1:6379/2")]).unwrap();
        assert_eq!(
            c.session_store,
            StoreConfig::Redis("redis://127.0.0.1:6379/2".into())
        );
        let c = config(&[("SESSION_STORE", "redis://:hunter2@cache.internal:6379/0")]).unwrap();
        assert_eq!(c.session_store.to_string(), "Redis at cache.internal");
    }
}
