//! Unit tests of the error pages: what is logged of a session error, and the kinds.

use super::*;

#[test]
fn a_session_value_that_does_not_decode_is_logged_without_its_text() {
    // What a reader of the object layout makes of the string one: serde_json quotes it.
    let err = serde_json::from_value::<crate::tokens::TokenSet>(serde_json::Value::String(
        "{\"access_token\":\"secret-access\"}".to_owned(),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("secret-access"), "{err}");
    let logged = AppError::Session(err.into()).to_string();
    assert!(!logged.contains("secret-access"), "{logged}");
    assert!(
        logged.starts_with("session: a session value did not decode"),
        "{logged}"
    );
}

#[test]
fn kinds_have_unique_names_and_no_page_names_a_setting() {
    for (i, kind) in KINDS.iter().enumerate() {
        assert_eq!(Kind::named(kind.name).map(|k| k.name), Some(kind.name));
        assert!(
            KINDS[..i].iter().all(|other| other.name != kind.name),
            "{}",
            kind.name
        );
        for text in [kind.title, kind.message, kind.next_step] {
            assert!(
                !text.contains("WEBEX_") && !text.contains("SESSION_STORE"),
                "{text}"
            );
        }
    }
    assert!(Kind::named("").is_none() && Kind::named("Busy").is_none());
}
