//! tollgate: an LLM gateway that allocates scarce inference capacity by opportunity cost.
//! See ARCHITECTURE.md for the map of the modules below.

pub mod api;
pub mod capacity;
pub mod cli;
pub mod emulator;
