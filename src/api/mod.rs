//! The OpenAI-compatible surface: wire types and the error mapping shared by the emulator and
//! the gateway.

pub mod error;
pub mod openai;

pub use error::{from_value, parse_body, parse_json, ApiError};
