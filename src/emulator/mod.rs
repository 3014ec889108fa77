//! The engine emulator: a model of an inference engine under load ([`engine`]), driven in real
//! time ([`runtime`]) behind an OpenAI-compatible server ([`server`]), for demos, tests and
//! benchmarks on machines without GPUs.

pub mod config;
pub mod engine;
pub mod fault_http;
pub mod faults;
mod messages;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod text;

pub use server::{Emulator, EmulatorConfig};
