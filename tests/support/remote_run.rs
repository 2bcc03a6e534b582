//! `fleetbench run` through the binary against a remote hub (a `hub serve` child): the
//! scenario's target table and a run watched through its live metrics.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

/// The `[target]` table for the remote hub at `addr` (certificate for `localhost`), trusting
/// the root in `ca_file`.
pub fn target(addr: &str, ca_file: &Path) -> String {
    format!(
        "[target]\nhub = \"remote\"\naddress = \"{addr}\"\nserver-name = \"localhost\"\n\
         ca-file = \"{}\"\n",
        ca_file.display()
    )
}

/// `fleetbench -v run --quiet --metrics 127.0.0.1:0 --ca CA --results RESULTS SCENARIO` with
/// stdout and stderr piped, once it has announced its live metrics address: the child, that
/// address and the thread collecting its log (see [`super::metrics_address`]).
pub fn spawn_with_metrics(
    ca: &Path,
    results: &Path,
    scenario: &Path,
) -> (Child, SocketAddr, JoinHandle<String>) {
    let mut run = Command::new(env!("CARGO_BIN_EXE_fleetbench"))
        .args(["-v", "run", "--quiet", "--metrics", "127.0.0.1:0", "--ca"])
        .arg(ca)
        .arg("--results")
        .arg(results)
        .arg(scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleetbench run starts");
    let (metrics, log) = super::metrics_address(&mut run);
    (run, metrics, log)
}
