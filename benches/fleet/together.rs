//! The two side children of a comparison, the default way of comparing: each side runs in a
//! child process of this bench binary, both pinned to the same core (they inherit the parent's
//! pin to core 0; the hub child stays on the last core), and each times its own process CPU.
//! Round after round both start at once, and then:
//!
//! - by default they run AT THE SAME TIME ("together"), interleaved by the kernel at its own
//!   slices of a few milliseconds, so a drift of the machine's speed (other tenants of a VM,
//!   15-30 % within seconds) falls on both alike and cancels in the round's ratio. Each side
//!   then works with caches the other has just used, which costs the side with the larger
//!   working set more;
//! - with `FLEETBENCH_BENCH_MODE=turns` they TAKE TURNS: the parent stops one with SIGSTOP
//!   while the other runs, and swaps them every 50 ms (`FLEETBENCH_BENCH_TURN_MS`). Each side
//!   then has the core, its caches and the hub to itself, as a generator on a core of its own
//!   does, while drift over seconds still cancels; drift within a turn does not, so the spread
//!   is wider (BENCHMARKING.md: resumed MQTT reads about 1.3 points higher in turns, +-1 %
//!   against +-0.5 %).
//!
//! The protocol, one line each way: the child sets up and prints `READY`; for every `GO` on its
//! stdin it runs one round of its side (exactly the side's closure of the in-process mode,
//! minting inside the timed part) and prints `RATE <what> <count> <cpu s> <wall s> <writes>
//! <flushes>`. It exits when its stdin closes (so a parent that dies leaves no orphan), and
//! after `rounds()` rounds at most. The parent waits for every line with a timeout.
//!
//! Both sides use the comparison's one hub with disjoint device ids: the "fleetbench" slot from
//! `bench-00001`, the "bare" slot from `bench-10001` (the hub, like IoT Hub, keeps one
//! connection per device id and drops the older one).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use super::compare::Rate;
use super::{handshakes, messages, rounds, Lab, Server, ROLE};

/// The first device number of each slot, after `bench-` (`fleet.rs` registers `FLEET` ids).
pub(crate) const FIRST: [u64; 2] = [0, 10_000];
/// The child's comparison name, slot ("fleetbench" or "bare") and the hub's two ports.
const COMPARISON: &str = "FLEETBENCH_BENCH_COMPARISON";
const SLOT: &str = "FLEETBENCH_BENCH_SLOT";
const PORTS: &str = "FLEETBENCH_BENCH_PORTS";
/// How long the parent waits for a child's line (setup or one round).
const LINE_TIMEOUT: Duration = Duration::from_secs(180);

/// Whether comparisons run in two side children (the default) or in alternating rounds in this
/// process (`FLEETBENCH_BENCH_MODE=alternate`).
pub(crate) fn together() -> bool {
    std::env::var("FLEETBENCH_BENCH_MODE").map_or(true, |m| m != "alternate")
}

/// How long each side child has core 0 to itself in its turn when the two take turns
/// (`FLEETBENCH_BENCH_MODE=turns`): `FLEETBENCH_BENCH_TURN_MS`, default 50; `None` when they
/// run at once (the default).
pub(crate) fn turn() -> Option<Duration> {
    (std::env::var("FLEETBENCH_BENCH_MODE").as_deref() == Ok("turns"))
        .then(|| Duration::from_millis(super::env_count("FLEETBENCH_BENCH_TURN_MS", 50)))
}

/// In a side child: the comparison it runs and its slot (0 fleetbench, 1 bare).
pub(crate) fn child_of() -> Option<(String, usize)> {
    let name = std::env::var(COMPARISON).ok()?;
    let slot = usize::from(std::env::var(SLOT).ok()? == "bare");
    Some((name, slot))
}

/// A side child's `main`: rebuilds the lab from the parent's files and the hub's ports, then
/// runs the comparison's function, whose `Comparison::run` serves the slot (`serve`).
pub(crate) fn child_main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let ports = std::env::var(PORTS).unwrap();
    let mut ports = ports.split(' ').map(|p| p.parse().unwrap());
    let lab = Lab::open(dir, (ports.next().unwrap(), ports.next().unwrap()));
    let (name, _) = child_of().unwrap();
    match name.as_str() {
        "mqtt-full" => handshakes::mqtt(&lab, false),
        "mqtt-resumed" => handshakes::mqtt(&lab, true),
        "amqp-full" => handshakes::amqp(&lab, false),
        "amqp-resumed" => handshakes::amqp(&lab, true),
        "mqtt-messages" | "mqtt-write-per-message" => messages::mqtt(&lab),
        "amqp-messages" => messages::amqp(&lab),
        other => panic!("no comparison named {other}"),
    }
}

/// In the child: READY, then one round of `side` per GO, until stdin closes.
pub(crate) fn serve(side: &mut dyn FnMut(u64) -> Rate, first: u64) {
    say("READY");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines().take(rounds()) {
        match line.as_deref().map(str::trim) {
            Ok("GO") => say(&side(first).to_line()),
            _ => break,
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// In the parent: runs `rounds()` rounds of both slots, in turns or at once; each slot's rates.
pub(crate) fn run(name: &str, lab: &Lab, server: &Server) -> [Vec<Rate>; 2] {
    let mut sides = ["fleetbench", "bare"].map(|slot| Side::spawn(name, slot, lab, server));
    for side in &mut sides {
        side.expect("READY");
    }
    let mut rates = [Vec::new(), Vec::new()];
    let pids = sides.each_ref().map(|side| side.child.id());
    for round in 0..rounds() {
        for side in &mut sides {
            side.go();
        }
        // The first turn goes to each side in every other round. Dropped (both sides running
        // again) before the sides are: a stopped child cannot exit.
        let _turns = turn().map(|turn| Turns::start(pids, round % 2, turn));
        for (side, rates) in sides.iter_mut().zip(&mut rates) {
            rates.push(Rate::from_line(&side.expect("RATE ")));
        }
    }
    for side in sides {
        side.finish();
    }
    rates
}

/// Gives core 0 to one side child at a time, in turns of `turn` (the other is stopped with
/// SIGSTOP meanwhile), until dropped; then both run. Each side then has the core, its caches
/// and the hub to itself, as a generator on a core of its own does, while the machine's drift
/// over seconds still falls on both alike.
struct Turns {
    /// Dropped to end the turns (the thread's wait for a turn's end sees it at once).
    over: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Turns {
    fn start(pids: [u32; 2], first: usize, turn: Duration) -> Self {
        let (over, turn_over) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let pids = pids.map(|p| Pid::from_raw(p as i32).unwrap());
            let mut whose = first;
            loop {
                // A child that has exited after its last round is a zombie until waited for:
                // signalling it does nothing, and errors are of no interest here.
                let _ = kill_process(pids[1 - whose], Signal::STOP);
                let _ = kill_process(pids[whose], Signal::CONT);
                if turn_over.recv_timeout(turn) != Err(mpsc::RecvTimeoutError::Timeout) {
                    break;
                }
                whose = 1 - whose;
            }
            for pid in pids {
                let _ = kill_process(pid, Signal::CONT);
            }
        });
        Self {
            over: Some(over),
            thread: Some(thread),
        }
    }
}

impl Drop for Turns {
    fn drop(&mut self) {
        drop(self.over.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A side child, its stdin, and its stdout's lines (read by a thread, so waits time out).
struct Side {
    slot: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Side {
    fn spawn(name: &str, slot: &'static str, lab: &Lab, server: &Server) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(lab.dir())
            .env(ROLE, "side")
            .env(COMPARISON, name)
            .env(SLOT, slot)
            .env(PORTS, format!("{} {}", server.mqtt, server.amqp))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        // Ends when the child's stdout closes (its exit) or nobody listens any more.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            slot,
            child,
            stdin,
            lines,
        }
    }

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "GO").unwrap();
        stdin.flush().unwrap();
    }

    /// The child's next line starting with `prefix` (other lines go to stderr), or a panic
    /// naming the slot when the child exits or takes longer than `LINE_TIMEOUT`.
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => eprintln!("   ({} side) {line}", self.slot),
                Err(e) => panic!("the {} side gave no {prefix:?} line: {e}", self.slot),
            }
        }
    }

    /// Closes the child's stdin and checks that it exits cleanly.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the {} side exited with {status}",
            self.slot
        );
    }
}

impl Drop for Side {
    /// On a panic of the parent the child is killed; otherwise closing stdin ends it.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if std::thread::panicking() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
