//! The validated plan of a run: a [`Scenario`] with every default filled in, every value
//! checked, and command-line overrides applied. Downstream code never re-checks it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::locate::Locator;
use super::{ConfigError, ConfigErrors, Dialect, HubKind, PayloadKind, ProtocolKind, Scenario};
use crate::pki::{IdTemplate, KeyType};
use crate::protocol::{MqttDialect, MqttOptions, QoS};
use crate::transport::TlsVersion;

/// Command-line overrides of the common knobs.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--devices`
    pub devices: Option<u64>,
    /// `--rate`
    pub rate: Option<f64>,
    /// `--messages`
    pub messages: Option<u32>,
    /// `--interval`
    pub interval: Option<Duration>,
    /// `--max-handshakes`
    pub max_handshakes: Option<u32>,
    /// `--ca`
    pub ca_dir: Option<PathBuf>,
}

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

/// Connect schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPlan {
    /// New sessions per second, or as fast as the handshake cap allows.
    pub rate: Option<f64>,
    /// Handshakes in flight at most.
    pub max_handshakes: u32,
    /// Timeout of each connect phase.
    pub timeout: Duration,
}

/// What a payload looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Random bytes of this size.
    Bytes(usize),
    /// The Azure tutorial's JSON with `temperatureAlert`.
    Tutorial,
}

/// What each device sends.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePlan {
    /// Messages per device.
    pub count: u32,
    /// Time between a device's messages.
    pub interval: Duration,
    /// Payload.
    pub payload: Payload,
    /// Acknowledgement timeout.
    pub timeout: Duration,
    /// Acknowledgements awaited at once per device.
    pub max_inflight: u32,
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
    /// Bounds.
    pub run: RunPlan,
}

/// Collects located errors.
struct Problems<'a> {
    file: &'a Path,
    locator: Locator,
    errors: Vec<ConfigError>,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        // Point at the field, or at its table, or at nothing when it came from defaults/CLI.
        let span = self.locator.span_of(field).or_else(|| {
            field
                .rsplit_once('.')
                .and_then(|(table, _)| self.locator.span_of(table))
        });
        let (line, column) = span
            .map(|s| self.locator.line_col(s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
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
        let mut p = Problems {
            file,
            locator: Locator::new(text),
            errors: Vec::new(),
        };
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
        let tls = TlsPlan {
            version: s.tls.version.unwrap_or_default(),
            resumption: s.tls.resumption.unwrap_or(false),
        };
        let fleet = fleet(s, overrides, &mut p);
        let connect = connect(s, overrides, &mut p);
        let messages = messages(s, overrides, &mut p);
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
        match (target, protocol, fleet, connect, messages) {
            (Some(target), Some(protocol), Some(fleet), Some(connect), Some(messages))
                if p.errors.is_empty() =>
            {
                Ok(Self {
                    name,
                    target,
                    protocol,
                    tls,
                    fleet,
                    connect,
                    messages,
                    run,
                })
            }
            _ => Err(ConfigErrors(p.errors)),
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
            "tls": {"version": match self.tls.version { TlsVersion::Tls12 => "1.2", TlsVersion::Tls13 => "1.3" },
                    "resumption": self.tls.resumption},
            "fleet": {"devices": self.fleet.devices, "id": self.fleet.ids.to_string(),
                      "key-type": self.fleet.key_type.name(), "ca-key-type": self.fleet.ca_key_type.name(),
                      "intermediates": self.fleet.intermediates, "validity-days": self.fleet.validity_days,
                      "ca-dir": self.fleet.ca_dir.as_ref().map(|c| &c.path)},
            "connect": {"rate": self.connect.rate, "max-handshakes": self.connect.max_handshakes,
                        "timeout": d(self.connect.timeout)},
            "messages": {"count": self.messages.count, "interval": d(self.messages.interval),
                         "payload": match self.messages.payload { Payload::Tutorial => json!("tutorial"),
                                                                  Payload::Bytes(n) => json!({"bytes": n}) },
                         "timeout": d(self.messages.timeout), "max-inflight": self.messages.max_inflight},
            "run": {"max-duration": d(self.run.max_duration), "grace": d(self.run.grace)},
        })
    }
}

fn target(s: &Scenario, p: &mut Problems<'_>) -> Option<Target> {
    let t = &s.target;
    match t.hub.unwrap_or(HubKind::Embedded) {
        HubKind::Embedded => {
            for (set, field) in [
                (t.address.is_some(), "target.address"),
                (t.server_name.is_some(), "target.server-name"),
                (t.ca_file.is_some(), "target.ca-file"),
            ] {
                if set {
                    p.add(
                        field,
                        "only applies to hub = \"remote\"; the embedded hub makes its own",
                    );
                }
            }
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
        p.add(
            "protocol.kind",
            "amqp is not available in this build yet; use \"mqtt\"",
        );
        return None;
    }
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
            for (set, field) in [
                (pr.topic.is_some(), "protocol.topic"),
                (pr.client_id.is_some(), "protocol.client-id"),
                (pr.username.is_some(), "protocol.username"),
            ] {
                if set {
                    p.add(field, "only applies to dialect = \"generic\"; IoT Hub fixes topic, client id and username");
                }
            }
            MqttDialect::IotHub {
                api_version: pr
                    .api_version
                    .clone()
                    .unwrap_or_else(|| "2021-04-12".to_owned()),
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
    if validity_days == 0 {
        p.add(
            "fleet.validity-days",
            "0 is not valid: certificates must be valid for at least a day",
        );
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

fn connect(s: &Scenario, o: &Overrides, p: &mut Problems<'_>) -> Option<ConnectPlan> {
    let c = &s.connect;
    let rate = o.rate.or(c.rate);
    if let Some(r) = rate {
        if !(r.is_finite() && r > 0.0 && r <= 1_000_000.0) {
            p.add(
                "connect.rate",
                format!("{r} is not valid: a rate above 0 and at most 1,000,000 per second"),
            );
        }
    }
    let max_handshakes = o.max_handshakes.or(c.max_handshakes).unwrap_or(64);
    if max_handshakes == 0 {
        p.add(
            "connect.max-handshakes",
            "0 is not valid: at least one handshake must be allowed",
        );
    }
    let timeout = c.timeout.unwrap_or(Duration::from_secs(10));
    if timeout.is_zero() {
        p.add("connect.timeout", "0s is not valid");
    }
    Some(ConnectPlan {
        rate,
        max_handshakes,
        timeout,
    })
}

fn messages(s: &Scenario, o: &Overrides, p: &mut Problems<'_>) -> Option<MessagePlan> {
    let m = &s.messages;
    let payload = match (m.payload.unwrap_or(PayloadKind::Tutorial), m.size) {
        (PayloadKind::Tutorial, None) => Payload::Tutorial,
        (PayloadKind::Tutorial, Some(_)) => {
            p.add(
                "messages.size",
                "only applies to payload = \"bytes\"; the tutorial payload has its own size",
            );
            Payload::Tutorial
        }
        (PayloadKind::Bytes, size) => {
            let size = size.unwrap_or(256);
            if size > 1024 * 1024 {
                p.add(
                    "messages.size",
                    format!("{size} is not valid: at most 1 MiB"),
                );
            }
            Payload::Bytes(size)
        }
    };
    let timeout = m.timeout.unwrap_or(Duration::from_secs(30));
    if timeout.is_zero() {
        p.add("messages.timeout", "0s is not valid");
    }
    let max_inflight = m.max_inflight.unwrap_or(16);
    if max_inflight == 0 || max_inflight > 65_535 {
        p.add(
            "messages.max-inflight",
            format!("{max_inflight} is not valid: 1 to 65535"),
        );
    }
    Some(MessagePlan {
        count: o.messages.or(m.count).unwrap_or(5),
        interval: o.interval.or(m.interval).unwrap_or(Duration::from_secs(1)),
        payload,
        timeout,
        max_inflight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan, ConfigErrors> {
        let s = Scenario::parse(text, Path::new("t.toml"))?;
        Plan::new(&s, text, Path::new("t.toml"), "t", &Overrides::default())
    }

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
    fn every_problem_is_listed_at_once() {
        let e = plan("[fleet]\ndevices = 0\nkey-type = \"dsa\"\n[connect]\nrate = -1.0\n[protocol]\nqos = 2\n").unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "protocol.qos",
                "fleet.devices",
                "fleet.key-type",
                "connect.rate"
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
}
