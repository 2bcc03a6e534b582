//! `fleetbench hub …`: the embedded hub as a standalone server over a state directory, and
//! the portal's steps (add a CA, verify it, register devices) as commands on that directory.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{HubCaCommand, HubCommand, HubDeviceCommand, HubServeArgs};
use crate::hub::registry::MAX_DEVICES;
use crate::hub::{self, DeviceAuth, Hub, HubConfig, Listeners, StateDir};
use crate::pki::export::{ImportAuth, ImportDevice};
use crate::pki::store::read_cert;
use crate::pki::IdTemplate;
use crate::Outcome;

/// How often a serving hub looks for changes the `hub ca|device` commands made.
const STATE_POLL: Duration = Duration::from_millis(500);

/// Runs a `hub` subcommand.
pub(super) async fn command(cmd: HubCommand) -> anyhow::Result<Outcome> {
    let text = match cmd {
        HubCommand::Serve(args) => return serve(args).await,
        HubCommand::Ca(cmd) => ca(cmd)?,
        HubCommand::Device(cmd) => device(cmd)?,
    };
    super::write_or_broken_pipe(std::io::stdout().lock().write_all(text.as_bytes()))?;
    Ok(Outcome::Success)
}

async fn serve(args: HubServeArgs) -> anyhow::Result<Outcome> {
    let state = StateDir::open(&args.state)?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !args.mqtt.ip().is_unspecified() && !args.mqtt.ip().is_loopback() {
        names.push(args.mqtt.ip().to_string());
    }
    let identity = state.server_identity(&names)?;
    let hub = Hub::new(HubConfig::default(), &identity).context("configuring the hub's TLS")?;
    state.sync(&hub.registry)?;
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
    let amqp_line = match &amqp {
        Some(l) => format!(" and amqps://{}", l.local_addr()?),
        None => String::new(),
    };
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
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(watch_state(state, hub.clone(), stop.clone()));
    hub::serve(
        hub,
        Listeners {
            amqp,
            mqtt: Some(listener),
        },
        super::run::shutdown_signal(),
    )
    .await;
    stop.cancel();
    let _ = watcher.await;
    Ok(Outcome::Success)
}

/// Applies changes to the state file while the hub serves (the tutorial's portal steps run as
/// separate commands).
async fn watch_state(state: StateDir, hub: std::sync::Arc<Hub>, stop: CancellationToken) {
    let mut seen = state.modified();
    let mut tick = tokio::time::interval(STATE_POLL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = state.modified();
        if now != seen {
            seen = now;
            match state.sync(&hub.registry) {
                Ok(()) => tracing::info!("hub state reloaded"),
                Err(e) => tracing::warn!(error = %e, "hub state not reloaded"),
            }
        }
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
            let (dir, registry) = open(&state)?;
            let der = read_cert(&cert)?;
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
            let (dir, registry) = open(&state)?;
            registry.verify_ca(&name, &read_cert(&cert)?)?;
            dir.save(&registry)?;
            Ok(format!("CA {name:?} verified\n"))
        }
        HubCaCommand::List { state } => {
            let (_, registry) = open(&state)?;
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
        } => {
            if let Some(count) = count {
                anyhow::ensure!(
                    count <= MAX_DEVICES,
                    "--count {count} is not valid: a hub holds at most {} devices \
                     (IoT Hub's limit per hub)",
                    thousands(MAX_DEVICES)
                );
            }
            let (dir, registry) = open(&state)?;
            let before = registry.device_count();
            match (count, import) {
                (Some(count), _) => {
                    let template =
                        IdTemplate::parse(&id).with_context(|| format!("--id {id:?}"))?;
                    registry.register_ca_signed((1..=count).map(|n| template.id(n)));
                }
                (None, Some(file)) => registry.register_devices(read_import(&file)?),
                (None, None) => anyhow::bail!("give --count or --import"),
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
        HubDeviceCommand::List { state } => {
            let (_, registry) = open(&state)?;
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

fn open(state: &Path) -> anyhow::Result<(StateDir, hub::Registry)> {
    let dir = StateDir::open(state)?;
    let registry = dir.load()?;
    Ok((dir, registry))
}

/// Reads a bulk import file (one JSON object per line), line by line; more lines than a hub
/// can hold are refused before they are all read.
fn read_import(file: &Path) -> anyhow::Result<Vec<(String, DeviceAuth)>> {
    let reader = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .with_context(|| format!("reading {}", file.display()))?;
    let mut devices = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        anyhow::ensure!(
            (devices.len() as u64) < MAX_DEVICES,
            "{}:{}: more than {} devices, IoT Hub's limit per hub",
            file.display(),
            n + 1,
            thousands(MAX_DEVICES)
        );
        let d: ImportDevice = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a bulk import line", file.display(), n + 1))?;
        let auth = match d.authentication {
            ImportAuth::CertificateAuthority => DeviceAuth::CertificateAuthority,
            ImportAuth::SelfSigned { x509_thumbprint } => DeviceAuth::SelfSigned {
                primary: x509_thumbprint.primary_thumbprint,
                secondary: x509_thumbprint.secondary_thumbprint,
            },
        };
        devices.push((d.id, auth));
    }
    Ok(devices)
}

/// `1000000` as `1,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
