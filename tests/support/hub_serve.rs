//! `fleetbench hub serve` as a child process: started on ephemeral ports, its addresses read from
//! the first line it prints ("… mqtts://ADDR … amqps://ADDR …; clients trust FILE"), stopped by
//! signal or kill.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

/// The stderr line announcing the Event Hubs-compatible endpoint's connection string.
const EVENTHUBS: &str = "event hubs-compatible endpoint: ";

/// A running `hub serve` and the first line it printed; killed when dropped (a failing test
/// leaves no hub behind).
pub struct HubServe {
    child: Child,
    /// Its first stdout line.
    pub line: String,
    /// The rest of its stdout (kept open, so that the summary it prints at exit has a reader).
    stdout: Option<BufReader<ChildStdout>>,
}

impl HubServe {
    /// `fleetbench hub serve --state STATE --mqtt MQTT` with stdout piped: add listeners, flags,
    /// environment, a working directory or stderr handling, then [`HubServe::start`].
    pub fn command(state: impl AsRef<OsStr>, mqtt: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetbench"));
        cmd.args(["hub", "serve", "--state"])
            .arg(state)
            .args(["--mqtt", mqtt])
            .stdout(Stdio::piped());
        cmd
    }

    /// `hub serve --state STATE --mqtt 127.0.0.1:0`, see [`HubServe::command`].
    pub fn ephemeral(state: impl AsRef<OsStr>) -> Command {
        Self::command(state, "127.0.0.1:0")
    }

    /// Spawns `cmd` (its stdout must be piped) and waits for its first line.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("hub serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("hub serve's first line");
        Self {
            child,
            line,
            stdout: Some(stdout),
        }
    }

    /// The address after `scheme` (`mqtts://`, `amqps://`) in the first line.
    pub fn address(&self, scheme: &str) -> String {
        self.line
            .split(scheme)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {scheme} address in {:?}", self.line))
            .to_owned()
    }

    /// The MQTT listener's address.
    pub fn mqtt(&self) -> String {
        self.address("mqtts://")
    }

    /// The MQTT listener's address, parsed.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt().parse().expect("a socket address")
    }

    /// The AMQP listener's address.
    pub fn amqp(&self) -> String {
        self.address("amqps://")
    }

    /// The file the first line tells clients to trust.
    pub fn server_root(&self) -> String {
        self.line
            .split("clients trust ")
            .nth(1)
            .unwrap_or_else(|| panic!("no root in {:?}", self.line))
            .trim()
            .to_owned()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The live metrics address announced on stderr (`--metrics 127.0.0.1:0`, stderr piped) and
    /// the thread collecting the whole log: see [`super::metrics_address`].
    pub fn metrics(&mut self) -> (SocketAddr, JoinHandle<String>) {
        super::metrics_address(&mut self.child)
    }

    /// The Event Hubs connection string announced on stderr (stderr piped); the rest of stderr
    /// is read and dropped on a thread, so that the hub never writes to a closed pipe.
    pub fn eventhubs(&mut self) -> String {
        let stderr = self.child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with(EVENTHUBS))
            .expect("the endpoint announced on stderr");
        std::thread::spawn(move || lines.for_each(drop));
        endpoint
            .strip_prefix(EVENTHUBS)
            .unwrap_or_else(|| panic!("{endpoint}"))
            .trim()
            .to_owned()
    }

    /// Reads and drops the rest of stdout on a thread.
    pub fn drain_stdout(&mut self) {
        if let Some(stdout) = self.stdout.take() {
            std::thread::spawn(move || stdout.lines().for_each(drop));
        }
    }

    /// Sends `signal` (`-TERM`, `-INT`, `-STOP`, `-CONT`) with kill(1); whether it was sent.
    pub fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Kills the hub (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("kill hub serve");
        let _ = self.child.wait();
    }

    /// Asks the hub to stop (SIGINT) and reaps it, whatever it answers.
    pub fn interrupt(mut self) {
        let _ = self.signal("-INT");
        let _ = self.child.wait();
    }

    /// Stops the hub with `signal` (`-TERM`, `-INT`): its exit status, what it printed on stdout
    /// after its first line, and its stderr when that was piped and not taken.
    pub fn stop(mut self, signal: &str) -> (ExitStatus, String, String) {
        assert!(self.signal(signal), "kill {signal} hub serve");
        // Both pipes at once, so that neither fills while the other is read.
        let stderr = self.child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut log = String::new();
                stderr.read_to_string(&mut log).expect("hub stderr");
                log
            })
        });
        let mut rest = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            stdout.read_to_string(&mut rest).expect("hub stdout");
        }
        let log = stderr.map_or_else(String::new, |t| t.join().expect("stderr reader"));
        let status = self.child.wait().expect("hub exits");
        (status, rest, log)
    }

    /// Kills the hub and returns its stderr (piped and not taken).
    pub fn kill_with_log(mut self) -> String {
        self.child.kill().expect("kill hub serve");
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut log).expect("hub stderr");
        }
        log
    }
}

impl Drop for HubServe {
    fn drop(&mut self) {
        // Not yet reaped (a reaped child's status is cached, so no other process is signalled).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
