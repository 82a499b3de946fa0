//! The command line: `--help` lists every setting of [`SETTINGS`] with its environment variable
//! and default, `--version`, and a flag for each setting. The values go to `Config::from_lookup`
//! unchanged (so every message names the key); tests check that `.env.example` and `Config` use
//! no key outside the table.

use clap::{Arg, ArgMatches, Command};

pub use crate::config::settings::{SETTINGS, Setting};

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
