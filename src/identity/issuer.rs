//! The issuer rule: which `iss` an id_token may carry.
//!
//! Webex's discovery document names one issuer (`https://idbroker.webex.com/idb`) while its
//! id_tokens carry a regional broker's (`https://idbroker-b-us.webex.com/idb`), so the exact
//! match OpenID Connect asks for would refuse every real sign-in (contract §10). Accepted: the
//! discovery `issuer`, exactly; `https://idbroker.webex.com/idb` and
//! `https://idbroker-<region>.webex.com/idb`, exactly so written (no port, user, query, other
//! path or capitals); and each issuer listed in `WEBEX_OIDC_ISSUERS`, exactly. The trust anchor
//! stays the signature, checked against the key set the discovery document names.

/// The longest region label we accept (`b-us`, `eu`, `ca`: Webex's are short).
const MAX_REGION_LEN: usize = 32;

/// True when `iss` is accepted: `discovered` is the discovery document's issuer, `listed` the
/// operator's `WEBEX_OIDC_ISSUERS`.
pub fn accepts(iss: &str, discovered: &str, listed: &[String]) -> bool {
    iss == discovered || listed.iter().any(|l| l == iss) || is_webex_broker(iss)
}

/// `https://idbroker.webex.com/idb` or `https://idbroker-<region>.webex.com/idb`, where the
/// region is lowercase letters, digits and inner hyphens.
fn is_webex_broker(iss: &str) -> bool {
    let host = iss.strip_prefix("https://");
    let host = host.and_then(|rest| rest.strip_suffix(".webex.com/idb"));
    host.is_some_and(|h| h == "idbroker" || h.strip_prefix("idbroker-").is_some_and(is_region))
}

fn is_region(region: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    (1..=MAX_REGION_LEN).contains(&region.len())
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region.bytes().all(allowed)
}

#[cfg(test)]
mod tests {
    use super::accepts;

    const DISCOVERED: &str = "https://idbroker.webex.com/idb";

    fn ok(iss: &str) -> bool {
        accepts(iss, DISCOVERED, &[])
    }

    #[test]
    fn the_discovery_issuer_and_webex_brokers_are_accepted() {
        for iss in [
            "https://idbroker.webex.com/idb",
            "https://idbroker-b-us.webex.com/idb",
            "https://idbroker-eu.webex.com/idb",
            "https://idbroker-ca1.webex.com/idb",
        ] {
            assert!(ok(iss), "{iss}");
        }
        // Whatever discovery names, exactly, even off Webex's hosts (the fake, a test IdP).
        let fake = "http://127.0.0.1:9/idb";
        assert!(accepts(fake, fake, &[]));
    }

    #[test]
    fn every_other_issuer_is_refused() {
        for iss in [
            "",
            "https://evil.example/idb",
            "http://idbroker.webex.com/idb",
            "https://idbroker.webex.com/idb/",
            "https://idbroker.webex.com/",
            "https://idbroker.webex.com",
            "https://idbroker.webex.com/IDB",
            "https://IDBROKER.webex.com/idb",
            "https://idbroker.webex.com:8443/idb",
            "https://user@idbroker.webex.com/idb",
            "https://idbroker.webex.com/idb?x=1",
            "https://idbroker.webex.com/idb#x",
            "https://idbroker.webex.com.evil.example/idb",
            "https://evil.example/idbroker.webex.com/idb",
            "https://evilidbroker.webex.com/idb",
            "https://idbroker-.webex.com/idb",
            "https://idbroker--.webex.com/idb",
            "https://idbroker-b-.webex.com/idb",
            "https://idbroker-b.us.webex.com/idb",
            "https://idbroker-B-US.webex.com/idb",
            "https://idbroker-b_us.webex.com/idb",
            "https://x.idbroker-b-us.webex.com/idb",
            "https://idbroker-b-us.webex.co/idb",
            "https://idbroker-b-us.ciscospark.com/idb",
            "https://idbroker-b-us.webex.com/idb/../x",
            "https://idbroker-b-us.webex.com/x/idb",
            " https://idbroker.webex.com/idb",
        ] {
            assert!(!ok(iss), "{iss:?}");
        }
        let long = format!("https://idbroker-{}.webex.com/idb", "a".repeat(33));
        assert!(!ok(&long));
    }

    #[test]
    fn listed_issuers_are_accepted_exactly_as_listed() {
        let listed = ["https://login.example.com/idb".to_owned()];
        assert!(accepts(&listed[0], DISCOVERED, &listed));
        assert!(!accepts(&listed[0], DISCOVERED, &[]));
        for iss in [
            "https://login.example.com/idb/",
            "https://LOGIN.example.com/idb",
        ] {
            assert!(!accepts(iss, DISCOVERED, &listed), "{iss}");
        }
    }
}
