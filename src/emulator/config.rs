//! The settings of one emulator server.

use super::faults::FaultPlan;
use crate::capacity::Profile;

/// Settings of one emulator server.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub profile: Profile,
    /// Model name served (defaults to the profile's model).
    pub model_name: String,
    pub replicas: usize,
    pub seed: u64,
    /// Emulated seconds per wall-clock second.
    pub time_scale: f64,
    /// Faults drawn at random (none by default).
    pub faults: FaultPlan,
}
