//! Helper processes for tests (llama-server, Redis, gateway replicas): stderr goes to a log file,
//! and a helper that dies while the test waits for it fails the test at once with its exit status
//! and the last lines of its stderr, instead of after a health-check timeout.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A log file for a helper's stderr under the test target's temporary directory.
pub fn log_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helper-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}-{}.log", std::process::id(), unique()))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The message a test fails with when a helper exited.
pub fn died(what: &str, status: ExitStatus, log: &Path) -> String {
    format!(
        "{what} exited with {status} while starting; last lines of its stderr ({}):\n{}",
        log.display(),
        tail(log, 30)
    )
}

/// Panics with the helper's exit status and stderr if it has exited.
pub fn assert_alive(child: &mut Child, what: &str, log: &Path) {
    if let Ok(Some(status)) = child.try_wait() {
        panic!("{}", died(what, status, log));
    }
}

/// Spawns `cmd` with stdout discarded and stderr in a fresh log file named after `what`.
pub fn spawn_logged(cmd: &mut Command, what: &str) -> (Child, PathBuf) {
    let log = log_path(what);
    let file = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({:?}): {e}", cmd.get_program()));
    (child, log)
}

/// Polls `ready` until it holds; fails at once if the helper exits, or after `timeout`, either
/// way with the helper's stderr in the message.
pub fn wait_ready(child: &mut Child, what: &str, log: &Path, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return;
        }
        assert_alive(child, what, log);
        assert!(
            Instant::now() < deadline,
            "{what} was not ready after {timeout:?}; last lines of its stderr ({}):\n{}",
            log.display(),
            tail(log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
