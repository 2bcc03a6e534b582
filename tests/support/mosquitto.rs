//! Starting Mosquitto for a test: one place that spawns it with a configuration and waits for
//! its "running" line, draining its log so it never blocks on a full pipe.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `mosquitto -c conf` in `dir` and returns it once it logs that it is running (the
/// configuration must have `log_dest stderr`). Panics with its log if it does not start
/// within 20 s, after stopping it.
pub fn spawn(dir: &Path, conf: &Path) -> Child {
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after "running" so the broker never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains("running") => return child,
            Ok(line) => log.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mosquitto did not start: {}", log.join("\n"))
            }
        }
    }
}

/// A Mosquitto process started for a test on a port of its own, killed on drop.
pub struct Mosquitto {
    child: Child,
    /// The port its TLS listener is on.
    pub port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// Starts Mosquitto in `dir` with the configuration file `conf`, whose listener is `port`.
    pub fn start(dir: &Path, conf: &Path, port: u16) -> Self {
        let child = spawn(dir, conf);
        Self { child, port }
    }

    /// Writes `conf` (given a free port for its listener) to `dir/file` and starts Mosquitto
    /// with it.
    pub fn inline(dir: &Path, file: &str, conf: impl FnOnce(u16) -> String) -> Self {
        let port = super::free_port();
        std::fs::write(dir.join(file), conf(port)).expect("mosquitto config written");
        Self::start(dir, Path::new(file), port)
    }
}

/// A Mosquitto password file at `path` holding `device-00001` .. `device-{count}`, each with
/// `password` (`mosquitto_passwd -b`).
pub fn passwords(path: &Path, count: u32, password: &str) {
    std::fs::write(path, "").expect("password file");
    for n in 1..=count {
        let status = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(path)
            .arg(format!("device-{n:05}"))
            .arg(password)
            .status()
            .expect("mosquitto_passwd runs");
        assert!(status.success(), "mosquitto_passwd device-{n:05}");
    }
}
