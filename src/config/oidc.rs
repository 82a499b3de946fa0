//! `WEBEX_OIDC_ISSUERS`: the id_token issuers an operator accepts besides the discovery issuer
//! and Webex's idbroker hosts (`identity::issuer`).

use super::{ConfigError, http_url, invalid, list};

const KEY: &str = "WEBEX_OIDC_ISSUERS";

/// The comma-separated list, each entry trimmed and kept exactly as written (an issuer is
/// matched as a string). Each must be an issuer URL as OpenID Connect Discovery §3 has it:
/// https, a host, no user, no query, no fragment; anything else stops start-up.
pub(super) fn issuers(raw: Option<String>) -> Result<Vec<String>, ConfigError> {
    let mut issuers = Vec::new();
    for issuer in list(raw.as_deref()) {
        let url = http_url(KEY, issuer)?;
        if url.scheme() != "https" {
            return Err(invalid(
                KEY,
                format!("{issuer:?} is not https: an id_token issuer is an https URL"),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                KEY,
                format!("{issuer:?} has a query or a fragment, which an issuer never has"),
            ));
        }
        issuers.push(issuer.to_owned());
    }
    Ok(issuers)
}
