//! `fleetbench hub …`: the embedded hub as a standalone server over a state directory, and
//! the portal's steps (add a CA, verify it, register devices) as commands on that directory.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod import;

use import::{read_import, ImportLine};

use crate::cli::{HubCaCommand, HubCommand, HubDeviceCommand, HubInitArgs, HubServeArgs};
use crate::hub::names::check_device_id;
use crate::hub::registry::MAX_DEVICES;
use crate::hub::state::FileStamp;
use crate::hub::{self, identity, DeviceAuth, Hub, HubConfig, HubIdentity, IdentitySpec};
use crate::hub::{Listeners, StateDir};
use crate::pki::store::read_cert;
use crate::pki::{IdTemplate, KeyType, ServerNames};
use crate::Outcome;

/// How often a serving hub looks for changes the `hub ca|device` commands made (it also
/// rereads at once when a device it does not know, or whose CA it does not trust, connects).
const STATE_POLL: Duration = Duration::from_millis(500);

/// A server certificate expiring within this is warned about when the hub starts.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// Runs a `hub` subcommand.
pub(super) async fn command(cmd: HubCommand) -> anyhow::Result<Outcome> {
    let text = match cmd {
        HubCommand::Serve(args) => return serve(args).await,
        HubCommand::Init(args) => init(&args)?,
        HubCommand::Ca(cmd) => ca(cmd)?,
        HubCommand::Device(cmd) => device(cmd)?,
    };
    super::write_or_broken_pipe(std::io::stdout().lock().write_all(text.as_bytes()))?;
    Ok(Outcome::Success)
}

fn init(args: &HubInitArgs) -> anyhow::Result<String> {
    let names = ServerNames::new(args.names.clone(), args.ips.clone())?;
    let state = StateDir::open(&args.state)?;
    let _lock = state.lock()?;
    let spec = IdentitySpec {
        names,
        key_type: args.key_type,
        days: args.days,
    };
    let made = state.create_identity(&spec, args.force)?;
    Ok(format!(
        "{}\n",
        describe_identity(&made, args.key_type, &state)
    ))
}

fn describe_identity(id: &HubIdentity, key_type: KeyType, state: &StateDir) -> String {
    format!(
        "hub identity in {}: server certificate for {} ({key_type}), valid until {}; \
         clients trust {}",
        state.dir().display(),
        id.names.join(", "),
        identity::day(id.not_after),
        state.server_root().display()
    )
}

/// The state directory's identity, made (and announced) if it has none.
fn serve_identity(state: &StateDir, listen: IpAddr) -> anyhow::Result<HubIdentity> {
    if let Some(id) = state.identity()? {
        let left = id.not_after - time::OffsetDateTime::now_utc();
        if left.whole_days() < EXPIRY_WARNING_DAYS {
            let warning = format!(
                "warning: the hub's server certificate ({}) expires on {} (in {} days); make \
                 a new identity with `fleetbench hub init --state {} --force`, then have clients \
                 trust the new server-root.pem",
                state.dir().join("server.pem").display(),
                identity::day(id.not_after),
                left.whole_days(),
                state.dir().display()
            );
            eprint_line(&warning);
        }
        return Ok(id);
    }
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into()];
    if !listen.is_unspecified() && !listen.is_loopback() {
        ips.push(listen);
    }
    let spec = IdentitySpec {
        names: ServerNames::new(vec!["localhost".into()], ips)?,
        key_type: KeyType::EcdsaP256,
        days: 365,
    };
    let made = {
        let _lock = state.lock()?;
        state.create_identity(&spec, false)?
    };
    eprint_line(&format!(
        "hub: {} had no server identity: made a new one. {}. (To choose names, key type or \
         validity, run `fleetbench hub init` before `hub serve`.)",
        state.dir().display(),
        describe_identity(&made, spec.key_type, state)
    ));
    Ok(made)
}

fn eprint_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

async fn serve(args: HubServeArgs) -> anyhow::Result<Outcome> {
    let state = StateDir::open(&args.state)?;
    let identity = serve_identity(&state, args.mqtt.ip())?;
    let mut config = HubConfig {
        log_refusals: true,
        tls: crate::transport::tls::HubTls {
            provider: args.tls_provider,
            groups: args.tls_groups.clone(),
        },
        ..HubConfig::default()
    };
    config.eventhubs.key = args.eventhubs_key.clone();
    config.eventhubs.fault_drop_every = args.fault_eventhubs_drop_every;
    let hub = Hub::new(config, &identity.server).context("configuring the hub's TLS")?;
    let reloader = Arc::new(Reloader::new(state.clone()));
    reloader.reload(&hub.registry)?;
    {
        let r = reloader.clone();
        hub.registry
            .reload_with(move |registry| r.reload_logged(registry));
    }
    let listener = TcpListener::bind(args.mqtt)
        .await
        .with_context(|| format!("listening on {}", args.mqtt))?;
    let addr = listener.local_addr()?;
    let amqp = match args.amqp {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("listening on {a}"))?,
        ),
        None => None,
    };
    let mut amqp_line = match &amqp {
        Some(l) => format!(" and amqps://{}", l.local_addr()?),
        None => String::new(),
    };
    let (mqtt_ws, amqp_ws) = (bind_ws(args.mqtt_ws).await?, bind_ws(args.amqp_ws).await?);
    for (l, what) in [(&mqtt_ws, "MQTT"), (&amqp_ws, "AMQP")] {
        if let Some(l) = l {
            let path = crate::transport::ws::IOT_HUB_PATH;
            amqp_line += &format!(" and {what} over wss://{}{path}", l.local_addr()?);
        }
    }
    let line = format!(
        "hub listening on mqtts://{addr}{amqp_line} ({} CAs, {} devices); clients trust {}\n",
        hub.registry.cas().len(),
        hub.registry.device_count(),
        state.server_root().display()
    );
    {
        let mut out = std::io::stdout().lock();
        super::write_or_broken_pipe(out.write_all(line.as_bytes()).and_then(|()| out.flush()))?;
    }
    if let Some(l) = &amqp {
        // The built-in Event Hubs-compatible endpoint shares the AMQP listener; stdout stays
        // the listening line and the summary.
        eprint_line(&format!(
            "event hubs-compatible endpoint: {}",
            hub.eventhubs
                .connection_string(&l.local_addr()?.to_string())
        ));
    }
    let stop = CancellationToken::new();
    if let Some(addr) = args.metrics {
        serve_metrics(addr, &hub, &stop).await?;
    }
    let watcher = tokio::spawn(watch_state(reloader, hub.clone(), stop.clone()));
    hub::serve(
        hub.clone(),
        Listeners {
            amqp,
            mqtt: Some(listener),
            amqp_ws,
            mqtt_ws,
        },
        super::run::shutdown_signal(),
    )
    .await;
    stop.cancel();
    let _ = watcher.await;
    hub.stats.accounts.flush_log();
    let summary = hub.stats.accounts.snapshot().summary();
    let mut out = std::io::stdout().lock();
    super::write_or_broken_pipe(out.write_all(summary.as_bytes()).and_then(|()| out.flush()))?;
    Ok(Outcome::Success)
}

/// Binds a WebSocket listener when its address is given.
async fn bind_ws(addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => Ok(Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("listening on {a}"))?,
        )),
        None => Ok(None),
    }
}

/// Binds `addr` and serves the hub's live counts there until `stop`: OpenMetrics on
/// `GET /metrics`, one run's counts as JSON on `GET /runs/<run-id>` (what `run` fetches with
/// `[target] accounts`), the run ids kept on `GET /runs`. Announces the bound address on
/// stderr (as `run --metrics` does at `-v`).
async fn serve_metrics(
    addr: SocketAddr,
    hub: &Arc<Hub>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve live metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let h = hub.clone();
    let render: super::live::Render = Arc::new(move || Ok(h.stats.openmetrics()));
    let h = hub.clone();
    let runs: super::live::JsonRoute = Arc::new(move |path| runs_json(&h, path));
    tokio::spawn(super::live::serve_routes(
        listener,
        render,
        runs,
        stop.clone(),
    ));
    eprint_line(&format!("hub: live metrics on http://{bound}/metrics"));
    Ok(())
}

/// `GET /runs/<run-id>`: what the hub counted of that run ([`hub::accounts::RunAccount`]);
/// `GET /runs`: the run ids it keeps counts for.
fn runs_json(hub: &Hub, path: &str) -> Option<Vec<u8>> {
    let rest = path.strip_prefix("/runs")?;
    let stats = &hub.stats;
    let json = match rest.strip_prefix('/').filter(|id| !id.is_empty()) {
        Some(id) => {
            let throttled = stats
                .throttle_refusals
                .load(std::sync::atomic::Ordering::Relaxed);
            serde_json::to_vec(&stats.accounts.run_account(id, stats.refusals(), throttled))
        }
        None if rest.is_empty() || rest == "/" => {
            serde_json::to_vec(&serde_json::json!({"runs": stats.accounts.run_ids()}))
        }
        None => return None,
    };
    // Serialising strings and numbers cannot fail.
    json.ok()
}

/// Rereads the state file into a serving hub's registry when it changed (size, time or inode)
/// since the last reread; one reread at a time.
struct Reloader {
    state: StateDir,
    seen: Mutex<Option<FileStamp>>,
}

impl Reloader {
    fn new(state: StateDir) -> Self {
        Self {
            state,
            seen: Mutex::new(None),
        }
    }

    /// Rereads if the file changed; whether it did.
    fn reload(&self, registry: &hub::Registry) -> Result<bool, hub::StateError> {
        let mut seen = self.seen.lock();
        let now = self.state.stamp();
        if now.is_none() || now == *seen {
            return Ok(false);
        }
        self.state.sync(registry)?;
        *seen = now;
        Ok(true)
    }

    fn reload_logged(&self, registry: &hub::Registry) -> bool {
        match self.reload(registry) {
            Ok(changed) => {
                if changed {
                    tracing::info!("hub state reloaded");
                }
                changed
            }
            Err(e) => {
                tracing::warn!(error = %e, "hub state not reloaded");
                false
            }
        }
    }
}

/// Applies changes to the state file while the hub serves (the tutorial's portal steps run as
/// separate commands).
async fn watch_state(reloader: Arc<Reloader>, hub: Arc<Hub>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(STATE_POLL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        reloader.reload_logged(&hub.registry);
    }
}

fn ca(cmd: HubCaCommand) -> anyhow::Result<String> {
    match cmd {
        HubCaCommand::Add {
            state,
            name,
            cert,
            verified,
        } => {
            let der = read_cert(&cert)?;
            let (dir, registry, _lock) = open_for_writing(&state)?;
            let text = if verified {
                registry.add_verified_ca(&name, der)?;
                format!("CA {name:?} added, verified on upload\n")
            } else {
                let code = registry.add_ca(&name, der)?;
                format!(
                    "CA {name:?} added, unverified\nverification code {code}\n\
                     prove possession: fleetbench pki prove --ca CA_DIR --code {code}\n"
                )
            };
            dir.save(&registry)?;
            Ok(text)
        }
        HubCaCommand::Verify { state, name, cert } => {
            let proof = read_cert(&cert)?;
            let (dir, registry, _lock) = open_for_writing(&state)?;
            registry.verify_ca(&name, &proof)?;
            dir.save(&registry)?;
            Ok(format!("CA {name:?} verified\n"))
        }
        HubCaCommand::List { state } => {
            let registry = StateDir::existing(&state)?.load()?;
            let mut text = format!(
                "{:<20} {:<10} {:<48} {}\n",
                "name", "status", "verification code", "thumbprint (sha1)"
            );
            for c in registry.cas() {
                let status = if c.verified { "verified" } else { "unverified" };
                text.push_str(&format!(
                    "{:<20} {status:<10} {:<48} {}\n",
                    c.name, c.verification_code, c.thumbprint
                ));
            }
            Ok(text)
        }
    }
}

fn device(cmd: HubDeviceCommand) -> anyhow::Result<String> {
    match cmd {
        HubDeviceCommand::Add {
            state,
            count,
            id,
            import,
        } => add_devices(&state, count, &id, import.as_deref()),
        HubDeviceCommand::List { state } => {
            let registry = StateDir::existing(&state)?.load()?;
            let mut text = String::new();
            for (id, auth) in registry.devices() {
                let kind = match auth {
                    DeviceAuth::CertificateAuthority => "certificateAuthority".to_owned(),
                    DeviceAuth::SelfSigned { primary, .. } => format!("selfSigned {primary}"),
                };
                text.push_str(&format!("{id} {kind}\n"));
            }
            Ok(text)
        }
    }
}

fn add_devices(
    state: &Path,
    count: Option<u64>,
    id: &str,
    import: Option<&Path>,
) -> anyhow::Result<String> {
    let devices = match (count, import) {
        (Some(count), _) => {
            anyhow::ensure!(
                (1..=MAX_DEVICES).contains(&count),
                "--count {count} is not valid: from 1 to {} devices (IoT Hub's limit per hub)",
                thousands(MAX_DEVICES)
            );
            let template = IdTemplate::parse(id).with_context(|| format!("--id {id:?}"))?;
            let first = template.id(1);
            check_device_id(&first).with_context(|| format!("--id {id:?}"))?;
            check_device_id(&template.id(count)).with_context(|| format!("--id {id:?}"))?;
            Devices::Range(template, count)
        }
        (None, Some(file)) => Devices::Import(read_import(file)?),
        (None, None) => anyhow::bail!("give --count or --import"),
    };
    let (dir, registry, _lock) = open_for_writing(state)?;
    let before = registry.device_count();
    match devices {
        Devices::Range(template, count) => {
            registry.register_ca_signed((1..=count).map(|n| template.id(n)));
        }
        Devices::Import(lines) => {
            let conflicts: Vec<&str> = lines
                .iter()
                .filter(|l| l.create_only && registry.device(&l.id).is_some())
                .map(|l| l.id.as_str())
                .collect();
            anyhow::ensure!(
                conflicts.is_empty(),
                "{} of the devices to create (importMode \"create\") are already registered in \
                 {}, e.g. {:?}; IoT Hub reports these as conflicts. Nothing was registered \
                 (use importMode \"createOrUpdate\" to replace them)",
                conflicts.len(),
                state.display(),
                &conflicts[..conflicts.len().min(3)]
            );
            registry.register_devices(lines.into_iter().map(|l| (l.id, l.auth)));
        }
    }
    let total = registry.device_count();
    anyhow::ensure!(
        (total as u64) <= MAX_DEVICES,
        "the hub in {} would hold {total} devices, beyond IoT Hub's limit of {} per hub; \
         nothing was registered",
        state.display(),
        thousands(MAX_DEVICES)
    );
    dir.save(&registry)?;
    Ok(format!(
        "{total} devices registered ({} new)\n",
        total - before
    ))
}

enum Devices {
    Range(IdTemplate, u64),
    Import(Vec<ImportLine>),
}

/// A state directory, locked for a read-modify-write (created if needed), and its registry.
fn open_for_writing(
    state: &Path,
) -> anyhow::Result<(StateDir, hub::Registry, hub::state::StateLock)> {
    let dir = StateDir::open(state)?;
    let lock = dir.lock()?;
    let registry = dir.load()?;
    Ok((dir, registry, lock))
}

/// `1000000` as `1,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
