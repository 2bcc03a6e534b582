//! `fleetbench run`: plan, PKI, the embedded hub (or a remote target), the fleet, the report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::hub::{self, Hub, HubConfig, Listeners};
use crate::load::{self, Fleet, FleetResult};
use crate::metrics::{
    HubAccounting, PhaseSummary, Recorder, RunCounts, RunStatus, Summary, SCHEMA_VERSION,
};
use crate::pki::store::load_ca_dir;
use crate::pki::{CaChain, ChainSpec, DeviceIds, KeyType, Validity};
use crate::report::{progress::Progress, write_text, ResultsDir};
use crate::scenario::{FleetPlan, Overrides, Plan, ProtocolPlan, Target};
use crate::transport::{ClientTls, Endpoint, ServerVerification};
use crate::Outcome;

/// Listen backlog for the embedded hub: connection storms need more than the default 128.
const BACKLOG: u32 = 4096;

/// Options of a run besides the plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Root of results directories.
    pub results_root: PathBuf,
    /// No progress display.
    pub quiet: bool,
    /// Cancelled on Ctrl-C.
    pub interrupt: CancellationToken,
    /// Embedded hub behaviour.
    pub hub: HubConfig,
    /// Where to serve live metrics (OpenMetrics text), if anywhere.
    pub metrics: Option<SocketAddr>,
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
    let interrupt = CancellationToken::new();
    tokio::spawn({
        let interrupt = interrupt.clone();
        async move {
            shutdown_signal().await;
            tracing::warn!("interrupted: stopping the schedule and draining");
            interrupt.cancel();
        }
    });
    let options = RunOptions {
        results_root: args.results,
        quiet: args.quiet,
        interrupt,
        hub: HubConfig::default(),
        metrics: args.metrics,
    };
    let report = run_plan(&plan, &options).await?;
    let mut out = std::io::stdout().lock();
    super::write_or_broken_pipe(write_text(&mut out, &report.summary))?;
    super::write_or_broken_pipe(std::io::Write::write_all(
        &mut out,
        format!("{:<12}{}\n", "Results", report.dir.display()).as_bytes(),
    ))?;
    Ok(report.outcome)
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

/// An embedded hub serving on loopback.
#[derive(Debug)]
pub struct EmbeddedHub {
    /// The hub's state (registries, counters).
    pub hub: Arc<Hub>,
    /// AMQP address.
    pub amqp: SocketAddr,
    /// MQTT address.
    pub mqtt: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl EmbeddedHub {
    /// Starts a hub whose server certificate comes from `chain`, on 127.0.0.1 with an ephemeral port.
    pub async fn start(chain: &CaChain, config: HubConfig) -> anyhow::Result<Self> {
        let identity = chain
            .mint_server(
                &["localhost".into(), "127.0.0.1".into()],
                KeyType::EcdsaP256,
            )
            .context("minting the hub's server certificate")?;
        let hub = Hub::new(config, &identity).context("configuring the hub's TLS")?;
        let listener = bind_loopback().await?;
        let mqtt = listener.local_addr()?;
        let amqp_listener = bind_loopback().await?;
        let amqp = amqp_listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(hub::serve(
            hub.clone(),
            Listeners {
                amqp: Some(amqp_listener),
                mqtt: Some(listener),
            },
            stop.clone().cancelled_owned(),
        ));
        Ok(Self {
            hub,
            amqp,
            mqtt,
            stop,
            task,
        })
    }

    /// The address that serves `protocol`.
    pub fn addr_for(&self, protocol: &ProtocolPlan) -> SocketAddr {
        match protocol {
            ProtocolPlan::Amqp(_) => self.amqp,
            ProtocolPlan::Mqtt(_) => self.mqtt,
        }
    }

    /// Stops the hub and waits for its connections to close.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Takes the hub down (every connection dropped, listeners closed) and brings it back on
    /// the same ports with the same registries and counters: an outage.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        (&mut self.task).await.context("the hub task failed")?;
        let mqtt = bind_at(self.mqtt).await?;
        let amqp = bind_at(self.amqp).await?;
        self.stop = CancellationToken::new();
        self.task = tokio::spawn(hub::serve(
            self.hub.clone(),
            Listeners {
                amqp: Some(amqp),
                mqtt: Some(mqtt),
            },
            self.stop.clone().cancelled_owned(),
        ));
        Ok(())
    }
}

/// Binds 127.0.0.1 on an ephemeral port with a deep backlog.
pub async fn bind_loopback() -> anyhow::Result<TcpListener> {
    bind_at(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Binds `addr` (reusing it even with connections in TIME_WAIT) with a deep backlog.
async fn bind_at(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("listening on {addr}"))
}

/// Runs a validated plan end to end and writes its results.
pub async fn run_plan(plan: &Plan, options: &RunOptions) -> anyhow::Result<RunReport> {
    // Limits first: a fleet that cannot fit is an error before anything is minted or bound.
    let peak = plan
        .connect
        .schedule
        .peak_sessions()
        .unwrap_or(plan.fleet.devices);
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
    let results = ResultsDir::create(
        &options.results_root,
        &plan.name,
        std::time::SystemTime::now(),
    )?;
    let chain = Arc::new(signing_chain(&plan.fleet)?);
    let ids = DeviceIds::new(plan.fleet.ids.clone(), plan.fleet.devices, 0, 1);
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
            let hub = EmbeddedHub::start(&chain, config).await?;
            hub.hub
                .registry
                .add_verified_ca("fleetbench-root", chain.root().cert().clone())?;
            hub.hub.registry.register_ca_signed(ids.iter());
            let endpoint = Endpoint {
                addr: hub.addr_for(&plan.protocol),
                server_name: ServerName::try_from("localhost")?.to_owned(),
                host: "localhost".into(),
            };
            let roots = ClientTls::roots(std::slice::from_ref(chain.root().cert()))?;
            let tls = ClientTls::new(
                plan.tls.version,
                ServerVerification::Roots(roots),
                plan.tls.resumption,
            )
            .restrict(&plan.tls.cipher_suites, &plan.tls.groups);
            (endpoint, tls, Some(hub))
        }
        Target::Remote {
            address,
            server_name,
            ca_file,
            verify_server,
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
            };
            (
                endpoint,
                ClientTls::new(plan.tls.version, verification, plan.tls.resumption)
                    .restrict(&plan.tls.cipher_suites, &plan.tls.groups),
                None,
            )
        }
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
    let expected = plan.fleet.devices * u64::from(plan.messages.count);
    let progress = Progress::start(
        recorder.clone(),
        plan.fleet.devices,
        expected,
        options.quiet,
    );
    let result = load::run(
        plan,
        fleet,
        endpoint,
        tls,
        recorder.clone(),
        options.interrupt.clone(),
    )
    .await;
    progress.finish();
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(hub) = hub {
                hub.stop().await;
            }
            return Err(e.into());
        }
    };

    let accounting = hub.as_ref().map(|h| account(&h.hub, &ids, &result));
    if let Some(hub) = hub {
        hub.stop().await;
    }
    let summary = summarize(plan, &recorder, &result, accounting, ids.len() as u64);
    results.write_all(&summary)?;
    results.write(
        "plan.json",
        serde_json::to_string_pretty(&plan.to_json())?.as_bytes(),
    )?;
    Ok(RunReport {
        outcome: outcome(&summary),
        summary,
        dir: results.path().to_owned(),
    })
}

/// Exit 1 unless the run completed, lost nothing and passed every threshold.
pub fn outcome(s: &Summary) -> Outcome {
    let lost = s.hub.as_ref().is_some_and(|h| h.lost > 0);
    if lost || !s.thresholds_passed() || s.status != RunStatus::Complete {
        Outcome::ChecksFailed
    } else {
        Outcome::Success
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
        .with_context(|| {
            format!(
                "target.ca-file {} holds a malformed certificate",
                file.display()
            )
        })?;
    anyhow::ensure!(
        !roots.is_empty(),
        "target.ca-file {} holds no certificate",
        file.display()
    );
    Ok(roots)
}

/// Compares what the hub counted with what the generator saw acknowledged, device by device.
pub fn account(hub: &Hub, ids: &DeviceIds, result: &FleetResult) -> HubAccounting {
    let mut acc = HubAccounting::default();
    for (i, acked) in result.acked.iter().enumerate() {
        let id = ids.id(i);
        let received = hub.registry.received(&id);
        let acked = u64::from(*acked);
        acc.received += received;
        acc.acked += acked;
        if acked > received {
            acc.lost += acked - received;
            if acc.lost_devices.len() < 10 {
                acc.lost_devices.push(id);
            }
        }
    }
    acc.refused = hub.stats.refusals();
    acc
}

/// Freezes a run into its summary.
pub fn summarize(
    plan: &Plan,
    recorder: &Recorder,
    result: &FleetResult,
    hub: Option<HubAccounting>,
    devices: u64,
) -> Summary {
    let s = recorder.snapshot();
    let c = &recorder.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let mut summary = Summary {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario_name: plan.name.clone(),
        scenario: plan.to_json(),
        status: result.status.clone(),
        started_at: humantime::format_rfc3339_millis(result.started_at).to_string(),
        duration_secs: (secs * 1000.0).round() / 1000.0,
        counts: RunCounts {
            devices,
            sessions_attempted: s.sessions_attempted,
            sessions_connected: s.sessions_connected,
            sessions_failed: s.sessions_failed,
            handshakes: s.handshakes,
            messages_sent: s.messages_sent,
            messages_acked: s.messages_acked,
            messages_unacked: s.messages_unacked,
            bytes_sent: load(&c.bytes_sent),
            late_connects: load(&c.late_connects),
            reconnects: load(&c.reconnects),
            late_sends: load(&c.late_sends),
        },
        connects_per_sec: s.sessions_connected as f64 / secs,
        acks_per_sec: s.messages_acked as f64 / secs,
        phases: recorder
            .histograms()
            .iter()
            .map(|(p, h)| PhaseSummary::new(*p, h))
            .collect(),
        failures: recorder.failures(),
        hub,
        generator: result.health.clone(),
        timeline: result.timeline.clone(),
        thresholds: Vec::new(),
        throttling: None,
    };
    let throttled = summary.failures_of(crate::metrics::FailureKind::Throttled);
    summary.throttling = crate::metrics::detect_throttling(&summary.timeline, 0.9, throttled);
    summary.thresholds = crate::metrics::evaluate(&plan.thresholds, &summary);
    summary
}
