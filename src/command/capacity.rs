//! `fleetbench run` on a scenario with `[capacity]`: a search for the highest offered rate
//! whose trials hold the SLO. It steps the rate up by `factor` while trials hold, then bisects
//! between the last rate that held and the first that failed until the bracket is within
//! `precision`, and stops early when the generator saturates (then the generator, not the
//! target, was the limit).
//!
//! Each trial is an ordinary run (its own results directory under the search's) in the open
//! model: a connect search churns (connect, send `churn.messages`, disconnect) at the offered
//! rate for the hold time, so that sessions never pile up and each trial offers exactly its
//! rate; a send search connects the fleet once and sends at the offered total rate. The
//! embedded hub, when the target is, is started once for every trial (the trials reach it as
//! a remote target), so that one hub's state carries from trial to trial as it would on a
//! real hub, and so that setting it up is not part of any trial.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::embedded::EmbeddedHub;
use super::run::{run_plan, RunOptions, RunReport};
use crate::metrics::{Metric, Phase, Stat, Summary};
use crate::pki::store::{load_ca_dir, pem};
use crate::pki::{CaChain, ChainSpec, Validity};
use crate::report::capacity::{
    write_capacity_html, write_capacity_json, write_capacity_text, write_trial_line, Capacity,
    CapacityCheckResult, Limit, Trial,
};
use crate::report::ResultsDir;
use crate::scenario::schedule::{Arrival, ConnectSchedule};
use crate::scenario::{CapacityPlan, Plan, SearchKind, SendModel, SessionPlan, Target};
use crate::Outcome;

mod search;
use search::Search;

/// An achieved rate below this share of the offered one fails a trial: the target (or the
/// generator) did not keep up with the offered load, whatever the latencies say.
const KEPT_UP: f64 = 0.9;

/// The generator's CPU use (of all cores, averaged over a trial) at which it is the limit, as
/// the run summary judges it.
const CPU_BUSY: f64 = 0.9;

/// Runs the search of `plan` (which has `[capacity]`) and reports it.
pub(super) async fn command(plan: &Plan, options: &RunOptions) -> anyhow::Result<Outcome> {
    let search = plan
        .capacity
        .as_ref()
        .context("the scenario has no [capacity] table")?;
    anyhow::ensure!(
        options.shard.is_none() && options.start_at.is_none(),
        "a capacity search runs its trials from one generator: --shard and --start-at do not \
         apply to a scenario with [capacity]"
    );
    let dir = ResultsDir::create(
        &options.results_root,
        &format!("{}-capacity", plan.name),
        SystemTime::now(),
    )?;
    for warning in plan.quota_warnings() {
        tracing::debug!("{warning} (expected: a capacity search offers rates above it)");
    }
    let target = Trials::start(plan, dir.path()).await?;
    let found = run_search(plan, search, &target, options, dir.path()).await;
    target.stop().await;
    let capacity = found?;
    let mut text = Vec::new();
    write_capacity_text(&mut text, &capacity)?;
    dir.write("capacity.txt", &text)?;
    let mut json = Vec::new();
    write_capacity_json(&mut json, &capacity)?;
    dir.write("capacity.json", &json)?;
    let mut html = Vec::new();
    write_capacity_html(&mut html, &capacity)?;
    dir.write("capacity.html", &html)?;
    let mut out = std::io::stdout().lock();
    super::write_or_broken_pipe(std::io::Write::write_all(&mut out, b"\n"))?;
    super::write_or_broken_pipe(std::io::Write::write_all(&mut out, &text))?;
    Ok(if capacity.passed {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    })
}

/// Where the trials run: the scenario's remote target, or an embedded hub started once.
struct Trials {
    target: Target,
    /// The chain every trial's devices are signed by, kept in memory (never written out).
    chain: Option<Arc<CaChain>>,
    hub: Option<EmbeddedHub>,
}

impl Trials {
    async fn start(plan: &Plan, dir: &Path) -> anyhow::Result<Self> {
        if plan.target != Target::Embedded {
            return Ok(Self {
                target: plan.target.clone(),
                chain: None,
                hub: None,
            });
        }
        // One chain for every trial, handed to each in memory: the hub trusts it.
        let chain = match &plan.fleet.ca_dir {
            Some(ca) => load_ca_dir(&ca.path)
                .with_context(|| format!("loading fleet.ca-dir {}", ca.path.display()))?,
            None => CaChain::generate(&ChainSpec {
                key_type: plan.fleet.ca_key_type,
                intermediates: plan.fleet.intermediates,
                validity: Validity::days_from_now(plan.fleet.validity_days),
                name: "fleetbench".into(),
            })
            .context("minting the CA chain")?,
        };
        let mut config = options_hub(plan);
        config.tls = plan.tls.hub.clone();
        let hub = EmbeddedHub::start(&chain, config).await?;
        hub.hub
            .registry
            .add_verified_ca("fleetbench-root", chain.root().cert().clone())?;
        hub.hub.registry.register_ca_signed_on_demand();
        let roots = dir.join("hub-root.pem");
        std::fs::write(&roots, pem("CERTIFICATE", chain.root().cert().as_ref()))
            .with_context(|| format!("writing {}", roots.display()))?;
        Ok(Self {
            target: Target::Remote {
                address: hub.addr_for(&plan.protocol).to_string(),
                server_name: "localhost".into(),
                ca_file: Some(roots),
                verify_server: true,
                accounts: None,
            },
            chain: Some(Arc::new(chain)),
            hub: Some(hub),
        })
    }

    async fn stop(self) {
        if let Some(hub) = self.hub {
            hub.stop().await;
        }
    }

    /// The plan of one trial at `rate`: the scenario's, with the offered rate, the hold and
    /// the SLO of the search, against the search's target.
    fn plan(&self, base: &Plan, c: &CapacityPlan, n: usize, rate: f64, hold: Duration) -> Plan {
        let mut p = base.clone();
        p.capacity = None;
        p.name = format!("trial-{n:02}-{rate:.0}");
        p.target = self.target.clone();
        // The embedded hub throttles as the tier does already; a remote one is what it is.
        p.tier = None;
        p.thresholds = c.slo.clone();
        p.run.max_duration = p.run.max_duration.max(hold * 2 + p.run.grace);
        match c.search {
            SearchKind::Connects => {
                let arrival = match base.connect.schedule {
                    ConnectSchedule::Rate { arrival, .. } => arrival,
                    _ => Arrival::Constant,
                };
                p.connect.schedule = ConnectSchedule::Rate { rate, arrival };
                if !matches!(base.session, SessionPlan::Churn { .. }) {
                    // A bare handshake benchmark unless the scenario's [churn] says otherwise.
                    p.messages.count = 0;
                }
                p.session = SessionPlan::Churn { duration: hold };
            }
            SearchKind::Sends => {
                let devices = p.fleet.devices.max(1) as f64;
                p.messages.model = SendModel::Open {
                    interval: Duration::from_secs_f64(devices / rate),
                };
                p.messages.count = u32::MAX;
                p.messages.duration = Some(hold);
                p.session = SessionPlan::Once { hold: None };
            }
        }
        p
    }
}

/// The embedded hub's configuration: the scenario's tier, for the hub that every trial meets.
fn options_hub(plan: &Plan) -> crate::hub::HubConfig {
    crate::hub::HubConfig {
        throttle: plan.tier,
        ..crate::hub::HubConfig::default()
    }
}

/// Steps up, then bisects; every trial is printed as it ends.
async fn run_search(
    plan: &Plan,
    c: &CapacityPlan,
    target: &Trials,
    options: &RunOptions,
    dir: &Path,
) -> anyhow::Result<Capacity> {
    let trial_options = RunOptions {
        results_root: dir.to_owned(),
        quiet: true,
        shard: None,
        start_at: None,
        metrics: None,
        ca: target.chain.clone(),
        ..options.clone()
    };
    let mut state = Search::new(c);
    let mut trials = Vec::new();
    let heading = format!(
        "Capacity search of {} ({}): {}; trials of {} each (the knee confirmed over three times that)\n",
        plan.name,
        c.search.name(),
        state.describe(),
        humantime::format_duration(c.hold)
    );
    super::write_or_broken_pipe(std::io::Write::write_all(
        &mut std::io::stdout().lock(),
        heading.as_bytes(),
    ))?;
    while let Some((rate, stage)) = state.next() {
        if options.interrupt.is_cancelled() {
            state.limit = Some(Limit::Interrupted);
            break;
        }
        let n = trials.len() + 1;
        // The knee is confirmed by a trial three times as long: a target's burst allowance,
        // saved between trials, weighs a third as much in it.
        let hold = if stage == "confirm" {
            c.hold * 3
        } else {
            c.hold
        };
        let report = run_plan(&target.plan(plan, c, n, rate, hold), &trial_options)
            .await
            .with_context(|| format!("trial {n} at {rate:.1}/s"))?;
        let trial = judge(n, stage, rate, c.search, &report);
        let mut out = std::io::stdout().lock();
        super::write_or_broken_pipe(write_trial_line(&mut out, &trial))?;
        if options.interrupt.is_cancelled() {
            // Cut short: kept for the record, but not judged.
            state.limit = Some(Limit::Interrupted);
        } else {
            state.record(rate, trial.held, trial.generator_limited);
        }
        trials.push(trial);
    }
    let knee = state.held();
    let verdict: Vec<_> = c
        .verdict
        .iter()
        .map(|v| CapacityCheckResult {
            metric: v.name.clone(),
            condition: v.condition.clone(),
            observed: knee,
            passed: v.holds(knee),
        })
        .collect();
    Ok(Capacity {
        scenario: plan.name.clone(),
        search: c.search.name().to_owned(),
        plan: c.to_json(),
        trials,
        knee,
        latency_limit_us: latency_limit(c),
        first_failed: state.failed,
        limit: state.limit.unwrap_or(Limit::Target),
        // An interrupted search found no knee to judge.
        passed: state.limit != Some(Limit::Interrupted) && verdict.iter().all(|v| v.passed),
        verdict,
        dir: dir.to_owned(),
    })
}

/// The SLO's limit on the p99 the curve shows, if it states one.
fn latency_limit(c: &CapacityPlan) -> Option<f64> {
    let phase = match c.search {
        SearchKind::Connects => Phase::ConnectResponse,
        SearchKind::Sends => Phase::SendResponse,
    };
    c.slo
        .iter()
        .find(|t| t.metric == Metric::Latency(phase, Stat::Percentile(99.0)))
        .map(|t| t.limit)
}

/// One trial's outcome from its summary: the SLO's conditions (and the default checks), and
/// whether the achieved rate kept up with the offered one.
fn judge(n: usize, stage: &str, offered: f64, kind: SearchKind, r: &RunReport) -> Trial {
    let s: &Summary = &r.summary;
    let (rate, phase) = match kind {
        SearchKind::Connects => (&s.rates.connects, "connect_response"),
        SearchKind::Sends => (&s.rates.acks, "send_response"),
    };
    let mut failed: Vec<String> = s
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| {
            let seen = t.observed.map_or_else(
                || "no data".to_owned(),
                |v| crate::report::format::observed(t.unit, v),
            );
            format!("{} {}: observed {seen}", t.metric, t.condition)
        })
        .collect();
    let achieved = rate.per_sec;
    if achieved.is_none_or(|a| a < offered * KEPT_UP) {
        failed.push(format!(
            "achieved rate below {:.0}% of offered",
            KEPT_UP * 100.0
        ));
    }
    if let crate::metrics::RunStatus::Partial { reason } = &s.status {
        failed.push(format!("stopped early: {reason}"));
    }
    let p99_us = s
        .phase(phase)
        .filter(|p| p.count > 0)
        .and_then(|p| crate::metrics::decode_histogram(&p.histogram).ok())
        .map(|h| h.value_at_quantile(0.99));
    // A trial that held offered its rate and met the SLO: whatever the generator's health,
    // the target held it.
    let limited = !failed.is_empty() && generator_limited(s, p99_us);
    let c = &s.counts;
    let attempts = c.sessions_attempted + c.messages_sent;
    Trial {
        n,
        stage: stage.to_owned(),
        offered,
        achieved,
        latency_phase: phase.to_owned(),
        p99_us,
        error_rate: (attempts > 0)
            .then(|| (c.sessions_failed + c.messages_unacked) as f64 / attempts as f64),
        held: failed.is_empty(),
        failed,
        saturated: s.generator.saturated,
        generator_limited: limited,
        saturation: s.generator.saturation_reasons.clone(),
        dir: r.dir.clone(),
    }
}

/// Whether the generator's saturation could account for a failed trial: its CPU was busy
/// (averaged over the trial), or its lag (timer or task start, p99) is at least half the p99
/// latency the trial measured. A loaded host's 50 ms of lag does not explain a p99 of 600 ms
/// (a queue at the target does); a generator that cannot keep its own schedule does.
fn generator_limited(s: &Summary, p99_us: Option<u64>) -> bool {
    let g = &s.generator;
    if !g.saturated {
        return false;
    }
    let lag = g.timer_lag_p99_us.unwrap_or(0).max(g.task_start_lag_p99_us);
    g.cpu_utilisation > CPU_BUSY || p99_us.is_none_or(|p| lag.saturating_mul(2) >= p)
}
