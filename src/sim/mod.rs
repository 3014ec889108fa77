//! The trace-replay simulator (in progress): trace readers so far. The discrete-event engine,
//! the policies and the reports come with the simulator issue; they will drive
//! `emulator::engine` and `admission` with time passed in, as the gateway does.

pub mod des;
pub mod hindsight;
pub mod policy;
pub mod run;
pub mod scenario;
pub mod trace;
