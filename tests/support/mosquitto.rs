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
