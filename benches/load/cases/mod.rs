//! The six cases, each adding its rows to the report.

mod device;
mod pages;
mod startup;
mod storm;

pub use device::device_case;
pub use pages::{home_case, many_pages_case, spaces_case};
pub use startup::startup_case;
pub use storm::storm_case;

use crate::Settings;
use crate::client::{LoadResult, Target, load};

/// A load run that must have gone through without a single failed request.
pub async fn measured(settings: &Settings, what: &str, targets: &[Target]) -> LoadResult {
    eprintln!("{what}, {} connections…", targets.len());
    let result = load(targets, settings.warmup, settings.measure).await;
    assert!(
        result.errors == 0 && result.requests > 0,
        "{what}: {} failed requests, {} good",
        result.errors,
        result.requests
    );
    result
}
