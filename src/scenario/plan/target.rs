//! `[target]`: which hub the run targets, and the IoT Hub tier whose quotas it stands for.

use std::path::PathBuf;

use super::Plan;
use crate::scenario::problems::Problems;
use crate::scenario::{HubKind, Scenario};

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
    let Some(name) = &s.target.tier else {
        if s.target.units.is_some() {
            p.add("target.units", "needs target.tier");
        }
        return None;
    };
    match name.parse() {
        Ok(t) => Some((t, units)),
        Err(e) => {
            p.add("target.tier", e);
            None
        }
    }
}

impl Plan {
    /// Warnings when the planned connect or send rate exceeds the named tier's quota.
    pub fn quota_warnings(&self) -> Vec<String> {
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
        if let crate::scenario::SendModel::Open { interval } = self.messages.model {
            let sessions = self
                .connect
                .schedule
                .peak_sessions()
                .unwrap_or(self.fleet.devices) as f64;
            let rate = sessions / interval.as_secs_f64().max(1e-6);
            if rate > quota.sends_per_sec {
                out.push(format!(
                    "the plan sends up to {rate:.0} messages/s but {tier} x {units} accepts {:.0} device-to-cloud sends/s",
                    quota.sends_per_sec
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
