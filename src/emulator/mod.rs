//! The engine emulator: a model of an inference engine under load ([`engine`]), driven in real
//! time ([`runtime`]) behind an OpenAI-compatible server ([`server`]), for demos, tests and
//! benchmarks on machines without GPUs.

mod answer;
pub mod config;
pub mod engine;
pub mod fault_http;
pub mod faults;
mod ingress;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod text;
pub mod tools;

pub use server::{Emulator, EmulatorConfig};
