//! The environment contract (`WEBEX_*`, `LISTEN_ADDR`, `PORT`, `SESSION_STORE`, …), read and checked
//! at start-up; the keys and their defaults are [`crate::cli::SETTINGS`], which `--help` shows.

use crate::secret::Secret;
use axum::http::HeaderName;
use std::net::SocketAddr;
use std::time::Duration;
use url::Url;

/// The redirect URI when `WEBEX_REDIRECT_URI` is unset: its port follows the listen port.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:10060/oauth";
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:10060";
pub use crate::cli::DEFAULT_LOG_FILTER;

/// `LOG_FORMAT`: how log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line an event (coloured only on a terminal).
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

impl std::fmt::Display for StoreConfig {
    /// For the start-up log (a Redis URL may hold a password: only its host is shown).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory (lost on restart)"),
            Self::Sqlite(path) => write!(f, "SQLite file {}", path.display()),
            Self::Redis(url) => {
                let url = Url::parse(url).ok();
                let host = url.as_ref().and_then(Url::host_str);
                write!(f, "Redis at {}", host.unwrap_or_default())
            }
        }
    }
}

/// The checked settings; each field's key and default are in [`crate::cli::SETTINGS`].
#[derive(Clone, Debug)]
pub struct Config {
    /// `WEBEX_CLIENT_ID` / `WEBEX_CLIENT_SECRET`.
    pub mode: Mode,
    /// `WEBEX_REDIRECT_URI`: where Webex sends the browser back with the code.
    pub redirect_uri: Url,
    /// `WEBEX_REDIRECT_URI` is unset: the redirect URI's port follows the bound port (`bound_to`).
    pub redirect_uri_follows_port: bool,
    /// `WEBEX_SCOPES`; with `openid` (the default) a flow also proves who signed in (`identity`).
    pub scopes: String,
    /// `WEBEX_DEVICE_SCOPES`, of the device flow.
    pub device_scopes: String,
    /// `WEBEX_API_BASE`: every Webex URL derives from it (ignored in demo mode).
    pub api_base: Url,
    /// `WEBEX_OIDC_ISSUERS`: id_token issuers also accepted (`identity::issuer`), as written.
    pub oidc_issuers: Vec<String>,
    /// `LISTEN_ADDR`, else `0.0.0.0:$PORT`; then the address actually bound (`bound_to`).
    pub listen_addr: SocketAddr,
    /// `SESSION_STORE`.
    pub session_store: StoreConfig,
    /// `MAX_PENDING_DEVICE_FLOWS`: past it, new device sign-ins get a 503.
    pub max_pending_flows: usize,
    /// `MAX_PENDING_FLOWS_PER_CLIENT`, counted on this instance; past it, Sign-In gets a 429.
    pub max_pending_flows_per_client: usize,
    /// `HEADER_READ_TIMEOUT_SECS`.
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS`: the rest wait in the backlog.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_CLIENT`; not applied with `CLIENT_IP_HEADER` (every peer is the proxy).
    pub max_connections_per_client: usize,
    /// `RATE_LIMIT_PER_MINUTE`, with a burst of that size.
    pub rate_limit_per_minute: u32,
    /// `CLIENT_IP_HEADER`: its last hop is the client address; unset, the peer address is.
    pub client_ip_header: Option<HeaderName>,
    /// `ABANDONED_FLOW_SECS`.
    pub abandoned_flow: Duration,
    /// `ALLOWED_HOSTS`, lowercase.
    pub allowed_hosts: Vec<String>,
    /// `ENCRYPTION_KEYS`: the first encrypts, all decrypt; empty, see `store::open`.
    pub encryption_keys: Vec<EncryptionKey>,
    /// `METRICS_ADDR`: a listener of its own for `/metrics`, never the public one.
    pub metrics_addr: Option<SocketAddr>,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RUST_LOG` (tracing's `EnvFilter` syntax), checked here.
    pub log_filter: String,
    /// Webex HTTP timeouts (not in the environment contract; tests shorten them).
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// A request still unanswered after this gets the 504 page (30 s; tests shorten it).
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
    /// Reads the configuration through `lookup` (the command line and environment, or a map in
    /// tests). An empty value counts as unset; an unset key takes the table's default, if any.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let mode = match env.get("WEBEX_CLIENT_ID") {
            None => Mode::Demo,
            Some(client_id) => {
                let client_secret = env.parse("WEBEX_CLIENT_SECRET", |secret| match secret {
                    "" => Err("required when WEBEX_CLIENT_ID is set".into()),
                    secret => Ok(Secret::new(secret)),
                })?;
                if client_id.contains(|c: char| c.is_whitespace() || c.is_control()) {
                    return Err(invalid("WEBEX_CLIENT_ID", "must not contain spaces"));
                }
                Mode::Live {
                    client_id,
                    client_secret,
                }
            }
        };

        let listen_addr = env.listen_addr()?;
        // Fields in the order they are checked: the first bad value is the one reported.
        let mut config = Self {
            mode,
            redirect_uri: env.parse("WEBEX_REDIRECT_URI", redirect_uri)?,
            redirect_uri_follows_port: env.get("WEBEX_REDIRECT_URI").is_none(),
            api_base: env.parse("WEBEX_API_BASE", http_url)?,
            oidc_issuers: env.parse("WEBEX_OIDC_ISSUERS", oidc_issuers)?,
            scopes: env.parse("WEBEX_SCOPES", scopes)?,
            device_scopes: env.parse("WEBEX_DEVICE_SCOPES", scopes)?,
            listen_addr,
            session_store: env.parse("SESSION_STORE", store_config)?,
            max_pending_flows: env.parse("MAX_PENDING_DEVICE_FLOWS", positive)?,
            max_pending_flows_per_client: env.parse("MAX_PENDING_FLOWS_PER_CLIENT", positive)?,
            header_read_timeout: Duration::from_secs(
                env.parse("HEADER_READ_TIMEOUT_SECS", positive)?,
            ),
            max_connections: env.parse("MAX_CONNECTIONS", positive)?,
            max_connections_per_client: env.parse("MAX_CONNECTIONS_PER_CLIENT", positive)?,
            rate_limit_per_minute: env.parse("RATE_LIMIT_PER_MINUTE", positive)?,
            client_ip_header: env.parse_opt("CLIENT_IP_HEADER", |name| {
                HeaderName::try_from(name).map_err(|_| format!("{name:?} is not a header name"))
            })?,
            abandoned_flow: Duration::from_secs(env.parse("ABANDONED_FLOW_SECS", positive)?),
            allowed_hosts: env.parse("ALLOWED_HOSTS", |hosts| {
                Ok(list(hosts).map(str::to_ascii_lowercase).collect())
            })?,
            encryption_keys: env.parse("ENCRYPTION_KEYS", encryption_keys)?,
            metrics_addr: env.parse_opt("METRICS_ADDR", socket_addr)?,
            log_format: env.parse("LOG_FORMAT", |format| match format {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                other => Err(format!("{other:?} is neither text nor json")),
            })?,
            log_filter: env.parse("RUST_LOG", log_filter)?,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            handler_timeout: Duration::from_secs(30),
        };
        config.bound_to(listen_addr); // the default redirect URI takes the listen port
        if matches!(config.session_store, StoreConfig::Redis(_))
            && config.encryption_keys.is_empty()
        {
            return Err(invalid(
                "ENCRYPTION_KEYS",
                "required when SESSION_STORE is redis:// or rediss:// (every instance must share the key; make one with `openssl rand -base64 32`)",
            ));
        }
        Ok(config)
    }

    pub fn is_demo(&self) -> bool {
        self.mode == Mode::Demo
    }

    /// Cookies get `Secure` when the app is served over https (judged from the redirect URI).
    pub fn secure_cookies(&self) -> bool {
        self.redirect_uri.scheme() == "https"
    }

    /// The `Host` values served (the redirect URI's, the bound address, `localhost` on a loopback
    /// one's port, `ALLOWED_HOSTS`) and the `Origin`s accepted (them under the redirect's scheme).
    pub fn served_hosts(&self) -> (Vec<String>, Vec<String>) {
        let mut hosts = vec![authority(&self.redirect_uri), self.listen_addr.to_string()];
        if self.listen_addr.ip().is_loopback() {
            hosts.push(format!("localhost:{}", self.listen_addr.port()));
        }
        hosts.extend(self.allowed_hosts.iter().cloned());
        hosts.sort();
        hosts.dedup();
        let scheme = self.redirect_uri.scheme();
        let origins = hosts.iter().map(|h| format!("{scheme}://{h}")).collect();
        (hosts, origins)
    }

    /// Records the address the app is bound to (`127.0.0.1:0` becomes a real port); the default
    /// redirect URI's port follows it (an explicit one may be a proxy's, on another port).
    pub fn bound_to(&mut self, addr: SocketAddr) {
        self.listen_addr = addr;
        if self.redirect_uri_follows_port {
            // Cannot fail on the default http:// URL with a host; were it to, it keeps its port.
            let _ = self.redirect_uri.set_port(Some(addr.port()));
        }
    }

    /// The URL to open in a browser: the redirect URI's origin, so the session cookie set on
    /// the landing page comes back on the OAuth callback.
    pub fn public_origin(&self) -> String {
        self.redirect_uri.origin().ascii_serialization()
    }
}

/// A value's check: the value, or what is wrong with it (the key is added by [`Env`]).
type Check<T> = fn(&str) -> Result<T, String>;

/// What `from_lookup` reads through: values trimmed, empty as unset, the table's default applied.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| crate::cli::default_of(key).map(str::to_owned))
    }

    /// `key`'s value (unset: its default, else empty) as `check` reads it.
    fn parse<T>(&self, key: &'static str, check: Check<T>) -> Result<T, ConfigError> {
        check(&self.get(key).unwrap_or_default()).map_err(|problem| invalid(key, problem))
    }

    /// The same for a key without a default: `None` when unset.
    fn parse_opt<T>(&self, key: &'static str, check: Check<T>) -> Result<Option<T>, ConfigError> {
        let checked = self.get(key).map(|value| check(&value));
        checked.transpose().map_err(|problem| invalid(key, problem))
    }

    /// `LISTEN_ADDR`; unset, `0.0.0.0:$PORT` with `PORT`, else [`DEFAULT_LISTEN_ADDR`].
    fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        if let Some(addr) = self.parse_opt("LISTEN_ADDR", socket_addr)? {
            return Ok(addr);
        }
        // A platform that sets PORT routes outside traffic to every interface, never to loopback.
        let port = self.parse_opt("PORT", |port| {
            port.parse::<u16>()
                .map_err(|_| format!("{port:?} is not a port number (0-65535)"))
        })?;
        match port {
            Some(port) => Ok(SocketAddr::from(([0, 0, 0, 0], port))),
            None => socket_addr(DEFAULT_LISTEN_ADDR).map_err(|p| invalid("LISTEN_ADDR", p)),
        }
    }
}

/// `SESSION_STORE`. A store URL may carry a password: no message shows the value itself.
fn store_config(store: &str) -> Result<StoreConfig, String> {
    if store == "memory" {
        return Ok(StoreConfig::Memory);
    }
    if store.starts_with("redis://") || store.starts_with("rediss://") {
        let url = Url::parse(store)
            .map_err(|e| format!("the Redis URL does not parse ({e}); its text is not shown"))?;
        if url.host().is_none() {
            return Err("the Redis URL has no host".into());
        }
        return Ok(StoreConfig::Redis(store.to_owned()));
    }
    match store.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => Ok(StoreConfig::Sqlite(path.into())),
        _ => Err("the value is not supported (its text is not shown: it may hold a password); use memory, sqlite://PATH, redis://HOST:PORT[/DB] or rediss://…".into()),
    }
}

/// A positive whole number that fits a `T`.
fn positive<T: TryFrom<u64>>(raw: &str) -> Result<T, String> {
    let n = raw.parse::<u64>().ok().filter(|n| *n > 0);
    let n = n.ok_or_else(|| format!("{raw:?} is not a positive whole number"))?;
    T::try_from(n).map_err(|_| "is too large".into())
}

/// Space-separated scopes, joined by single spaces.
fn scopes(raw: &str) -> Result<String, String> {
    let valid = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\');
    match raw.split_whitespace().find(|s| !s.bytes().all(valid)) {
        Some(bad) => Err(format!("{bad:?} is not a valid scope")),
        None => Ok(raw.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

/// The entries of a comma-separated list, trimmed, empty ones left out.
fn list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `ENCRYPTION_KEYS`: each the base64 of 32 bytes.
fn encryption_keys(raw: &str) -> Result<Vec<EncryptionKey>, String> {
    let key = |(i, key): (usize, &str)| {
        EncryptionKey::from_base64(key).ok_or_else(|| {
            let n = i + 1;
            format!(
                "key {n} is not the base64 of 32 bytes (make one with `openssl rand -base64 32`)"
            )
        })
    };
    list(raw).enumerate().map(key).collect()
}

/// `RUST_LOG`, checked as tracing's `EnvFilter` parses it.
fn log_filter(filter: &str) -> Result<String, String> {
    match tracing_subscriber::EnvFilter::builder().parse(filter) {
        Ok(_) => Ok(filter.to_owned()),
        Err(e) => Err(format!("{filter:?} is not a log filter ({e})")),
    }
}

fn socket_addr(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not an address like 127.0.0.1:10060"))
}

/// `host[:port]` of a URL, as a browser sends it in `Host` (the port only when not the default).
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// An http:// or https:// URL with a host and no user name or password.
fn http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{raw:?} must be an http:// or https:// URL with a host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    Ok(url)
}

/// `WEBEX_REDIRECT_URI`, else [`DEFAULT_REDIRECT_URI`]: an [`http_url`] with no query or fragment.
fn redirect_uri(raw: &str) -> Result<Url, String> {
    let url = match raw {
        "" => http_url(DEFAULT_REDIRECT_URI)?,
        raw => http_url(raw)?,
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".into());
    }
    Ok(url)
}

/// `WEBEX_OIDC_ISSUERS`, each kept as written (issuers are matched as strings) and an issuer URL
/// as OpenID Connect Discovery §3 has it: https, a host, no user, no query, no fragment.
fn oidc_issuers(raw: &str) -> Result<Vec<String>, String> {
    let issuer = |issuer: &str| {
        let url = http_url(issuer)?;
        if url.scheme() != "https" {
            return Err(format!(
                "{issuer:?} is not https: an id_token issuer is an https URL"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{issuer:?} has a query or a fragment, which an issuer never has"
            ));
        }
        Ok(issuer.to_owned())
    };
    list(raw).map(issuer).collect()
}

#[cfg(test)]
mod tests;
