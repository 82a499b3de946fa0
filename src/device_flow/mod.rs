//! The device sign-in (RFC 8628), in one place: the record of a flow ([`FlowRecord`]), the
//! poller's pure decision ([`decide`]), and [`DeviceFlows`], the service that starts, polls,
//! cancels and claims flows. The routes in `web/routes/device.rs` call only the service.

pub mod decide;
mod poller;
mod record;

pub use poller::{DeviceFlows, FlowError};
pub use record::{FlowRecord, FlowStatus};
