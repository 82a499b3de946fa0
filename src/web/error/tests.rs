//! Unit tests of the error pages: what is logged of a session error, and the kinds.

use super::*;

#[test]
fn a_session_value_that_does_not_decode_is_logged_without_its_text() {
    // What a reader of the object layout makes of the string one: serde_json quotes it.
    let text = serde_json::json!("{\"access_token\":\"secret-access\"}");
    let err = serde_json::from_value::<crate::tokens::TokenSet>(text).unwrap_err();
    assert!(err.to_string().contains("secret-access"), "{err}");
    let logged = AppError::Session(err.into()).to_string();
    assert!(!logged.contains("secret-access"), "{logged}");
    let start = "session: a session value did not decode";
    assert!(logged.starts_with(start), "{logged}");
}

#[test]
fn kinds_have_unique_names_and_no_page_names_a_setting() {
    for (i, kind) in KINDS.iter().enumerate() {
        let name = kind.name;
        assert_eq!(Kind::named(name).map(|k| k.name), Some(name));
        assert!(KINDS[..i].iter().all(|other| other.name != name), "{name}");
        for text in [kind.title, kind.message, kind.next_step] {
            let names_a_setting = text.contains("WEBEX_") || text.contains("SESSION_STORE");
            assert!(!names_a_setting, "{text}");
        }
    }
    assert!(Kind::named("").is_none() && Kind::named("Busy").is_none());
}
