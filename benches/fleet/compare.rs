//! Comparing fleetbench with a baseline: alternating rounds, each side's medians with their
//! spreads, and the median of the paired rounds' ratios.

use std::sync::Arc;

use fleetbench::load;
use fleetbench::metrics::{Recorder, Snapshot};
use fleetbench::scenario::Plan;
use tokio_util::sync::CancellationToken;

use super::stats::{ratios, Spread};
use super::{client_tls, endpoint, fleet, measured, rounds, Lab};

/// One comparison: its title, what each side does, and the ratio it aims at.
pub(crate) struct Comparison<'a> {
    pub(crate) title: String,
    pub(crate) fleet_label: &'a str,
    pub(crate) bare_label: &'a str,
    /// What each side does, printed under the figures.
    pub(crate) notes: &'a [&'a str],
    /// The ratio (fleetbench / bare per client CPU-second) aimed at, at least, if any.
    pub(crate) aim: Option<f64>,
}

impl Comparison<'_> {
    /// Runs both sides `rounds()` times, alternating which goes first, then prints each side's
    /// median with its spread and every round, and the median of the paired rounds' ratios
    /// with its spread.
    pub(crate) fn run(&self, mut fleetbench: impl FnMut() -> Rate, mut bare: impl FnMut() -> Rate) {
        // One side alone, for profiling it: FLEETBENCH_BENCH_SIDE=fleetbench or bare.
        if let Ok(side) = std::env::var("FLEETBENCH_BENCH_SIDE") {
            let (label, f): (_, &mut dyn FnMut() -> Rate) = match side.as_str() {
                "fleetbench" => (self.fleet_label, &mut fleetbench),
                _ => (self.bare_label, &mut bare),
            };
            let rounds: Vec<_> = (0..rounds()).map(|_| f()).collect();
            println!("{} ({side} side only)", self.title);
            Rate::print(label, &rounds);
            println!();
            return;
        }
        let (mut fb, mut bb) = (Vec::new(), Vec::new());
        for round in 0..rounds() {
            if round % 2 == 0 {
                fb.push(fleetbench());
                bb.push(bare());
            } else {
                bb.push(bare());
                fb.push(fleetbench());
            }
        }
        println!("{}", self.title);
        Rate::print(self.fleet_label, &fb);
        Rate::print(self.bare_label, &bb);
        for note in self.notes {
            println!("   {note}");
        }
        let per_cpu = |r: &[Rate]| r.iter().map(|r| r.per_cpu).collect::<Vec<_>>();
        let each = ratios(&per_cpu(&fb), &per_cpu(&bb));
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
    /// Runs the plan; `count` picks what to count from the recorder's totals.
    pub(crate) fn rate(&self, what: &'static str, count: impl Fn(&Snapshot) -> u64) -> Rate {
        let rec = Arc::new(Recorder::new());
        let root = self.lab.root();
        let (_, cpu, wall) = measured(|| {
            self.rt
                .block_on(load::run(
                    self.plan,
                    fleet(&self.lab.chain, self.devices),
                    endpoint(self.port),
                    client_tls(&root, self.resumption),
                    rec.clone(),
                    CancellationToken::new(),
                ))
                .unwrap()
        });
        let s = rec.snapshot();
        assert_eq!(s.sessions_failed, 0, "{:?}", rec.failures());
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

/// Events (sessions, acknowledgements) per client CPU-second and per wall second of one round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    what: &'static str,
    count: u64,
    per_cpu: f64,
    per_wall: f64,
}

impl Rate {
    pub(crate) fn new(what: &'static str, count: u64, cpu: f64, wall: f64) -> Self {
        Self {
            what,
            count,
            per_cpu: count as f64 / cpu,
            per_wall: count as f64 / wall,
        }
    }

    /// One side's medians with spreads, client CPU per event, and every round.
    fn print(label: &str, rounds: &[Self]) {
        let pick =
            |f: fn(&Self) -> f64| Spread::of(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap();
        let (cpu, wall, count) = (
            pick(|r| r.per_cpu),
            pick(|r| r.per_wall),
            pick(|r| r.count as f64),
        );
        let each: Vec<_> = rounds.iter().map(|r| format!("{:.0}", r.per_cpu)).collect();
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
