//! The validated plan of a run: a [`Scenario`] with every default filled in, every value
//! checked, and command-line overrides applied. Downstream code never re-checks it.

mod amqp;
mod capacity;
mod event_grid;
mod fleet;
mod matrix;
mod protocol;
mod target;
mod tls;
mod transport;
mod verify;

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::problems::{Overrides, Problems};
use super::shape::{self, ConnectPlan, MessagePlan, ReconnectPlan, SessionPlan};
use super::{ConfigErrors, Scenario};
use crate::metrics::Threshold;
use crate::protocol::MqttDialect;

pub use capacity::{CapacityCheck, CapacityPlan, SearchKind};
pub use fleet::{CaDirPlan, FleetPlan};
pub use matrix::{Axis, MatrixCell, MatrixOrder, MatrixPlan, SkippedCell};
pub use protocol::ProtocolPlan;
use target::throughput_units;
pub use target::Target;
pub use tls::TlsPlan;
pub use verify::{
    VerifyIdentity, VerifyKind, VerifyKindName, VerifyPlan, VerifySection, MIN_STAMPED_BYTES,
};
use {fleet::fleet, protocol::protocol, target::target, target::tier, tls::tls};

/// Run-wide bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Hard bound on the run.
    pub max_duration: Duration,
    /// Drain time after the schedule ends or is interrupted.
    pub grace: Duration,
}

/// A validated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Scenario name.
    pub name: String,
    /// The scenario's free-text description, if it has one.
    pub description: Option<String>,
    /// Target.
    pub target: Target,
    /// Protocol.
    pub protocol: ProtocolPlan,
    /// TLS.
    pub tls: TlsPlan,
    /// Fleet.
    pub fleet: FleetPlan,
    /// Connects.
    pub connect: ConnectPlan,
    /// Messages.
    pub messages: MessagePlan,
    /// Session lifetime (hold, churn).
    pub session: SessionPlan,
    /// Reconnecting after failures, if at all.
    pub reconnect: Option<ReconnectPlan>,
    /// The IoT Hub tier and units the target stands for, if named.
    pub tier: Option<(crate::hub::throttle::Tier, u32)>,
    /// The Event Grid namespace's throughput units, with dialect = "event-grid".
    pub throughput_units: Option<u32>,
    /// Bounds.
    pub run: RunPlan,
    /// Pass/fail conditions judged at the end of the run, sorted by metric name.
    pub thresholds: Vec<Threshold>,
    /// The verifying receiver, if the scenario names one (`[verify]`).
    pub verify: Option<VerifyPlan>,
    /// The capacity search, if the scenario asks for one (`[capacity]`).
    pub capacity: Option<CapacityPlan>,
    /// The WebSocket upgrade after the TLS handshake, when `[transport] websocket = true`.
    pub websocket: Option<crate::transport::WsTarget>,
    /// A sweep's cells, each a plan of its own (`[matrix]`).
    pub matrix: Option<MatrixPlan>,
}

/// The embedded hub speaks IoT Hub's MQTT conventions only: a generic MQTT scenario against
/// it would fail every session, so it is refused here.
fn generic_mqtt_needs_a_broker(
    target: Option<&Target>,
    protocol: Option<&ProtocolPlan>,
    p: &mut Problems<'_>,
) {
    if let (Some(Target::Embedded), Some(ProtocolPlan::Mqtt(m))) = (target, protocol) {
        if matches!(m.dialect, MqttDialect::Generic { .. }) {
            p.add(
                "protocol.dialect",
                "\"generic\" and \"event-grid\" need your own broker: the embedded hub speaks IoT Hub's MQTT conventions only; set [target] hub = \"remote\" and address, or use dialect = \"iot-hub\"",
            );
        }
    }
}

impl Plan {
    /// Parses and validates a scenario file with overrides.
    pub fn from_file(path: &Path, overrides: &Overrides) -> Result<Self, ConfigErrors> {
        let (scenario, text) = Scenario::load(path)?;
        let name = scenario.name.clone().unwrap_or_else(|| {
            path.file_stem().map_or_else(
                || "scenario".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            )
        });
        Self::new(&scenario, &text, path, &name, overrides)
    }

    /// Validates a parsed scenario (`text` is its source, for locating errors).
    pub fn new(
        s: &Scenario,
        text: &str,
        file: &Path,
        default_name: &str,
        overrides: &Overrides,
    ) -> Result<Self, ConfigErrors> {
        let mut p = Problems::new(file, text);
        // `wss://host:port/path` is `host:port` with `[transport] websocket = true` and the path.
        let taken_apart = transport::wss_address(s, &mut p);
        let s = taken_apart.as_ref().unwrap_or(s);
        let name = s.name.clone().unwrap_or_else(|| default_name.to_owned());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            p.add("name", format!("{name:?} is not valid: use letters, digits, '-', '_' and '.' (it names the results directory)"));
        }
        let target = target(s, &mut p);
        let protocol = protocol(s, &mut p);
        let tls = tls(s, &mut p);
        let fleet = fleet(s, overrides, &mut p);
        let connect = shape::connect(s, overrides, &mut p);
        let messages = shape::messages(s, overrides, &mut p);
        let session = shape::session(s, &mut p);
        let reconnect = shape::reconnect(s, &mut p);
        let tier = tier(s, &mut p);
        let websocket = transport::websocket(s, protocol.as_ref(), &mut p);
        if let (Some(f), Some(c)) = (&fleet, &connect) {
            shape::check_fleet_size(
                f.devices,
                s.fleet.devices.is_some() || overrides.devices.is_some(),
                c,
                &mut p,
            );
        }
        generic_mqtt_needs_a_broker(target.as_ref(), protocol.as_ref(), &mut p);
        let thresholds = super::thresholds::thresholds(s, &mut p);
        let verify = s.verify.as_ref().and_then(|v| {
            let payload = messages.as_ref().map(|m| m.payload);
            verify::verify(v, target.as_ref(), protocol.as_ref(), payload, &mut p)
        });
        let capacity = capacity::capacity(s, text, &mut p);
        let run = RunPlan {
            max_duration: s.run.max_duration.unwrap_or(Duration::from_secs(300)),
            grace: s.run.grace.unwrap_or(Duration::from_secs(10)),
        };
        if run.max_duration.is_zero() {
            p.add(
                "run.max-duration",
                "0s is not valid: the run needs time to do anything",
            );
        }
        let matrix = matrix::matrix(s, text, file, default_name, overrides, &mut p);
        match (target, protocol, fleet, connect, messages, session) {
            (
                Some(target),
                Some(protocol),
                Some(mut fleet),
                Some(connect),
                Some(messages),
                Some(session),
            ) if p.errors.is_empty() => {
                // Stages without an explicit fleet size: one device per peak session.
                let explicit = s.fleet.devices.is_some() || overrides.devices.is_some();
                if let (Some(peak), false) = (connect.schedule.peak_sessions(), explicit) {
                    fleet.devices = peak.max(1);
                }
                Ok(Self {
                    name,
                    description: s.description.clone().filter(|d| !d.trim().is_empty()),
                    target,
                    protocol,
                    tls,
                    fleet,
                    connect,
                    messages,
                    session,
                    reconnect,
                    tier,
                    throughput_units: throughput_units(s),
                    run,
                    thresholds,
                    verify,
                    capacity,
                    websocket,
                    matrix,
                })
            }
            _ => {
                // In file order, so the list reads top to bottom.
                p.errors
                    .sort_by_key(|e| (e.line.is_none(), e.line, e.column));
                Err(ConfigErrors(p.errors))
            }
        }
    }

    /// The plan as JSON, every default filled in (written to `summary.json`).
    pub fn to_json(&self) -> serde_json::Value {
        let target = match &self.target {
            Target::Embedded => json!({"hub": "embedded"}),
            Target::Remote {
                address,
                server_name,
                ca_file,
                verify_server,
                accounts,
            } => json!({"hub": "remote", "address": address, "server-name": server_name,
                        "ca-file": ca_file, "verify-server": verify_server,
                        "accounts": accounts}),
        };
        let protocol = match &self.protocol {
            ProtocolPlan::Amqp(a) => amqp::to_json(a),
            ProtocolPlan::Mqtt(m) => {
                let mut v = json!({"kind": "mqtt", "qos": m.qos as u8,
                    "keep-alive": humantime::format_duration(Duration::from_secs(m.keep_alive_secs.into())).to_string(),
                    "clean-session": m.clean_session});
                if let crate::protocol::MqttVersion::V5(o) = &m.version {
                    v["version"] = json!("5");
                    v["session-expiry"] = json!(humantime::format_duration(Duration::from_secs(
                        o.session_expiry_secs.into()
                    ))
                    .to_string());
                    v["receive-maximum"] = json!(o.receive_maximum);
                    v["maximum-packet-size"] = json!(o.max_packet_size);
                    v["topic-alias"] = json!(o.topic_alias);
                }
                match &m.dialect {
                    MqttDialect::IotHub { api_version } => {
                        v["dialect"] = json!("iot-hub");
                        v["api-version"] = json!(api_version);
                    }
                    MqttDialect::Generic {
                        topic,
                        client_id,
                        username,
                        password,
                    } => {
                        v["dialect"] = json!("generic");
                        v["topic"] = json!(topic);
                        v["client-id"] = json!(client_id);
                        v["username"] = json!(username);
                        // Never the password itself: summary.json is shared.
                        v["password"] = json!(password.as_ref().map(|_| "(set, not shown)"));
                    }
                }
                if let Some(units) = self.throughput_units {
                    // Generic strings with Event Grid's defaults: named as the scenario named it.
                    v["dialect"] = json!("event-grid");
                    v["throughput-units"] = json!(units);
                }
                v
            }
        };
        let d = |d: Duration| humantime::format_duration(d).to_string();
        json!({
            "name": self.name,
            "description": self.description,
            "target": target,
            "protocol": protocol,
            "tls": {"version": self.tls.version.to_string(), "resumption": self.tls.resumption,
                    "cipher-suites": self.tls.cipher_suites, "groups": self.tls.groups,
                    "provider": self.tls.provider.name(), "hub-provider": self.tls.hub.provider.name(),
                    "hub-groups": self.tls.hub.groups},
            "fleet": {"devices": self.fleet.devices, "id": self.fleet.ids.to_string(),
                      "key-type": self.fleet.key_type.name(), "ca-key-type": self.fleet.ca_key_type.name(),
                      "intermediates": self.fleet.intermediates, "validity-days": self.fleet.validity_days,
                      "ca-dir": self.fleet.ca_dir.as_ref().map(|c| &c.path)},
            "connect": self.connect.to_json(),
            "messages": self.messages.to_json(),
            "session": self.session.to_json(),
            "reconnect": self.reconnect.as_ref().map(ReconnectPlan::to_json),
            "tier": self.tier.map(|(t, u)| json!({"tier": t.to_string(), "units": u})),
            "run": {"max-duration": d(self.run.max_duration), "grace": d(self.run.grace)},
            "verify": self.verify.as_ref().map(VerifyPlan::to_json),
            "transport": transport::to_json(self.websocket.as_ref()),
            "thresholds": self.thresholds.iter()
                .map(|t| (t.name.clone(), json!(t.condition)))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scenario::test_plan as plan;

    #[test]
    fn defaults_make_a_valid_plan() {
        let p = plan("").unwrap();
        assert_eq!(p.fleet.devices, 100);
        assert_eq!(p.target, Target::Embedded);
        assert_eq!(p.messages.count, 5);
    }

    #[test]
    fn zero_devices_is_named_with_line_and_field() {
        let e = plan("name = \"x\"\n[fleet]\ndevices = 0\n").unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].field, "fleet.devices");
        assert_eq!(e.0[0].line, Some(3));
        assert!(
            e.to_string()
                .contains("t.toml:3:1: fleet.devices: 0 is not valid"),
            "{e}"
        );
    }

    #[test]
    fn validity_past_9999_is_named_with_line_and_the_largest_value() {
        let e = plan("[fleet]\nvalidity-days = 100000000\n").unwrap_err();
        assert_eq!(e.0[0].field, "fleet.validity-days");
        assert_eq!(e.0[0].line, Some(2));
        let text = e.to_string();
        assert!(text.contains("100000000 days is not valid"), "{text}");
        assert!(text.contains("at most"), "{text}");
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let e = plan("[fleet]\ndevices = 0\nkey-type = \"dsa\"\n[connect]\nrate = -1.0\n[protocol]\nqos = 2\n").unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "fleet.devices",
                "fleet.key-type",
                "connect.rate",
                "protocol.qos"
            ]
        );
    }

    #[test]
    fn templates_naming_unknown_fields_are_refused() {
        let e = plan("[protocol]\ndialect = \"generic\"\ntopic = \"t/{device}/x\"\n").unwrap_err();
        assert!(
            e.0.iter()
                .any(|e| e.field == "protocol.topic" && e.message.contains("{device}")),
            "{e}"
        );
    }

    #[test]
    fn contradictory_settings_are_refused() {
        let e = plan("[protocol]\ntopic = \"x/{device_id}\"\n").unwrap_err();
        assert_eq!(e.0[0].field, "protocol.topic");
    }

    #[test]
    fn a_ca_dir_comes_from_the_file_or_the_command_line() {
        let p = plan("[fleet]\nca-dir = \"ca\"\nintermediates = 2\n").unwrap();
        let ca = p.fleet.ca_dir.unwrap();
        assert_eq!(
            (ca.path.as_path(), ca.intermediates),
            (Path::new("ca"), Some(2))
        );
        let e = plan("[fleet]\nca-dir = \"ca\"\nca-key-type = \"rsa-2048\"\n").unwrap_err();
        assert_eq!(e.0[0].field, "fleet.ca-key-type");
        let o = Overrides {
            ca_dir: Some("other".into()),
            ..Overrides::default()
        };
        let p = Plan::new(&Scenario::default(), "", Path::new("t.toml"), "t", &o).unwrap();
        assert_eq!(p.fleet.ca_dir.unwrap().path, Path::new("other"));
    }

    #[test]
    fn overrides_win() {
        let s = Scenario::default();
        let o = Overrides {
            devices: Some(7),
            ..Overrides::default()
        };
        let p = Plan::new(&s, "", Path::new("t.toml"), "t", &o).unwrap();
        assert_eq!(p.fleet.devices, 7);
    }

    #[test]
    fn load_shape_contradictions_are_named() {
        let e = plan("[connect]\nrate = 5.0\n[[stages]]\nduration = \"1s\"\nsessions = 3\n")
            .unwrap_err();
        assert!(
            e.0.iter()
                .any(|e| e.field == "connect.rate" && e.message.contains("stages")),
            "{e}"
        );
        let e = plan("[churn]\nduration = \"1s\"\n").unwrap_err();
        assert!(
            e.0.iter()
                .any(|e| e.field == "churn" && e.message.contains("connect.rate")),
            "{e}"
        );
        let e = plan("[messages]\nmodel = \"closed\"\ninterval = \"1s\"\n").unwrap_err();
        assert_eq!(e.0[0].field, "messages.interval");
        let e = plan("[connect]\narrival = \"poisson\"\n").unwrap_err();
        assert_eq!(e.0[0].field, "connect.arrival");
        let e = plan("[fleet]\ndevices = 2\n[[stages]]\nduration = \"1s\"\nsessions = 3\n")
            .unwrap_err();
        assert_eq!(e.0[0].field, "fleet.devices");
        let e = plan("[tls]\nversion = \"1.3\"\ncipher-suites = [\"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]\n").unwrap_err();
        assert!(
            e.0[0]
                .message
                .contains("is a TLS 1.2 suite, but tls.version is 1.3"),
            "{e}"
        );
    }

    #[test]
    fn stages_size_the_fleet_and_ramp_sets_a_rate() {
        let p = plan("[[stages]]\nduration = \"1s\"\nsessions = 30\n").unwrap();
        assert_eq!(p.fleet.devices, 30);
        assert_eq!(p.session, SessionPlan::Staged);
        let p = plan("[fleet]\ndevices = 50\n[connect]\nramp = \"10s\"\n").unwrap();
        assert_eq!(
            p.connect.schedule.arrivals().nth(1),
            Some(Duration::from_millis(200))
        );
    }
}
