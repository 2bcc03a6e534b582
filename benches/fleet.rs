//! Generator benchmarks, each against a bare client doing the same work, measured in the same
//! run on the same machine against the same server (what each side does is printed with it):
//!
//! 1. handshakes: MQTT sessions per client CPU-second in churn mode (k = 0: TCP, TLS 1.3 mutual
//!    auth, CONNECT/CONNACK, DISCONNECT), full and resumed, against a bare tokio-rustls +
//!    mqttbytes client; the same for AMQP (open/begin/attach, then detach/end/close) against a
//!    bare fe2o3 client;
//! 2. memory: client RSS per idle mutual-TLS MQTT session with 10,000 held, against a `Vec` of
//!    bare TLS streams (the floor) and a bare client with one task per connection;
//! 4. messages: QoS 1 publishes acknowledged per client CPU-second over 100 sessions, against a
//!    bare pipelined publisher (same bytes, writes batched); AMQP transfers settled per client
//!    CPU-second against a bare fe2o3 sender;
//! 5. recording: nanoseconds per histogram sample on the hot path, against a bare hdrhistogram;
//!
//! and, only when asked (`cargo bench --bench fleet -- concurrency`):
//! 3. concurrency: 19,000 sessions from this process, held 60 s with keep-alives.
//!
//! Every comparison of 1 and 4 runs its two sides AT THE SAME TIME by default ("together",
//! `fleet/together.rs`): two child processes of this binary, one per side, both pinned to core 0,
//! each timing its own process CPU, round after round (`FLEETBENCH_BENCH_ROUNDS`, default 7),
//! so that the machine's drift in speed (other tenants of a VM, 15-30 % within seconds) falls on
//! both sides alike and cancels in each round's ratio. Per-CPU rates are each side's own CPU;
//! wall rates are shared between the two. `FLEETBENCH_BENCH_MODE=turns` has the two children
//! take turns on the core instead, 50 ms each, the other stopped (each side with the core's
//! caches to itself); `alternate` runs the sides in alternating rounds in this process (the
//! first side flipped each round), for comparing the methods; `FLEETBENCH_BENCH_SIDE=fleetbench`
//! or `bare` runs one side alone.
//! Both report medians with their spreads (`support/stats.rs`), never the best round.
//! The hub always runs in a child process (this binary re-executed as the server, on the last
//! core) so that a client's CPU time is the generator's alone; both sides of a comparison use
//! that one hub with disjoint device ids. Client runtimes have one worker thread: "per core".

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "fleet/bare.rs"]
mod bare;
#[path = "fleet/compare.rs"]
mod compare;
#[path = "fleet/handshakes.rs"]
mod handshakes;
#[path = "fleet/lab.rs"]
mod lab;
#[path = "fleet/memory.rs"]
mod memory;
#[path = "fleet/messages.rs"]
mod messages;
#[path = "support/stats.rs"]
mod stats;
#[path = "fleet/together.rs"]
mod together;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetbench::load::Fleet;
use fleetbench::metrics::{Phase, Recorder};
use fleetbench::pki::{CaChain, DeviceIds, IdTemplate, KeyType, Validity};
use fleetbench::scenario::{Overrides, Plan, Scenario};
use fleetbench::transport::{ClientTls, Endpoint, ServerVerification, TlsVersion};
use rustls::pki_types::{CertificateDer, ServerName};

use compare::{Comparison, FleetRun, Rate};
use lab::{chain_from, Lab, Server};

const ROLE: &str = "FLEETBENCH_BENCH_ROLE";
const IDS: &str = "bench-{n:05}";
const FLEET: u64 = 20_000;
/// The core the child hub pins itself to, when the client is pinned (`FLEETBENCH_BENCH_PIN=0`:
/// neither is).
const HUB_CORE: &str = "FLEETBENCH_BENCH_HUB_CORE";
/// The hub's core when the client is pinned (`Lab::server` tells the child).
static PINNED_HUB: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => {
            if let Some(core) = std::env::var(HUB_CORE).ok().and_then(|c| c.parse().ok()) {
                pin(core);
            }
            return lab::server(Path::new(&std::env::args().nth(1).unwrap()));
        }
        Ok("side") => return together::child_main(),
        Ok(role) => return memory::client_role(role),
        Err(_) => {}
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let only = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    // The client (and the child clients, which inherit it) on the first core, the hub on the
    // last: neither side's CPU per event then depends on where the scheduler put them.
    let cores = cores();
    let pinned =
        cores > 1 && std::env::var("FLEETBENCH_BENCH_PIN").map_or(true, |v| v != "0") && pin(0);
    if pinned {
        // The child hub goes to the last core (`Lab::server`).
        let _ = PINNED_HUB.set(cores - 1);
    }
    let lab = Lab::new();
    println!(
        "fleetbench generator benchmarks ({cores} cores, {} rounds per comparison, {}; {})\n",
        rounds(),
        if together::turn().is_some() {
            "both sides of a comparison in two client processes taking turns on the core"
        } else if together::together() {
            "both sides of a comparison at once, in two client processes"
        } else {
            "alternating rounds of the two sides in this process"
        },
        if pinned {
            "clients pinned to core 0, hub to the last core"
        } else {
            "not pinned"
        }
    );
    // `handshakes` runs the four; `mqtt-full`, `amqp-resumed`, ... one of them.
    for (protocol, resumed, name) in [
        ("mqtt", false, "mqtt-full"),
        ("mqtt", true, "mqtt-resumed"),
        ("amqp", false, "amqp-full"),
        ("amqp", true, "amqp-resumed"),
    ] {
        if only("handshakes") || only(name) {
            match protocol {
                "mqtt" => handshakes::mqtt(&lab, resumed),
                _ => handshakes::amqp(&lab, resumed),
            }
        }
    }
    if only("memory") {
        memory::memory(&lab);
    }
    if only("messages") || only("mqtt-messages") {
        messages::mqtt(&lab);
    }
    if only("messages") || only("amqp-messages") {
        messages::amqp(&lab);
    }
    if only("recording") {
        recording();
    }
    if args.iter().any(|a| a == "concurrency") {
        memory::concurrency(&lab);
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins this thread (and the threads and processes it starts later) to `core`; whether it did.
fn pin(core: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(core);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// Rounds per comparison: `FLEETBENCH_BENCH_ROUNDS`, default 7.
fn rounds() -> usize {
    env_count("FLEETBENCH_BENCH_ROUNDS", 7) as usize
}

/// A positive whole number from the environment variable `name`, else `default`.
fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn ids(n: u64) -> DeviceIds {
    ids_from(n, 0)
}

/// `n` ids from `bench-{first + 1}` (`DeviceIds` counts from shard + 1 in steps of 1).
fn ids_from(n: u64, first: u64) -> DeviceIds {
    DeviceIds::new(IdTemplate::parse(IDS).unwrap(), first + n, first, 1)
}

fn plan(toml: &str) -> Plan {
    let s = Scenario::parse(toml, Path::new("bench.toml")).unwrap();
    Plan::new(
        &s,
        toml,
        Path::new("bench.toml"),
        "bench",
        &Overrides::default(),
    )
    .unwrap()
}

pub(crate) fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        addr: ([127, 0, 0, 1], port).into(),
        server_name: ServerName::try_from("localhost").unwrap().to_owned(),
        host: "localhost".into(),
        websocket: None,
    }
}

pub(crate) fn client_tls(root: &CertificateDer<'static>, resumption: bool) -> ClientTls {
    let roots = ClientTls::roots(std::slice::from_ref(root)).unwrap();
    ClientTls::new(
        TlsVersion::Tls13,
        ServerVerification::Roots(roots),
        resumption,
    )
}

/// This process's CPU time (user + system, every thread) to the nanosecond:
/// `/proc/self/stat` counts in 10 ms ticks, 1 % of a round's CPU.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec.unsigned_abs(), t.tv_nsec.unsigned_abs() as u32)
}

/// CPU seconds (user + system) and wall seconds of `f`.
fn measured<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (c0, w0) = (process_cpu(), Instant::now());
    let out = f();
    (
        out,
        process_cpu().saturating_sub(c0).as_secs_f64(),
        w0.elapsed().as_secs_f64(),
    )
}

/// `n` devices from `bench-{first + 1}`.
pub(crate) fn fleet(chain: &Arc<CaChain>, n: u64, first: u64) -> Fleet {
    Fleet {
        ca: chain.clone(),
        ids: ids_from(n, first),
        key_type: KeyType::EcdsaP256,
        validity: Validity::default(),
    }
}

fn recording() {
    let n = 10_000_000u64;
    let rec = Recorder::new();
    let (_, _, fb) = measured(|| {
        for i in 0..n {
            rec.record(
                Phase::PublishAck,
                (i & 7) as usize,
                Duration::from_micros(50 + (i & 1023)),
            );
        }
    });
    let mut h = fleetbench::metrics::new_histogram();
    let (_, _, bare) = measured(|| {
        for i in 0..n {
            h.saturating_record(std::hint::black_box(50 + (i & 1023)));
        }
    });
    std::hint::black_box(&h);
    let (fb_ns, bare_ns) = (fb * 1e9 / n as f64, bare * 1e9 / n as f64);
    println!("5. cost of recording one latency sample ({n} samples, one thread, one round)");
    println!("   fleetbench Recorder::record : {fb_ns:>5.1} ns   (sharded lock + histogram)");
    println!("   bare Histogram::record      : {bare_ns:>5.1} ns");
    println!("   ratio: {:.2}\n", fb_ns / bare_ns);
}

/// `dir` and `port` of a child client role.
fn role_args() -> (PathBuf, u16) {
    let args: Vec<String> = std::env::args().collect();
    (PathBuf::from(&args[1]), args[2].parse().unwrap())
}
