//! tollgate: an LLM gateway that allocates scarce inference capacity by opportunity cost.
//! See ARCHITECTURE.md for the map of the modules below.

pub mod admission;
pub mod allocator;
pub mod api;
pub mod auth;
pub mod backends;
pub mod batch;
pub mod cache;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod distill;
pub mod emulator;
pub mod fuzzing;
pub mod guard;
pub mod metering;
pub mod routing;
pub mod serve;
pub mod sim;
pub mod state;
pub mod store;
pub mod units;
