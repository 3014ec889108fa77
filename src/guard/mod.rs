//! The extraction watch (issue 26): signals per tenant and per key that a tenant is harvesting a
//! model (steady machine arrivals, long answers run to `max_tokens`, logprobs, broad topic
//! coverage, one template, many keys acting as one), a score with its reasons, and the evaluation
//! that fits and checks it on generated campaigns. Policy: nothing here imports the gateway;
//! `api::guard` applies each model's configured action.

pub mod eval;
pub mod score;
pub mod signals;
pub mod sketch;
pub mod tracker;
pub mod watch;

pub use score::{Snapshot, Weights};
pub use tracker::Settings;
pub use watch::{Seen, Standing, Watch};
