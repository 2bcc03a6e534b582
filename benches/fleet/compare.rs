//! Comparing fleetbench with a baseline: both sides in two child processes at once on one core
//! (the default) or taking turns on it (`together.rs`), or in alternating rounds in this
//! process, then each side's medians with their spreads, and the median of the paired rounds'
//! ratios.

use std::sync::Arc;

use fleetbench::load;
use fleetbench::metrics::{Recorder, Snapshot};
use fleetbench::scenario::Plan;
use tokio_util::sync::CancellationToken;

use super::stats::{ratios, Spread};
use super::{client_tls, endpoint, fleet, measured, rounds, together, Lab, Server};

/// One comparison: its name, title, what each side does, and the ratio it aims at.
pub(crate) struct Comparison<'a> {
    /// What a side child is told to run (`together.rs`): `mqtt-full`, `amqp-messages`, ...
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) fleet_label: &'a str,
    pub(crate) bare_label: &'a str,
    /// What each side does, printed under the figures.
    pub(crate) notes: &'a [&'a str],
    /// The ratio (fleetbench / bare per client CPU-second) aimed at, at least, if any.
    pub(crate) aim: Option<f64>,
    pub(crate) lab: &'a Lab,
    /// The comparison's hub, which both sides use.
    pub(crate) server: &'a Server,
}

/// A side: one timed round, given the first device number of its ids (`together::FIRST`).
pub(crate) type SideFn<'s> = &'s mut dyn FnMut(u64) -> Rate;

impl Comparison<'_> {
    /// Runs both sides `rounds()` times in two child processes (`together.rs`) or in
    /// alternating rounds (`FLEETBENCH_BENCH_MODE=alternate`), then prints each side's median
    /// with its spread and every round, and the median of the paired rounds' ratios with its
    /// spread. Returns each side's rounds, or `None` when this process ran only one side (a side
    /// child, or `FLEETBENCH_BENCH_SIDE`).
    pub(crate) fn run(
        &self,
        mut fleetbench: impl FnMut(u64) -> Rate,
        mut bare: impl FnMut(u64) -> Rate,
    ) -> Option<[Vec<Rate>; 2]> {
        let [fb_first, bare_first] = together::FIRST;
        if let Some((name, slot)) = together::child_of() {
            if name == self.name {
                let (side, first): (SideFn, _) = match slot {
                    0 => (&mut fleetbench, fb_first),
                    _ => (&mut bare, bare_first),
                };
                together::serve(side, first);
            }
            return None;
        }
        // One side alone, for profiling it: FLEETBENCH_BENCH_SIDE=fleetbench or bare.
        if let Ok(side) = std::env::var("FLEETBENCH_BENCH_SIDE") {
            let (label, f, first): (_, SideFn, _) = match side.as_str() {
                "fleetbench" => (self.fleet_label, &mut fleetbench, fb_first),
                _ => (self.bare_label, &mut bare, bare_first),
            };
            let rounds: Vec<_> = (0..rounds()).map(|_| f(first)).collect();
            println!("{} ({side} side only)", self.title);
            Rate::print(label, &rounds);
            println!();
            return None;
        }
        let load_before = load_average();
        let [fb, bb] = if together::together() {
            together::run(&self.name, self.lab, self.server)
        } else {
            let (mut fb, mut bb) = (Vec::new(), Vec::new());
            for round in 0..rounds() {
                if round % 2 == 0 {
                    fb.push(fleetbench(fb_first));
                    bb.push(bare(bare_first));
                } else {
                    bb.push(bare(bare_first));
                    fb.push(fleetbench(fb_first));
                }
            }
            [fb, bb]
        };
        // Neither side's connections dropped by the hub (ids shared) nor failed at TLS.
        self.server.assert_clean();
        self.print(&fb, &bb, [load_before, load_average()]);
        Some([fb, bb])
    }

    fn print(&self, fb: &[Rate], bb: &[Rate], load: [String; 2]) {
        println!("{}", self.title);
        println!("   {}", how());
        println!(
            "   load average (1 min) {} at the start, {} at the end: a run's spread is within one \
             machine state; runs at other loads can differ by more",
            load[0], load[1]
        );
        Rate::print(self.fleet_label, fb);
        Rate::print(self.bare_label, bb);
        for note in self.notes {
            println!("   {note}");
        }
        let per_cpu = |r: &[Rate]| r.iter().map(Rate::per_cpu).collect::<Vec<_>>();
        let each = ratios(&per_cpu(fb), &per_cpu(bb));
        let ratio = Spread::of(&each).unwrap();
        let list: Vec<_> = each.iter().map(|r| format!("{r:.3}")).collect();
        println!("   ratio per client CPU-second, median of paired rounds: {ratio}");
        println!("   ratio rounds [{}]", list.join(", "));
        match self.aim {
            Some(aim) => println!("   aim >= {aim:.2}: {}\n", verdict(&ratio, aim)),
            None => println!(),
        }
    }
}

/// The machine's 1-minute load average (`/proc/loadavg`), or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// How the two sides were run, printed under each comparison's title.
fn how() -> String {
    let together = together::together();
    let core = match (super::PINNED_HUB.get().is_some(), together) {
        (false, _) => "(not pinned)",
        (true, true) => "sharing core 0",
        (true, false) => "(on core 0)",
    };
    if let (true, Some(turn)) = (together, together::turn()) {
        format!(
            "how: two processes {core} in turns of {} ms (one stopped while the other runs); \
             per-CPU rates are each side's own CPU; wall rates are shared (one hub, disjoint \
             device ids)",
            turn.as_millis()
        )
    } else if together {
        format!(
            "how: both sides at once, two processes {core}; per-CPU rates are each side's own \
             CPU; wall rates are shared (one hub, disjoint device ids)"
        )
    } else {
        format!("how: alternating rounds in this process {core}, the first side flipped each round")
    }
}

/// Whether the median's 95 % interval lies above the aim, below it, or across it.
fn verdict(ratio: &Spread, aim: f64) -> &'static str {
    let half = ratio.median_uncertainty() * ratio.median;
    if ratio.n < 3 {
        "not decided (fewer than 3 rounds)"
    } else if ratio.median - half >= aim {
        "met (the median's 95 % interval is above it)"
    } else if ratio.median + half < aim {
        "NOT met (the median's 95 % interval is below it)"
    } else {
        "not decided (the median's 95 % interval spans it)"
    }
}

/// One timed fleetbench run in the client runtime, against the lab's server.
pub(crate) struct FleetRun<'a> {
    pub(crate) rt: &'a tokio::runtime::Runtime,
    pub(crate) plan: &'a Plan,
    pub(crate) lab: &'a Lab,
    pub(crate) devices: u64,
    pub(crate) port: u16,
    pub(crate) resumption: bool,
}

impl FleetRun<'_> {
    /// Runs the plan with devices from number `first + 1`; `count` picks what to count from
    /// the recorder's totals.
    pub(crate) fn rate(
        &self,
        first: u64,
        what: &'static str,
        count: impl Fn(&Snapshot) -> u64,
    ) -> Rate {
        let rec = Arc::new(Recorder::new());
        let root = self.lab.root();
        let (_, cpu, wall) = measured(|| {
            self.rt
                .block_on(load::run(
                    self.plan,
                    fleet(&self.lab.chain, self.devices, first),
                    endpoint(self.port),
                    client_tls(&root, self.resumption),
                    rec.clone(),
                    CancellationToken::new(),
                ))
                .unwrap()
        });
        let s = rec.snapshot();
        // No failed session and no error (a dropped connection is one) on fleetbench's side.
        assert_eq!(
            (s.sessions_failed, s.errors),
            (0, 0),
            "{:?}",
            rec.failures()
        );
        if std::env::var_os("FLEETBENCH_BENCH_VERBOSE").is_some() {
            let kinds = rec.wire.summary();
            let count = |k: Option<&fleetbench::metrics::HandshakeKind>| k.map_or(0, |k| k.count);
            eprintln!(
                "   fleetbench round: {} handshakes, {} full, {} resumed, {cpu:.3} s CPU, {wall:.3} s wall",
                s.handshakes,
                count(kinds.as_ref().and_then(|k| k.full.as_ref())),
                count(kinds.as_ref().and_then(|k| k.resumed.as_ref())),
            );
        }
        Rate::new(what, count(&s), cpu, wall)
    }
}

/// One round of a side: events (sessions, acknowledgements) in so many client CPU seconds and
/// wall seconds, and the stream writes and flushes it counted, if it counts them.
#[derive(Debug, Clone)]
pub(crate) struct Rate {
    what: String,
    count: u64,
    cpu: f64,
    wall: f64,
    pub(crate) io: Option<(u64, u64)>,
}

impl Rate {
    pub(crate) fn new(what: &str, count: u64, cpu: f64, wall: f64) -> Self {
        Self {
            what: what.to_owned(),
            count,
            cpu,
            wall,
            io: None,
        }
    }

    fn per_cpu(&self) -> f64 {
        self.count as f64 / self.cpu
    }

    fn per_wall(&self) -> f64 {
        self.count as f64 / self.wall
    }

    /// The line a side child prints for a round (`together.rs`).
    pub(crate) fn to_line(&self) -> String {
        let (w, f) = self.io.map_or(("-".into(), "-".into()), |(w, f)| {
            (w.to_string(), f.to_string())
        });
        format!(
            "RATE {} {} {:.9} {:.9} {w} {f}",
            self.what, self.count, self.cpu, self.wall
        )
    }

    /// Reads `to_line`'s line.
    pub(crate) fn from_line(line: &str) -> Self {
        let bad = || panic!("a side child's round is not `RATE what count cpu wall w f`: {line}");
        let f: Vec<&str> = line.split(' ').collect();
        let [_, what, count, cpu, wall, w, fl] = f[..] else {
            bad()
        };
        let num = |s: &str| s.parse::<f64>().unwrap_or_else(|_| bad());
        let mut rate = Self::new(
            what,
            count.parse().unwrap_or_else(|_| bad()),
            num(cpu),
            num(wall),
        );
        rate.io = w.parse().ok().zip(fl.parse().ok());
        rate
    }

    /// One side's medians with spreads, client CPU per event, and every round.
    fn print(label: &str, rounds: &[Self]) {
        let pick =
            |f: fn(&Self) -> f64| Spread::of(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap();
        let (cpu, wall, count) = (
            pick(Self::per_cpu),
            pick(Self::per_wall),
            pick(|r| r.count as f64),
        );
        let each: Vec<_> = rounds
            .iter()
            .map(|r| format!("{:.0}", r.per_cpu()))
            .collect();
        println!(
            "   {label}: median {:.0} {} per client CPU-second (IQR {:.0}-{:.0}, min-max {:.0}-{:.0}), \
             {:.1} µs client CPU each, {:.0}/s wall, {:.0} per round",
            cpu.median,
            rounds[0].what,
            cpu.q1,
            cpu.q3,
            cpu.min,
            cpu.max,
            1e6 / cpu.median,
            wall.median,
            count.median,
        );
        println!("      rounds [{}]", each.join(", "));
    }
}
