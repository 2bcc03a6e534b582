//! `fleetbench run`: plan, PKI, the embedded hub (or a remote target), the fleet, the report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::hub::HubConfig;
use crate::load::{self, Fleet};
use crate::metrics::{CpuProbe, CpuSummary, Recorder, ServerCpu, Summary};
use crate::pki::export::Thumbprints;
use crate::pki::store::load_ca_dir;
use crate::pki::{CaChain, ChainSpec, DeviceIds, Validity};
use crate::report::{
    progress::{Progress, Totals},
    write_text, ResultsDir,
};
use crate::scenario::{FleetPlan, Overrides, Plan, ProtocolPlan, SessionPlan, Shard, Target};
use crate::transport::{ClientTls, Endpoint, ServerVerification};
use crate::Outcome;

pub use super::embedded::{bind_loopback, EmbeddedHub};
pub use super::summarize::{account, account_remote, summarize};

/// Options of a run besides the plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Root of results directories.
    pub results_root: PathBuf,
    /// No progress display.
    pub quiet: bool,
    /// Cancelled on Ctrl-C: stop the schedule and drain for at most the grace period.
    pub interrupt: CancellationToken,
    /// Cancelled on a second Ctrl-C: end every session at once (results are still written).
    pub abort: CancellationToken,
    /// Embedded hub behaviour.
    pub hub: HubConfig,
    /// Where to serve live metrics (OpenMetrics text), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The shard of the fleet to run (`None`: the whole fleet).
    pub shard: Option<Shard>,
    /// Wall-clock instant at which the schedule begins (`None`: as soon as ready).
    pub start_at: Option<SystemTime>,
    /// A CA chain already in memory that signs the devices (`None`: the plan's `fleet.ca-dir`,
    /// or one minted for this run). Runs that share one hub share one chain this way, with no
    /// private key written to disk.
    pub ca: Option<Arc<CaChain>>,
}

/// What a finished run leaves.
#[derive(Debug)]
pub struct RunReport {
    /// The summary written.
    pub summary: Summary,
    /// Where it was written.
    pub dir: PathBuf,
    /// Exit outcome.
    pub outcome: Outcome,
}

pub(super) async fn command(args: RunArgs) -> anyhow::Result<Outcome> {
    let overrides = Overrides {
        devices: args.devices,
        rate: args.rate,
        messages: args.messages,
        interval: args.interval,
        max_handshakes: args.max_handshakes,
        ca_dir: args.ca,
    };
    let plan = Plan::from_file(&args.scenario, &overrides)?;
    let shard = super::shard::resolve(args.shard, args.shard_index, args.shards)?;
    super::shard::check_plan(&plan, shard)?;
    let interrupt = load::Interrupt::new();
    // Registered before anything starts: from here on a signal never kills the process.
    let signals = Signals::new().context("watching for Ctrl-C and SIGTERM")?;
    tokio::spawn(interrupts(
        signals,
        interrupt.clone(),
        humantime::format_duration(plan.run.grace).to_string(),
    ));
    let options = RunOptions {
        results_root: args.results,
        quiet: args.quiet,
        interrupt: interrupt.stop,
        abort: interrupt.abort,
        hub: HubConfig::default(),
        metrics: args.metrics,
        shard,
        start_at: args.start_at,
        ca: None,
    };
    if plan.capacity.is_some() {
        return super::capacity::command(&plan, &options).await;
    }
    if let Some(matrix) = &plan.matrix {
        let sweep = super::sweep::SweepArgs {
            server_pid: args.server_pid,
            print_summary: args.print_summary,
        };
        return super::sweep::run(&plan, matrix, &options, sweep).await;
    }
    let report = run_measured(&plan, &options, args.server_pid).await?;
    let mut out = std::io::stdout().lock();
    super::write_or_broken_pipe(write_text(&mut out, &report.summary))?;
    super::write_or_broken_pipe(std::io::Write::write_all(
        &mut out,
        format!("{:<12}{}\n", "Results", report.dir.display()).as_bytes(),
    ))?;
    if args.print_summary {
        let mut line = serde_json::to_vec(&report.summary)?;
        line.push(b'\n');
        super::write_or_broken_pipe(std::io::Write::write_all(&mut out, &line))?;
    }
    Ok(report.outcome)
}

/// The first Ctrl-C or SIGTERM stops the run gracefully, the second ends it at once.
async fn interrupts(mut signals: Signals, interrupt: load::Interrupt, grace: String) {
    signals.next().await;
    tracing::warn!(
        "interrupted: stopping the schedule and draining for at most {grace} \
         (interrupt again to end every session now)"
    );
    interrupt.stop.cancel();
    signals.next().await;
    tracing::warn!("interrupted again: ending every session now");
    interrupt.abort.cancel();
}

/// SIGINT and SIGTERM, each registered once, so that none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a validated plan end to end and writes its results.
pub async fn run_plan(plan: &Plan, options: &RunOptions) -> anyhow::Result<RunReport> {
    run_measured(plan, options, None).await
}

/// [`run_plan`], reading the CPU time of the server process `server_pid` (on this host) over
/// the run; without it, the embedded hub's threads' (when the target is the embedded hub).
pub async fn run_measured(
    plan: &Plan,
    options: &RunOptions,
    server_pid: Option<u32>,
) -> anyhow::Result<RunReport> {
    let server_cpu = match (server_pid, &plan.target) {
        (Some(pid), _) => ServerCpu::Pid(pid),
        (None, Target::Embedded) => ServerCpu::Embedded,
        (None, _) => ServerCpu::None,
    };
    // Checked before anything starts: a wrong pid is an error, not a run without a figure.
    CpuProbe::start(server_cpu)?;
    let shard = options.shard.unwrap_or(Shard::WHOLE);
    // This shard's share of the load; `plan` stays the fleet's (summary, thresholds).
    let mut local = plan.for_shard(shard);
    // Each run (each shard) has its own id, carried by every message for the hub's accounting.
    let run = rand::random::<u64>();
    let run_id = format!("{run:016x}");
    set_run_id(&mut local.protocol, &run_id);
    let ids = DeviceIds::new(
        plan.fleet.ids.clone(),
        plan.fleet.devices,
        shard.index,
        shard.count,
    );
    // Limits first: a fleet that cannot fit is an error before anything is minted or bound.
    let peak = local
        .connect
        .schedule
        .peak_sessions()
        .unwrap_or(ids.len() as u64);
    let per_session = if plan.target == Target::Embedded {
        2
    } else {
        1
    };
    load::check_open_files(peak, per_session)?;
    if let Some(warning) = load::port_warning(peak, &plan.connect.source_addresses) {
        tracing::warn!("{warning}");
    }
    for warning in plan.quota_warnings() {
        tracing::warn!("{warning}");
    }
    // Created now, to fail before anything else on an unwritable location, but removed again
    // if setup fails: an empty results directory would break `merge shards/*/*`.
    let results = ResultsDir::create(&options.results_root, &plan.name, SystemTime::now())?;
    let unstarted = Unstarted::new(results.path());
    let chain = match &options.ca {
        Some(chain) => chain.clone(),
        None => Arc::new(signing_chain(&plan.fleet)?),
    };
    let fleet = Fleet {
        ca: chain.clone(),
        ids: ids.clone(),
        key_type: plan.fleet.key_type,
        validity: Validity::days_from_now(plan.fleet.validity_days),
    };

    let (endpoint, tls, hub) = match &plan.target {
        Target::Embedded => {
            let mut config = options.hub.clone();
            // A scenario that names a tier gets that tier's throttles on the embedded hub.
            config.throttle = config.throttle.or(plan.tier);
            config.tls = plan.tls.hub.clone();
            let hub = EmbeddedHub::start_with(&chain, config, plan.websocket.is_some()).await?;
            hub.hub
                .registry
                .add_verified_ca("fleetbench-root", chain.root().cert().clone())?;
            // Registered on first connection: setup does not grow with `fleet.devices`.
            hub.hub.registry.register_ca_signed_on_demand();
            let endpoint = Endpoint {
                addr: (hub.ws_addr_for(&plan.protocol)).unwrap_or(hub.addr_for(&plan.protocol)),
                server_name: ServerName::try_from("localhost")?.to_owned(),
                host: "localhost".into(),
                websocket: plan.websocket.clone(),
            };
            let roots = ClientTls::roots(std::slice::from_ref(chain.root().cert()))?;
            let tls = ClientTls::new(
                plan.tls.version,
                ServerVerification::Roots(roots),
                plan.tls.resumption,
            )
            .with_provider(
                plan.tls.provider,
                &plan.tls.cipher_suites,
                &plan.tls.groups,
            )?;
            (endpoint, tls, Some(hub))
        }
        Target::Remote {
            address,
            server_name,
            ca_file,
            verify_server,
            ..
        } => {
            let addr = tokio::net::lookup_host(address)
                .await
                .with_context(|| format!("resolving target.address {address:?}"))?
                .next()
                .with_context(|| format!("target.address {address:?} resolved to nothing"))?;
            let verification = match (verify_server, ca_file) {
                (true, Some(file)) => {
                    ServerVerification::Roots(ClientTls::roots(&read_roots(file)?)?)
                }
                _ => ServerVerification::Skip,
            };
            let endpoint = Endpoint {
                addr,
                server_name: ServerName::try_from(server_name.clone()).with_context(|| {
                    format!("target.server-name {server_name:?} is not a valid TLS server name")
                })?,
                host: server_name.clone(),
                websocket: plan.websocket.clone(),
            };
            (
                endpoint,
                ClientTls::new(plan.tls.version, verification, plan.tls.resumption).with_provider(
                    plan.tls.provider,
                    &plan.tls.cipher_suites,
                    &plan.tls.groups,
                )?,
                None,
            )
        }
    };

    let hub_accounts = match &plan.target {
        Target::Remote {
            accounts: Some(a), ..
        } => Some(a.as_str()),
        _ => None,
    };
    let accounts_before = match hub_accounts {
        Some(addr) => super::summarize::ask_hub_before(addr, &run_id).await,
        None => None,
    };
    let recorder = Arc::new(Recorder::new());
    let live = CancellationToken::new();
    if let Some(addr) = options.metrics {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve live metrics on {addr}"))?;
        let bound = listener.local_addr()?;
        tracing::info!("live metrics on http://{bound}/metrics");
        tokio::spawn(super::live::serve(listener, recorder.clone(), live.clone()));
    }
    let _stop_live = live.drop_guard();
    let verifying =
        match super::verify::start(plan, &mut local, run, &chain, &endpoint, &tls, &recorder).await
        {
            Ok(v) => v,
            Err(e) => {
                if let Some(hub) = hub {
                    hub.stop().await;
                }
                return Err(e);
            }
        };
    let progress = Progress::start(
        recorder.clone(),
        ids.len() as u64,
        progress_totals(plan, ids.len() as u64),
        options.start_at,
        options.quiet,
    );
    if let Some(at) = options.start_at {
        if let Err(e) = super::shard::wait_until(at, &options.interrupt).await {
            progress.finish();
            if let Some(hub) = hub {
                hub.stop().await;
            }
            return Err(e);
        }
    }
    let interrupt = load::Interrupt {
        stop: options.interrupt.clone(),
        abort: options.abort.clone(),
    };
    let cpu_probe = CpuProbe::start(server_cpu)?;
    let hub_cpu = super::cpu_split::HubCpu::start(hub.as_ref().map(|h| &h.hub));
    let result = if interrupt.is_cancelled() {
        Err(anyhow::anyhow!(
            "interrupted before the run started: nothing was run"
        ))
    } else {
        load::run(&local, fleet, endpoint, tls, recorder.clone(), interrupt)
            .await
            .map_err(anyhow::Error::from)
    };
    // Read before the embedded hub stops: its threads must still be there to be counted.
    let cpu_span = cpu_probe.finish();
    let hub_cpu = hub_cpu.finish();
    progress.finish();
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(hub) = hub {
                hub.stop().await;
            }
            return Err(e);
        }
    };
    unstarted.started();
    let delivery = super::verify::finish(verifying, plan, &ids, &result).await;

    let mut accounting = hub.as_ref().map(|h| account(&h.hub, &ids, &result));
    if let Some(hub) = hub {
        hub.stop().await;
    }
    if let Some(addr) = hub_accounts {
        let before = accounts_before.as_ref();
        accounting = super::summarize::ask_hub_after(addr, &run_id, before, &ids, &result).await;
    }
    let planned = local.planned_connect_rate(ids.len() as u64);
    let mut summary = summarize(
        plan,
        &recorder,
        &result,
        accounting,
        ids.len() as u64,
        planned,
    );
    super::verify::record(&mut summary, delivery);
    match cpu_span {
        Ok(span) => {
            let cpu = CpuSummary::new(&span, &summary);
            summary.cpu = Some(super::cpu_split::with_per_handshake(
                cpu, &recorder, hub_cpu,
            ));
        }
        Err(e) => tracing::warn!("no server CPU figure: {e}"),
    }
    summary.ca_fingerprint = Some(Thumbprints::of(chain.issuing().cert()).sha256);
    summary.run_id = Some(run_id.clone());
    if options.shard.is_some() {
        summary.shard = Some(super::shard::info(
            shard,
            options.start_at,
            result.started_at,
        ));
    }
    if shard.is_split() {
        // A shard's thresholds are judged on the merge of all shards (`fleetbench merge`):
        // one shard carries only 1/N of the rates.
        // The default checks (something connected, nothing failed) hold for any share.
        summary.thresholds.retain(|t| t.default);
        summary.verdict = Some(summary.judge());
    }
    results.write_all(&summary)?;
    let (failed, left_out) = recorder.failed_sessions();
    results.write_failures(&failed, left_out)?;
    let mut plan_json = plan.to_json();
    plan_json["run_id"] = serde_json::Value::String(run_id);
    results.write(
        "plan.json",
        serde_json::to_string_pretty(&plan_json)?.as_bytes(),
    )?;
    Ok(RunReport {
        outcome: outcome(&summary),
        summary,
        dir: results.path().to_owned(),
    })
}

/// Makes every message of the run carry `run_id` (the `fleetbench-run` property).
fn set_run_id(protocol: &mut ProtocolPlan, run_id: &str) {
    let id = Some(Arc::from(run_id));
    match protocol {
        ProtocolPlan::Mqtt(m) => m.run_id = id,
        ProtocolPlan::Amqp(a) => a.run_id = id,
    }
}

/// A results directory that setup created but no run has filled yet: removed when dropped (a
/// setup error), if still empty.
struct Unstarted(Option<PathBuf>);

impl Unstarted {
    fn new(dir: &Path) -> Self {
        Self(Some(dir.to_owned()))
    }

    /// The run started: the directory stays.
    fn started(mut self) {
        self.0 = None;
    }
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        // `remove_dir` removes only an empty directory: nothing written is ever lost.
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Exit 1 unless the run completed, lost nothing and passed every check.
pub fn outcome(s: &Summary) -> Outcome {
    if s.judge().passed() {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    }
}

/// The chain that signs the devices: loaded from the scenario's CA directory, or minted.
fn signing_chain(fleet: &FleetPlan) -> anyhow::Result<CaChain> {
    let Some(ca) = &fleet.ca_dir else {
        let spec = ChainSpec {
            key_type: fleet.ca_key_type,
            intermediates: fleet.intermediates,
            validity: Validity::days_from_now(fleet.validity_days),
            name: "fleetbench".into(),
        };
        return CaChain::generate(&spec).context("minting the CA chain");
    };
    let chain = load_ca_dir(&ca.path)
        .with_context(|| format!("loading fleet.ca-dir {}", ca.path.display()))?;
    let held = chain.authorities().len() - 1;
    if let Some(want) = ca.intermediates {
        anyhow::ensure!(
            usize::from(want) == held,
            "fleet.intermediates = {want}, but CA directory {} holds {held}",
            ca.path.display()
        );
    }
    Ok(chain)
}

fn read_roots(file: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let roots = CertificateDer::pem_file_iter(file)
        .with_context(|| format!("reading target.ca-file {}", file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "target.ca-file {}: {}",
                file.display(),
                crate::pki::store::pem_problem(&e)
            )
        })?;
    anyhow::ensure!(
        !roots.is_empty(),
        "target.ca-file {} holds no certificate",
        file.display()
    );
    Ok(roots)
}

/// What the progress display can expect: sessions and messages are fixed only for a run that
/// connects each device once and sends a set count (not stages, churn or a send duration).
fn progress_totals(plan: &Plan, devices: u64) -> Totals {
    let once = matches!(plan.session, SessionPlan::Once { .. });
    let counted = plan.messages.count != u32::MAX && plan.messages.duration.is_none();
    Totals {
        sessions: once.then_some(devices),
        messages: (once && counted).then(|| devices * u64::from(plan.messages.count)),
    }
}
