//! The validated plan of a run: a [`Scenario`] with every default filled in, every value
//! checked, and command-line overrides applied. Downstream code never re-checks it.

mod amqp;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::problems::{Overrides, Problems};
use super::shape::{self, ConnectPlan, MessagePlan, ReconnectPlan, SessionPlan};
use super::{ConfigErrors, Dialect, HubKind, ProtocolKind, Scenario};
use crate::metrics::Threshold;
use crate::pki::{IdTemplate, KeyType, Validity};
use crate::protocol::{AmqpOptions, MqttDialect, MqttOptions, QoS};
use crate::transport::TlsVersion;

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
    },
}

/// Protocol settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolPlan {
    /// AMQP 1.0.
    Amqp(AmqpOptions),
    /// MQTT 3.1.1.
    Mqtt(MqttOptions),
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPlan {
    /// Version.
    pub version: TlsVersion,
    /// Session resumption offered on reconnects.
    pub resumption: bool,
    /// Cipher suites offered (rustls names); empty = the provider's defaults.
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups offered; empty = the provider's defaults.
    pub groups: Vec<String>,
}

fn tls(s: &Scenario, p: &mut Problems<'_>) -> TlsPlan {
    let t = &s.tls;
    let version = t.version.unwrap_or_default();
    let cipher_suites = t.cipher_suites.clone().unwrap_or_default();
    for name in &cipher_suites {
        match crate::transport::tls::cipher_suite(name) {
            None => p.add(
                "tls.cipher-suites",
                format!(
                    "unknown cipher suite {name:?}; known: {}",
                    crate::transport::tls::cipher_suite_names().join(", ")
                ),
            ),
            Some(suite) if suite.version().version != version.rustls() => p.add(
                "tls.cipher-suites",
                format!(
                    "{name:?} is a TLS {} suite, but tls.version is {}",
                    suite_version(suite),
                    version
                ),
            ),
            Some(_) => {}
        }
    }
    let groups = t.groups.clone().unwrap_or_default();
    for name in &groups {
        if crate::transport::tls::group(name).is_none() {
            p.add(
                "tls.groups",
                format!("unknown key-exchange group {name:?}; known: x25519, secp256r1, secp384r1"),
            );
        }
    }
    TlsPlan {
        version,
        resumption: t.resumption.unwrap_or(false),
        cipher_suites,
        groups,
    }
}

fn tier(s: &Scenario, p: &mut Problems<'_>) -> Option<(crate::hub::throttle::Tier, u32)> {
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

fn suite_version(suite: rustls::SupportedCipherSuite) -> &'static str {
    match suite {
        rustls::SupportedCipherSuite::Tls12(_) => "1.2",
        rustls::SupportedCipherSuite::Tls13(_) => "1.3",
    }
}

/// The fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPlan {
    /// Devices (whole fleet).
    pub devices: u64,
    /// Id template.
    pub ids: IdTemplate,
    /// Device key type.
    pub key_type: KeyType,
    /// CA key type.
    pub ca_key_type: KeyType,
    /// Intermediates.
    pub intermediates: u8,
    /// Device certificate validity, days.
    pub validity_days: u32,
    /// An existing CA directory signs the devices (`None`: a chain is minted for the run).
    pub ca_dir: Option<CaDirPlan>,
}

/// Devices signed by an existing CA directory.
#[derive(Debug, Clone, PartialEq)]
pub struct CaDirPlan {
    /// The directory.
    pub path: PathBuf,
    /// `fleet.intermediates` when the scenario states it: the directory must hold that many.
    pub intermediates: Option<u8>,
}

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
    /// Bounds.
    pub run: RunPlan,
    /// Pass/fail conditions judged at the end of the run, sorted by metric name.
    pub thresholds: Vec<Threshold>,
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
        if let (Some(f), Some(c)) = (&fleet, &connect) {
            shape::check_fleet_size(
                f.devices,
                s.fleet.devices.is_some() || overrides.devices.is_some(),
                c,
                &mut p,
            );
        }
        let thresholds = super::thresholds::thresholds(s, &mut p);
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
                    target,
                    protocol,
                    tls,
                    fleet,
                    connect,
                    messages,
                    session,
                    reconnect,
                    tier,
                    run,
                    thresholds,
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
            } => json!({"hub": "remote", "address": address, "server-name": server_name,
                        "ca-file": ca_file, "verify-server": verify_server}),
        };
        let protocol = match &self.protocol {
            ProtocolPlan::Amqp(a) => amqp::to_json(a),
            ProtocolPlan::Mqtt(m) => {
                let mut v = json!({"kind": "mqtt", "qos": m.qos as u8,
                    "keep-alive": humantime::format_duration(Duration::from_secs(m.keep_alive_secs.into())).to_string(),
                    "clean-session": m.clean_session});
                match &m.dialect {
                    MqttDialect::IotHub { api_version } => {
                        v["dialect"] = json!("iot-hub");
                        v["api-version"] = json!(api_version);
                    }
                    MqttDialect::Generic {
                        topic,
                        client_id,
                        username,
                    } => {
                        v["dialect"] = json!("generic");
                        v["topic"] = json!(topic);
                        v["client-id"] = json!(client_id);
                        v["username"] = json!(username);
                    }
                }
                v
            }
        };
        let d = |d: Duration| humantime::format_duration(d).to_string();
        json!({
            "name": self.name,
            "target": target,
            "protocol": protocol,
            "tls": {"version": self.tls.version.to_string(), "resumption": self.tls.resumption,
                    "cipher-suites": self.tls.cipher_suites, "groups": self.tls.groups},
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
            "thresholds": self.thresholds.iter()
                .map(|t| (t.name.clone(), json!(t.condition)))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn target(s: &Scenario, p: &mut Problems<'_>) -> Option<Target> {
    let t = &s.target;
    match t.hub.unwrap_or(HubKind::Embedded) {
        HubKind::Embedded => {
            p.not_applicable(
                &[
                    (t.address.is_some(), "target.address"),
                    (t.server_name.is_some(), "target.server-name"),
                    (t.ca_file.is_some(), "target.ca-file"),
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
            })
        }
    }
}

fn protocol(s: &Scenario, p: &mut Problems<'_>) -> Option<ProtocolPlan> {
    let pr = &s.protocol;
    if pr.kind == Some(ProtocolKind::Amqp) {
        return amqp::protocol(pr, p);
    }
    p.not_applicable(
        &[
            (pr.address.is_some(), "protocol.address"),
            (pr.sasl.is_some(), "protocol.sasl"),
            (pr.settle_mode.is_some(), "protocol.settle-mode"),
        ],
        "only applies to kind = \"amqp\"",
    );
    let qos = match pr.qos.unwrap_or(1) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => {
            p.add(
                "protocol.qos",
                format!("{q} is not valid: 0 or 1 (IoT Hub closes the connection on QoS 2)"),
            );
            QoS::AtLeastOnce
        }
    };
    let keep_alive = pr.keep_alive.unwrap_or(Duration::from_secs(60));
    let keep_alive_secs = match u16::try_from(keep_alive.as_secs()) {
        Ok(k) if keep_alive.subsec_nanos() == 0 => k,
        _ => {
            p.add(
                "protocol.keep-alive",
                format!(
                    "{} is not valid: whole seconds up to 65535",
                    humantime::format_duration(keep_alive)
                ),
            );
            60
        }
    };
    let dialect = match pr.dialect.unwrap_or(Dialect::IotHub) {
        Dialect::IotHub => {
            p.not_applicable(
                &[
                (pr.topic.is_some(), "protocol.topic"),
                (pr.client_id.is_some(), "protocol.client-id"),
                (pr.username.is_some(), "protocol.username"),
                ],
                "only applies to dialect = \"generic\"; IoT Hub fixes topic, client id and username",
            );
            MqttDialect::IotHub {
                api_version: iot_hub_api_version(pr),
            }
        }
        Dialect::Generic => {
            if pr.api_version.is_some() {
                p.add(
                    "protocol.api-version",
                    "only applies to dialect = \"iot-hub\"",
                );
            }
            let topic = pr
                .topic
                .clone()
                .unwrap_or_else(|| "fleet/{device_id}/telemetry".to_owned());
            let client_id = pr
                .client_id
                .clone()
                .unwrap_or_else(|| "{device_id}".to_owned());
            for (field, value) in [
                ("protocol.topic", Some(&topic)),
                ("protocol.client-id", Some(&client_id)),
                ("protocol.username", pr.username.as_ref()),
            ] {
                if let Some(v) = value {
                    check_template(v, field, p);
                }
            }
            MqttDialect::Generic {
                topic,
                client_id,
                username: pr.username.clone(),
            }
        }
    };
    Some(ProtocolPlan::Mqtt(MqttOptions {
        dialect,
        qos,
        keep_alive_secs,
        clean_session: pr.clean_session.unwrap_or(false),
    }))
}

/// The `api-version` IoT Hub usernames and AMQP attach properties carry (the docs' current one
/// unless the scenario names another).
pub(super) fn iot_hub_api_version(pr: &super::ProtocolSection) -> String {
    pr.api_version
        .clone()
        .unwrap_or_else(|| "2021-04-12".to_owned())
}

/// Templates may name only `{device_id}`.
fn check_template(template: &str, field: &str, p: &mut Problems<'_>) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            p.add(field, format!("{template:?} has an unclosed '{{'"));
            return;
        };
        let name = &rest[open + 1..open + close];
        if name != "device_id" {
            p.add(
                field,
                format!(
                    "{template:?} names unknown field {{{name}}}; the only field is {{device_id}}"
                ),
            );
        }
        rest = &rest[open + close + 1..];
    }
}

fn key_type(value: Option<&String>, field: &str, p: &mut Problems<'_>) -> KeyType {
    match value.map(|v| v.parse::<KeyType>()) {
        None => KeyType::EcdsaP256,
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            p.add(field, e);
            KeyType::EcdsaP256
        }
    }
}

fn fleet(s: &Scenario, o: &Overrides, p: &mut Problems<'_>) -> Option<FleetPlan> {
    let f = &s.fleet;
    let devices = o.devices.or(f.devices).unwrap_or(100);
    if devices == 0 {
        p.add(
            "fleet.devices",
            "0 is not valid: a fleet needs at least one device",
        );
    }
    if devices > 10_000_000 {
        p.add(
            "fleet.devices",
            format!("{devices} is not valid: at most 10,000,000 (IoT Hub holds 1,000,000 per hub)"),
        );
    }
    let ids = match IdTemplate::parse(f.id.as_deref().unwrap_or("device-{n:05}")) {
        Ok(t) => Some(t),
        Err(e) => {
            p.add("fleet.id", e.to_string());
            None
        }
    };
    let key = key_type(f.key_type.as_ref(), "fleet.key-type", p);
    let ca_key = key_type(f.ca_key_type.as_ref(), "fleet.ca-key-type", p);
    let ca_dir = o
        .ca_dir
        .clone()
        .or_else(|| f.ca_dir.clone())
        .map(|path| CaDirPlan {
            path,
            intermediates: f.intermediates,
        });
    if ca_dir.is_some() && f.ca_key_type.is_some() {
        p.add(
            "fleet.ca-key-type",
            "only applies without a CA directory; the CA directory's keys fix it",
        );
    }
    let intermediates = f.intermediates.unwrap_or(1);
    if intermediates > 8 {
        p.add(
            "fleet.intermediates",
            format!("{intermediates} is not valid: at most 8"),
        );
    }
    let validity_days = f.validity_days.unwrap_or(30);
    if let Err(e) = Validity::check_days(u64::from(validity_days)) {
        p.add("fleet.validity-days", e.to_string());
    }
    Some(FleetPlan {
        devices,
        ids: ids?,
        key_type: key,
        ca_key_type: ca_key,
        intermediates,
        validity_days,
        ca_dir,
    })
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
        assert!(e.0[0].message.contains("{device}"), "{e}");
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
