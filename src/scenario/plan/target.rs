//! `[target]`: which hub the run targets, and the IoT Hub tier whose quotas it stands for.

use std::path::PathBuf;

use super::Plan;
use crate::scenario::problems::Problems;
use crate::scenario::{Dialect, HubKind, Scenario};

/// Which hub the run targets.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// fleetbench's own hub, started for the run on loopback.
    Embedded,
    /// A hub or broker elsewhere.
    Remote {
        /// `host:port`.
        address: String,
        /// SNI and protocol host name.
        server_name: String,
        /// Roots for the server certificate (`None` with verification off).
        ca_file: Option<PathBuf>,
        /// Whether the server certificate is checked.
        verify_server: bool,
        /// `host:port` of the hub's accounting (`hub serve --metrics ADDR`), when the target is
        /// a fleetbench hub: `run` asks it what the hub received of this run.
        accounts: Option<String>,
    },
}

pub(super) fn tier(
    s: &Scenario,
    p: &mut Problems<'_>,
) -> Option<(crate::hub::throttle::Tier, u32)> {
    let units = s.target.units.unwrap_or(1);
    if units == 0 || units > 200 {
        p.add(
            "target.units",
            format!("{units} is not valid: 1 to 200 units"),
        );
    }
    let event_grid = s.protocol.dialect == Some(Dialect::EventGrid);
    let Some(name) = &s.target.tier else {
        if s.target.units.is_some() && !event_grid {
            p.add(
                "target.units",
                "needs target.tier (or dialect = \"event-grid\", where it counts throughput units)",
            );
        }
        return None;
    };
    if event_grid {
        p.add(
            "target.tier",
            "does not apply to dialect = \"event-grid\": an Event Grid namespace is sized in throughput units (target.units)",
        );
        return None;
    }
    match name.parse() {
        Ok(t) => Some((t, units)),
        Err(e) => {
            p.add("target.tier", e);
            None
        }
    }
}

/// The Event Grid namespace's throughput units (`target.units`, default 1) with
/// dialect = "event-grid"; `tier` checks their range.
pub(super) fn throughput_units(s: &Scenario) -> Option<u32> {
    (s.protocol.dialect == Some(Dialect::EventGrid)).then(|| s.target.units.unwrap_or(1))
}

/// Event Grid's MQTT quotas per throughput unit (docs/event-grid.md): sessions, inbound
/// publishes per second and inbound bytes per second per namespace.
const EG_SESSIONS_PER_TU: u64 = 10_000;
const EG_PUBLISHES_PER_TU: f64 = 1_000.0;
const EG_BYTES_PER_TU: f64 = 1_000_000.0;

impl Plan {
    /// Warnings when the planned connect or send rate exceeds the named tier's quota, or
    /// the planned sessions, publishes or bytes exceed the Event Grid namespace's.
    pub fn quota_warnings(&self) -> Vec<String> {
        if let Some(units) = self.throughput_units {
            return self.event_grid_warnings(units);
        }
        let Some((tier, units)) = self.tier else {
            return Vec::new();
        };
        let quota = crate::hub::throttle::Quota::of(tier, units);
        let mut out = Vec::new();
        if let Some(rate) = self.connect.schedule.peak_connect_rate() {
            if rate > quota.connects_per_sec {
                out.push(format!(
                    "the plan connects up to {rate:.0} devices/s but {tier} x {units} accepts {:.0} new connections/s; \
                     IoT Hub will shape and then refuse the excess",
                    quota.connects_per_sec
                ));
            }
        } else {
            out.push(format!(
                "the plan connects as fast as it can (no connect.rate) but {tier} x {units} accepts {:.0} new connections/s",
                quota.connects_per_sec
            ));
        }
        if let Some(rate) = self.peak_send_rate() {
            if rate > quota.sends_per_sec {
                out.push(format!(
                    "the plan sends up to {rate:.0} messages/s but {tier} x {units} accepts {:.0} device-to-cloud sends/s",
                    quota.sends_per_sec
                ));
            }
        }
        out
    }

    /// The open model's planned send rate at the peak of sessions (none for closed: it
    /// follows the broker).
    fn peak_send_rate(&self) -> Option<f64> {
        let crate::scenario::SendModel::Open { interval } = self.messages.model else {
            return None;
        };
        Some(self.peak_sessions() as f64 / interval.as_secs_f64().max(1e-6))
    }

    fn peak_sessions(&self) -> u64 {
        self.connect
            .schedule
            .peak_sessions()
            .unwrap_or(self.fleet.devices)
    }

    fn event_grid_warnings(&self, units: u32) -> Vec<String> {
        let tu = f64::from(units);
        let mut out = Vec::new();
        let sessions = self.peak_sessions();
        if sessions > EG_SESSIONS_PER_TU * u64::from(units) {
            out.push(format!(
                "the plan opens up to {sessions} sessions but an Event Grid namespace of {units} TU holds {}",
                EG_SESSIONS_PER_TU * u64::from(units)
            ));
        }
        let Some(rate) = self.peak_send_rate() else {
            return out;
        };
        if rate > EG_PUBLISHES_PER_TU * tu {
            out.push(format!(
                "the plan sends up to {rate:.0} messages/s but an Event Grid namespace of {units} TU accepts {:.0} inbound MQTT publishes/s",
                EG_PUBLISHES_PER_TU * tu
            ));
        }
        if let crate::scenario::Payload::Bytes(size) = self.messages.payload {
            let bytes = rate * size as f64;
            if bytes > EG_BYTES_PER_TU * tu {
                out.push(format!(
                    "the plan sends up to {:.1} MB/s of payload but an Event Grid namespace of {units} TU accepts {:.0} MB/s inbound",
                    bytes / 1e6,
                    EG_BYTES_PER_TU * tu / 1e6
                ));
            }
        }
        out
    }
}

pub(super) fn target(s: &Scenario, p: &mut Problems<'_>) -> Option<Target> {
    let t = &s.target;
    match t.hub.unwrap_or(HubKind::Embedded) {
        HubKind::Embedded => {
            p.not_applicable(
                &[
                    (t.address.is_some(), "target.address"),
                    (t.server_name.is_some(), "target.server-name"),
                    (t.ca_file.is_some(), "target.ca-file"),
                    (t.accounts.is_some(), "target.accounts"),
                ],
                "only applies to hub = \"remote\"; the embedded hub makes its own",
            );
            Some(Target::Embedded)
        }
        HubKind::Remote => {
            let Some(address) = t.address.clone() else {
                p.add(
                    "target.address",
                    "a remote hub needs an address such as \"myhub.azure-devices.net:8883\"",
                );
                return None;
            };
            let Some((host, port)) = address.rsplit_once(':') else {
                p.add(
                    "target.address",
                    format!("{address:?} is not valid: expected host:port"),
                );
                return None;
            };
            if port.parse::<u16>().is_err() || host.is_empty() {
                p.add(
                    "target.address",
                    format!("{address:?} is not valid: expected host:port"),
                );
                return None;
            }
            let accounts = t.accounts.clone().filter(|a| {
                let ok = host_port(a);
                if !ok {
                    p.add(
                        "target.accounts",
                        format!(
                            "{a:?} is not valid: expected host:port of `hub serve --metrics`, \
                             e.g. \"127.0.0.1:9464\""
                        ),
                    );
                }
                ok
            });
            let verify_server = t.verify_server.unwrap_or(true);
            if verify_server && t.ca_file.is_none() {
                p.add("target.ca-file", "a remote hub needs the PEM roots of its server certificate (or verify-server = false)");
            }
            Some(Target::Remote {
                server_name: t
                    .server_name
                    .clone()
                    .unwrap_or_else(|| host.trim_matches(['[', ']']).to_owned()),
                address,
                ca_file: t.ca_file.clone(),
                verify_server,
                accounts,
            })
        }
    }
}

/// Whether `address` is `host:port` with a non-empty host and a port number.
fn host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}
