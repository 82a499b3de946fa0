//! The environment contract (`WEBEX_*`, `LISTEN_ADDR`, `PORT`, `SESSION_STORE`, …), read and checked
//! at start-up; [`crate::cli`] lists the same keys for `--help`.

use crate::secret::Secret;
use std::net::SocketAddr;
use std::time::Duration;
use url::Url;

/// The redirect URI when `WEBEX_REDIRECT_URI` is unset: its port follows the listen port.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:10060/oauth";
/// With `openid`, a flow also proves who signed in (Login with Webex, `crate::identity`).
pub const DEFAULT_SCOPES: &str = "openid email profile spark:all";
pub const DEFAULT_DEVICE_SCOPES: &str =
    "openid email profile meeting:recordings_read spark:all spark:kms";
pub const DEFAULT_API_BASE: &str = "https://webexapis.com/v1";
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:10060";
pub const DEFAULT_LOG_FILTER: &str = "webex_oauth_axum=info,warn";

/// `LOG_FORMAT`: how log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line an event (plain text, never coloured).
    Text,
    /// One JSON object a line, with the fields of every enclosing span (for log collectors).
    Json,
}

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
    /// `redis://HOST:PORT[/DB]` (or `rediss://` for TLS): shared by several instances.
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
    /// True when `WEBEX_REDIRECT_URI` is unset: the redirect URI is `http://localhost:PORT/oauth`
    /// with the port the app is actually bound to (`App::with_listener` sets it).
    pub redirect_uri_follows_port: bool,
    /// `WEBEX_SCOPES`: scopes of the authorization-code flow.
    pub scopes: String,
    /// `WEBEX_DEVICE_SCOPES`: scopes of the device flow.
    pub device_scopes: String,
    /// `WEBEX_API_BASE`: every Webex URL derives from it (ignored in demo mode).
    pub api_base: Url,
    /// `WEBEX_OIDC_ISSUERS` (comma-separated URLs): id_token issuers accepted besides the
    /// discovery issuer and Webex's idbroker hosts (`identity::issuer`), each exactly as written.
    pub oidc_issuers: Vec<String>,
    /// `LISTEN_ADDR`: the address to bind; unset, `0.0.0.0:$PORT` when `PORT` is set (hosting
    /// platforms route outside traffic to that port on every interface), else `127.0.0.1:10060`.
    /// `App::with_listener` replaces it with the address actually bound.
    pub listen_addr: SocketAddr,
    /// `SESSION_STORE`.
    pub session_store: StoreConfig,
    /// `MAX_PENDING_DEVICE_FLOWS`: past this many pending device sign-ins, new ones get a 503.
    pub max_pending_flows: usize,
    /// `MAX_PENDING_FLOWS_PER_CLIENT` (5): pending device sign-ins one client address (an IPv6
    /// one by its /64) may have on this instance; past it, Sign-In gets a 429 page.
    pub max_pending_flows_per_client: usize,
    /// `HEADER_READ_TIMEOUT_SECS` (10): a client must send its request headers within this.
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS` (10,000): connections served at once; the rest wait in the backlog.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_CLIENT` (64): connections one peer address (an IPv6 one by its /64)
    /// may hold open; more are closed at once. Not applied with `CLIENT_IP_HEADER` (the peer
    /// is then your proxy).
    pub max_connections_per_client: usize,
    /// `RATE_LIMIT_PER_MINUTE` (20): `POST /sign-in` and `GET` (or `HEAD`) `/login` per client address, with a
    /// burst of that size.
    pub rate_limit_per_minute: u32,
    /// `CLIENT_IP_HEADER` (unset): the header whose last hop is the client address (behind your
    /// proxy, e.g. `X-Forwarded-For`); unset, the peer address is the client.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// `ABANDONED_FLOW_SECS` (60): a device flow whose page nobody watched for this long stops.
    pub abandoned_flow: Duration,
    /// `ALLOWED_HOSTS` (comma-separated): `Host` values accepted besides the redirect URI's
    /// authority and the listen address.
    pub allowed_hosts: Vec<String>,
    /// `ENCRYPTION_KEYS` (comma-separated base64 of 32 bytes each): the first encrypts tokens in
    /// the store, all decrypt. Empty: see `store::open` for what each backend does.
    pub encryption_keys: Vec<EncryptionKey>,
    /// `METRICS_ADDR` (unset: no metrics): where Prometheus scrapes `/metrics`, a listener of its
    /// own, never the public one.
    pub metrics_addr: Option<SocketAddr>,
    /// `LOG_FORMAT` (`text`): `text` or `json`.
    pub log_format: LogFormat,
    /// `RUST_LOG`: the log filter (tracing's `EnvFilter` syntax), checked here.
    pub log_filter: String,
    /// Webex HTTP timeouts (not in the environment contract; tests shorten them).
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// A request still unanswered after this gets the 504 page (30 s; not in the environment
    /// contract; tests shorten it).
    pub handler_timeout: Duration,
}

pub use crate::crypto::EncryptionKey;

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

        let listen_addr = listen_addr(&get)?;
        let redirect_uri_follows_port = get("WEBEX_REDIRECT_URI").is_none();
        let mut redirect_uri = http_url(
            "WEBEX_REDIRECT_URI",
            get("WEBEX_REDIRECT_URI").as_deref(),
            DEFAULT_REDIRECT_URI,
        )?;
        if redirect_uri_follows_port {
            follow_port(&mut redirect_uri, listen_addr.port());
        }
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

        let oidc_issuers = oidc::issuers(get("WEBEX_OIDC_ISSUERS"))?;
        let scopes = scope_list("WEBEX_SCOPES", get("WEBEX_SCOPES"), DEFAULT_SCOPES)?;
        let device_scopes = scope_list(
            "WEBEX_DEVICE_SCOPES",
            get("WEBEX_DEVICE_SCOPES"),
            DEFAULT_DEVICE_SCOPES,
        )?;

        let store = get("SESSION_STORE").unwrap_or_else(|| DEFAULT_SESSION_STORE.to_owned());
        let session_store = match store.as_str() {
            "memory" => StoreConfig::Memory,
            // A store URL may carry a password: no message below shows the value itself.
            redis if redis.starts_with("redis://") || redis.starts_with("rediss://") => {
                let url = Url::parse(redis).map_err(|e| {
                    invalid(
                        "SESSION_STORE",
                        format!("the Redis URL does not parse ({e}); its text is not shown"),
                    )
                })?;
                if url.host().is_none() {
                    return Err(invalid("SESSION_STORE", "the Redis URL has no host"));
                }
                StoreConfig::Redis(redis.to_owned())
            }
            other => match other.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => StoreConfig::Sqlite(path.into()),
                _ => {
                    return Err(invalid(
                        "SESSION_STORE",
                        "the value is not supported (its text is not shown: it may hold a password); use memory, sqlite://PATH, redis://HOST:PORT[/DB] or rediss://…",
                    ));
                }
            },
        };

        let max_pending_flows = count(&get, "MAX_PENDING_DEVICE_FLOWS", 10_000)?;
        let max_pending_flows_per_client = count(&get, "MAX_PENDING_FLOWS_PER_CLIENT", 5)?;
        let header_read_timeout =
            Duration::from_secs(positive(&get, "HEADER_READ_TIMEOUT_SECS", 10)?);
        let max_connections = count(&get, "MAX_CONNECTIONS", 10_000)?;
        let max_connections_per_client = count(&get, "MAX_CONNECTIONS_PER_CLIENT", 64)?;
        let rate_limit_per_minute = u32::try_from(positive(&get, "RATE_LIMIT_PER_MINUTE", 20)?)
            .map_err(|_| invalid("RATE_LIMIT_PER_MINUTE", "is too large"))?;
        let client_ip_header =
            match get("CLIENT_IP_HEADER") {
                None => None,
                Some(name) => Some(axum::http::HeaderName::try_from(name.as_str()).map_err(
                    |_| invalid("CLIENT_IP_HEADER", format!("{name:?} is not a header name")),
                )?),
            };
        let abandoned_flow = Duration::from_secs(positive(&get, "ABANDONED_FLOW_SECS", 60)?);
        let allowed_hosts = get("ALLOWED_HOSTS")
            .map(|hosts| {
                hosts
                    .split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let encryption_keys = match get("ENCRYPTION_KEYS") {
            None => Vec::new(),
            Some(keys) => keys
                .split(',')
                .filter(|k| !k.trim().is_empty())
                .enumerate()
                .map(|(i, k)| {
                    EncryptionKey::from_base64(k).ok_or_else(|| {
                        invalid(
                            "ENCRYPTION_KEYS",
                            format!(
                                "key {} is not the base64 of 32 bytes (make one with `openssl rand -base64 32`)",
                                i + 1
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let metrics_addr = match get("METRICS_ADDR") {
            None => None,
            Some(raw) => Some(socket_addr("METRICS_ADDR", &raw)?),
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("{other:?} is neither text nor json"),
                ));
            }
        };
        let log_filter = get("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        tracing_subscriber::EnvFilter::builder()
            .parse(&log_filter)
            .map_err(|e| {
                invalid(
                    "RUST_LOG",
                    format!("{log_filter:?} is not a log filter ({e})"),
                )
            })?;

        if matches!(session_store, StoreConfig::Redis(_)) && encryption_keys.is_empty() {
            return Err(invalid(
                "ENCRYPTION_KEYS",
                "required when SESSION_STORE is redis:// or rediss:// (every instance must share the key; make one with `openssl rand -base64 32`)",
            ));
        }

        Ok(Self {
            mode,
            redirect_uri,
            redirect_uri_follows_port,
            scopes,
            device_scopes,
            api_base,
            oidc_issuers,
            listen_addr,
            session_store,
            max_pending_flows,
            max_pending_flows_per_client,
            header_read_timeout,
            max_connections,
            max_connections_per_client,
            rate_limit_per_minute,
            client_ip_header,
            abandoned_flow,
            allowed_hosts,
            encryption_keys,
            metrics_addr,
            log_format,
            log_filter,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            handler_timeout: Duration::from_secs(30),
        })
    }

    pub fn is_demo(&self) -> bool {
        self.mode == Mode::Demo
    }

    /// Cookies get `Secure` when the app is served over https (judged from the redirect URI).
    pub fn secure_cookies(&self) -> bool {
        self.redirect_uri.scheme() == "https"
    }

    /// The `Host` values served (the redirect URI's authority, the listen address, the bound
    /// address and `ALLOWED_HOSTS`), and the `Origin`s accepted for form posts (the same hosts
    /// under the redirect URI's scheme).
    pub fn served_hosts(&self, bound: Option<SocketAddr>) -> (Vec<String>, Vec<String>) {
        let mut hosts = vec![authority(&self.redirect_uri)];
        hosts.push(self.listen_addr.to_string());
        if let Some(addr) = bound {
            hosts.push(addr.to_string());
            if addr.ip().is_loopback() {
                hosts.push(format!("localhost:{}", addr.port()));
            }
        }
        hosts.extend(self.allowed_hosts.iter().cloned());
        hosts.sort();
        hosts.dedup();
        let scheme = self.redirect_uri.scheme();
        let origins = hosts.iter().map(|h| format!("{scheme}://{h}")).collect();
        (hosts, origins)
    }

    /// Records the address the app is actually bound to (`127.0.0.1:0` becomes a real port); the
    /// default redirect URI follows it.
    pub fn bound_to(&mut self, addr: SocketAddr) {
        self.listen_addr = addr;
        if self.redirect_uri_follows_port {
            follow_port(&mut self.redirect_uri, addr.port());
        }
    }

    /// The URL to open in a browser: the redirect URI's origin, so the session cookie set on
    /// the landing page comes back on the OAuth callback.
    pub fn public_origin(&self) -> String {
        self.redirect_uri.origin().ascii_serialization()
    }
}

/// `LISTEN_ADDR`; unset, `0.0.0.0:$PORT` with `PORT`, else [`DEFAULT_LISTEN_ADDR`].
fn listen_addr(get: &impl Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigError> {
    if let Some(raw) = get("LISTEN_ADDR") {
        return socket_addr("LISTEN_ADDR", &raw);
    }
    let Some(raw) = get("PORT") else {
        return socket_addr("LISTEN_ADDR", DEFAULT_LISTEN_ADDR);
    };
    // A platform that sets PORT routes outside traffic to it on every interface: loopback
    // would be unreachable there.
    let port: u16 = raw
        .parse()
        .map_err(|_| invalid("PORT", format!("{raw:?} is not a port number (0-65535)")))?;
    Ok(SocketAddr::from(([0, 0, 0, 0], port)))
}

fn socket_addr(key: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse().map_err(|_| {
        invalid(
            key,
            format!("{raw:?} is not an address like 127.0.0.1:10060"),
        )
    })
}

/// The default redirect URI's port is the listen port (not the other way round: an explicit
/// `WEBEX_REDIRECT_URI` may be a proxy's public https URL, on another port).
fn follow_port(url: &mut Url, port: u16) {
    // Cannot fail on an http:// URL with a host (the default); were it to, the URL keeps its port.
    let _ = url.set_port(Some(port));
}

/// A positive whole number under `key`, or `default` when unset.
fn positive(
    get: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(key) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(key, format!("{raw:?} is not a positive whole number"))),
    }
}

/// A positive count under `key` that fits a `usize`, or `default` when unset.
fn count(
    get: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    default: u64,
) -> Result<usize, ConfigError> {
    usize::try_from(positive(get, key, default)?).map_err(|_| invalid(key, "is too large"))
}

/// `host[:port]` of a URL, as a browser sends it in `Host` (the port only when not the default).
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
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

mod oidc;
#[cfg(test)]
mod tests;
