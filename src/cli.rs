//! The command line: `--help` lists every setting with its environment variable and default,
//! `--version`, and a flag for each setting; [`crate::config`] checks the values.
//!
//! One table ([`SETTINGS`]) is the list of keys: clap's help is built from it, the values it
//! reads go to `Config::from_lookup` unchanged (so every message names the key), and tests
//! check that `.env.example` and `Config` use no key outside it.

use clap::{Arg, ArgMatches, Command};

/// One setting: its environment variable, its command-line flag, its default and what it does.
pub struct Setting {
    pub key: &'static str,
    pub flag: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

const fn setting(
    key: &'static str,
    flag: &'static str,
    default: &'static str,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        flag,
        default,
        help,
    }
}

/// Every setting the server reads, in the order of README's configuration table.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    setting("WEBEX_CLIENT_ID", "webex-client-id", "unset: demo mode on an embedded fake Webex", "Integration client id"),
    setting("WEBEX_CLIENT_SECRET", "webex-client-secret", "required with WEBEX_CLIENT_ID", "Integration client secret (prefer the environment: flags show in `ps`)"),
    setting("WEBEX_REDIRECT_URI", "webex-redirect-uri", "http://localhost:<listen port>/oauth", "Redirect URI registered with Webex; https makes the session cookie Secure"),
    setting("WEBEX_SCOPES", "webex-scopes", crate::config::DEFAULT_SCOPES, "Scopes of the authorization-code flow (space-separated)"),
    setting("WEBEX_DEVICE_SCOPES", "webex-device-scopes", crate::config::DEFAULT_DEVICE_SCOPES, "Scopes of the device flow (space-separated)"),
    setting("WEBEX_API_BASE", "webex-api-base", crate::config::DEFAULT_API_BASE, "Base of every Webex URL"),
    setting("WEBEX_OIDC_ISSUERS", "webex-oidc-issuers", "unset: the discovery issuer and Webex's idbroker hosts only", "id_token issuers also accepted (comma-separated https URLs, each matched exactly)"),
    setting("LISTEN_ADDR", "listen-addr", "127.0.0.1:10060, or 0.0.0.0:$PORT when PORT is set", "Address to bind"),
    setting("PORT", "port", "unset", "Port to bind on every interface when LISTEN_ADDR is unset (what hosting platforms set)"),
    setting("SESSION_STORE", "session-store", crate::config::DEFAULT_SESSION_STORE, "Where sessions and device flows live: memory, sqlite://PATH or redis://HOST:PORT[/DB]"),
    setting("MAX_PENDING_DEVICE_FLOWS", "max-pending-device-flows", "10000", "Pending device sign-ins accepted; past it, Sign-In answers 503"),
    setting("MAX_PENDING_FLOWS_PER_CLIENT", "max-pending-flows-per-client", "5", "Pending device sign-ins per client address (IPv6: per /64); past it, Sign-In answers 429"),
    setting("HEADER_READ_TIMEOUT_SECS", "header-read-timeout-secs", "10", "Seconds a client has to send its request headers"),
    setting("MAX_CONNECTIONS", "max-connections", "10000", "Connections served at once; more wait in the backlog"),
    setting("MAX_CONNECTIONS_PER_CLIENT", "max-connections-per-client", "64", "Connections one peer address (IPv6: one /64) may hold; more are closed at once (off with CLIENT_IP_HEADER)"),
    setting("RATE_LIMIT_PER_MINUTE", "rate-limit-per-minute", "20", "GET (or HEAD) /login and POST /sign-in per client address per minute"),
    setting("CLIENT_IP_HEADER", "client-ip-header", "unset: the peer address", "Header whose last hop is the client address (behind your proxy)"),
    setting("ABANDONED_FLOW_SECS", "abandoned-flow-secs", "60", "A device sign-in whose page nobody watched this long stops"),
    setting("ALLOWED_HOSTS", "allowed-hosts", "unset", "Host values accepted besides the redirect URI's and the listen address (comma-separated)"),
    setting("ENCRYPTION_KEYS", "encryption-keys", "unset", "Keys that encrypt tokens in the store: comma-separated base64 of 32 bytes; the first encrypts"),
    setting("METRICS_ADDR", "metrics-addr", "unset: no metrics", "Address of the Prometheus listener (GET /metrics there only)"),
    setting("LOG_FORMAT", "log-format", "text", "Log lines as text or json (one object a line)"),
    setting("RUST_LOG", "rust-log", crate::config::DEFAULT_LOG_FILTER, "Log filter (tracing EnvFilter syntax)"),
];

/// The command line of the server binary.
pub fn command() -> Command {
    let args = SETTINGS.iter().map(|s| {
        Arg::new(s.key)
            .long(s.flag)
            .env(s.key)
            // Help must never print a secret that happens to be in the environment.
            .hide_env_values(true)
            .value_name("VALUE")
            .help(format!("{} [default: {}]", s.help, s.default))
    });
    Command::new("webex-oauth-axum")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Webex's OAuth samples (authorization code + PKCE, device grant) as one Axum server; \
             without WEBEX_CLIENT_ID it runs in demo mode on an embedded fake Webex.",
        )
        .after_help(
            "Every setting is read from its environment variable (or .env in the working \
             directory); a flag overrides it. A bad value stops start-up with a line naming the key.",
        )
        .args(args)
}

/// The value of `key` in parsed arguments (flag, else environment), for `Config::from_lookup`.
pub fn value(matches: &ArgMatches, key: &str) -> Option<String> {
    matches.try_get_one::<String>(key).ok().flatten().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn a_flag_overrides_the_environment_and_reaches_the_config() {
        let matches = command()
            .try_get_matches_from(["webex-oauth-axum", "--listen-addr", "127.0.0.1:18090"])
            .unwrap();
        let config = crate::Config::from_lookup(|key| value(&matches, key)).unwrap();
        assert_eq!(config.listen_addr.port(), 18090);
        assert_eq!(config.redirect_uri.as_str(), "http://localhost:18090/oauth");
    }

    /// The keys `from_lookup` asks for are exactly the ones `--help` lists (and `.env.example`
    /// is checked against the same list in tests/cli.rs).
    #[test]
    fn every_key_read_is_a_listed_setting() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        let record = |key: &str, value: Option<&str>| {
            asked.lock().unwrap().insert(key.to_owned());
            value.map(str::to_owned)
        };
        crate::Config::from_lookup(|key| record(key, None)).unwrap();
        crate::Config::from_lookup(|key| {
            record(
                key,
                matches!(key, "WEBEX_CLIENT_ID" | "WEBEX_CLIENT_SECRET").then_some("x"),
            )
        })
        .unwrap();
        let listed: std::collections::BTreeSet<String> =
            SETTINGS.iter().map(|s| s.key.to_owned()).collect();
        assert_eq!(*asked.lock().unwrap(), listed);
    }
}
