//! Real Redis and PostgreSQL servers for the scale-out tests, each on a free loopback port with
//! its data in a temporary directory, stopped when dropped. `.ci/run` installs `redis-server`;
//! PostgreSQL's `initdb`/`pg_ctl` come from Debian's `postgresql` (run as the `postgres` user when
//! the tests run as root, which PostgreSQL refuses to be).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
}

impl Redis {
    pub fn start() -> Self {
        let port = super::llama::free_port();
        let mut r = Self { child: None, port, url: format!("redis://127.0.0.1:{port}") };
        r.restart();
        r
    }

    /// Starts the server (again) on the same port, empty.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        // stdout too: redis-server logs there.
        let log = super::process::log_path("redis-server");
        let file = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("redis-server (Debian package redis-server; .ci/run installs it)");
        let port = self.port;
        super::process::wait_ready(&mut child, "redis-server", &log, Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL): clients see connection errors.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    pub url: String,
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL binaries in /usr/lib/postgresql (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs a PostgreSQL tool, as `postgres` when we are root.
fn pg(bin: &std::path::Path, tool: &str, args: &[&str]) {
    let exe = bin.join(tool);
    let status = if is_root() {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).stdout(Stdio::null()).status()
    } else {
        Command::new(&exe).args(args).stdout(Stdio::null()).status()
    }
    .unwrap_or_else(|e| panic!("{tool}: {e}"));
    // pg_ctl's own log (-l) says why the server did not start.
    let log = args.windows(2).find(|w| w[0] == "-l").map(|w| super::process::tail(std::path::Path::new(w[1]), 30));
    assert!(status.success(), "{tool} {args:?} failed with {status}; log:\n{}", log.unwrap_or_default());
}

impl Postgres {
    pub fn start() -> Self {
        let bin = pg_bin();
        let port = super::llama::free_port();
        let dir = std::env::temp_dir().join(format!("tollgate-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]).status().unwrap();
            assert!(ok.success());
        }
        let data = dir.join("data");
        let d = data.to_str().unwrap();
        pg(&bin, "initdb", &["-D", d, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.display());
        pg(&bin, "pg_ctl", &["-D", d, "-o", &opts, "-l", dir.join("log").to_str().unwrap(), "-w", "start"]);
        wait_port(port, "postgres");
        Self { dir, bin, url: format!("postgres://postgres@127.0.0.1:{port}/postgres") }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.dir.join("data");
        pg(&self.bin, "pg_ctl", &["-D", d.to_str().unwrap(), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
