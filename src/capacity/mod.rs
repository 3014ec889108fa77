//! The capacity model: what a request costs an engine. Profiles (timing, memory, power) are
//! fitted on measured data or calibrated against a live engine, and read by the emulator, the
//! simulator and (later) the allocator, so all three share one physics.

pub mod calibrate;
pub mod fit;
pub mod lsq;
pub mod profile;

pub use profile::{CapacityFigures, Profile, ProfileError, StepWork, DEFAULT_PROFILE};
