//! The OpenAI-compatible surface (and Anthropic's Messages, translated at the edge): wire types
//! and the error mapping shared by the emulator and the gateway, the gateway's routes and
//! layers, its request path, and the admin API.

pub mod admin;
pub mod admit;
pub mod anthropic;
pub mod batches;
pub mod chat_stream;
pub mod classify;
pub mod error;
pub mod estimate;
pub mod files;
pub mod gateway;
pub mod guard;
pub mod metrics;
pub mod openai;
pub mod proxy;
pub mod relay;
pub mod responses;
pub mod routes;
pub mod send;
pub mod sse;
pub mod tally;
pub mod tokens;

pub use error::{body_object, from_value, invalid, parse_body, parse_json, token_limit, ApiError};
