//! The trace-replay simulator: scenario files and trace readers, a discrete-event replay that
//! drives the emulator's engine model for every replica and calls the gateway's own allocator and
//! admission code with virtual time, the baseline policies, the hindsight bound, reports (table,
//! JSON, HTML) and the live-versus-simulated validation.

pub mod des;
pub mod error;
pub mod hindsight;
pub mod html;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod prompts;
pub mod report;
pub mod request;
pub mod robust;
pub mod run;
pub mod scenario;
pub mod suite;
pub mod trace;
pub mod validate;
