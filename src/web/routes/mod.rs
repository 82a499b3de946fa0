//! The pages, one module per flow; [`router`] merges them with the static assets.

mod account;
mod auth_code;
mod device;
mod home;
mod spaces;

#[cfg(feature = "test-support")]
pub use spaces::page as spaces_page;

use crate::state::AppState;
use crate::web::error::AppError;
use axum::Router;

/// The first value of each of `keys` in a query string, read leniently: never an error (bytes
/// that are not UTF-8 become U+FFFD; a key's later values are ignored).
fn first_values<const N: usize>(query: Option<&str>, keys: [&str; N]) -> [Option<String>; N] {
    let mut values = [const { None }; N];
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if let Some(i) = keys.iter().position(|k| *k == key) {
            values[i].get_or_insert_with(|| value.into_owned());
        }
    }
    values
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(home::router())
        .merge(auth_code::router())
        .merge(device::router())
        .merge(account::router())
        .merge(super::assets::router())
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .with_state(state)
}
