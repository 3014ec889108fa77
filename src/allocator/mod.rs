//! The allocator: the capacity model of the fleet, the demand forecast per class, the LP that
//! turns them into a plan and shadow prices, and the price board that the request path reads.

pub mod board;
pub mod calibration;
pub mod forecast;
pub mod history;
pub mod lp;
pub mod pools;
pub mod runtime;
pub mod scarcity;
pub mod waiting;

pub use runtime::{value_rates, Allocator, CORRECTION_INTERVAL_S};
