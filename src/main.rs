//! The `tollgate` binary: parses the command line and runs the chosen command.

use clap::Parser;

/// mimalloc: per-event allocations on the relay path cost a sixth of the CPU under glibc's malloc.
/// Transparent huge pages are off for the process ([`no_huge_pages`]): with them, 9,900 open
/// streams held 55 KiB each instead of 39, at the same CPU (ARCHITECTURE.md, `src/backends/`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_huge_pages();
    let cli = tollgate::cli::Cli::parse();
    match tollgate::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process, as `MIMALLOC_ALLOW_THP=0` would: on a
/// kernel whose THP setting is `always`, sparsely used allocator arenas would otherwise become
/// resident in 2 MiB pieces.
#[cfg(target_os = "linux")]
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and sets one flag of this process; a
    // kernel without it returns an error, which changes nothing.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() {}
