//! A request as the simulator replays it: its class, arrival time, token counts and prompt
//! block hashes.

/// A request to replay.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub class: usize,
    pub at: f64,
    pub input: u32,
    /// The true output length (what the engine generates).
    pub output: u32,
    /// The `max_tokens` the client sends, if any: all that admission learns of the output
    /// before it ends (besides its forecast).
    pub max_tokens: Option<u32>,
    pub hashes: Vec<u64>,
}
