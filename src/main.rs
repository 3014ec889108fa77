//! The `tollgate` binary: parses the command line and runs the chosen command.

use clap::Parser;

/// mimalloc: per-event allocations on the relay path cost a sixth of the CPU under glibc's malloc.
/// Built without transparent huge pages (`no_thp`): with them, 9,900 open streams held 55 KiB each
/// instead of 39 (ARCHITECTURE.md, `src/backends/`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = tollgate::cli::Cli::parse();
    match tollgate::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
