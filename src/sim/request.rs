//! A request as the simulator replays it: its class, arrival time, token counts and prompt
//! block hashes.

/// A request to replay.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub class: usize,
    pub at: f64,
    pub input: u32,
    pub output: u32,
    pub hashes: Vec<u64>,
}
