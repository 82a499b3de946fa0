//! Unit tests of the error pages: what is logged of a session error, the kinds, tracking ids.

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

#[test]
fn only_tracking_ids_go_into_a_url() {
    assert!(is_tracking_id(
        "ROUTER_65F3A1B2-0C1D-4E5F-8A9B-0123456789AB"
    ));
    assert!(is_tracking_id("WEBEX_CLIENT_abc.def:1"));
    for bad in ["", "a b", "<b>", "x&kind=busy", &"a".repeat(129), "é"] {
        assert!(!is_tracking_id(bad), "{bad}");
    }
}

#[test]
fn a_refused_id_token_is_a_502_page_with_its_tracking_id_and_another_logins_a_400() {
    let refused = |wrong_nonce| {
        AppError::Identity(IdentityError::Refused {
            reason: "its signature does not verify",
            wrong_nonce,
            tracking_id: Some("ROUTER_1".into()),
        })
        .into_response()
    };
    let page = refused(false);
    let page = page.extensions().get::<ErrorPage>().unwrap();
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert_eq!(page.title, "Your identity could not be verified");
    assert_eq!(page.tracking_id.as_deref(), Some("ROUTER_1"));
    assert_eq!(refused(true).status(), StatusCode::BAD_REQUEST);
    let keys = AppError::Identity(IdentityError::Keys(std::sync::Arc::new(
        WebexError::Transport("refused".into()),
    )))
    .into_response();
    let page = keys.extensions().get::<ErrorPage>().unwrap();
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.title, "Your identity could not be verified");
    assert!(
        page.message.contains("nobody was signed in"),
        "{}",
        page.message
    );
}
