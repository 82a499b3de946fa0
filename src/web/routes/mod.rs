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
