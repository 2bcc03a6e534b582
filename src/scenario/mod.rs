//! Scenario files: the TOML format (this file, the "LowArgs"), and the validated [`Plan`] made
//! from it (`plan.rs`, the "HiArgs"). Every problem found is reported at once with the file,
//! line, column and field; nothing downstream re-checks a plan.

mod locate;
mod plan;
mod problems;
mod rates;
pub mod schedule;
mod shape;
mod shard;
mod thresholds;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use locate::Locator;
pub use plan::{
    Axis, CaDirPlan, CapacityCheck, CapacityPlan, FleetPlan, MatrixCell, MatrixOrder, MatrixPlan,
    Plan, ProtocolPlan, RunPlan, SearchKind, SkippedCell, Target, TlsPlan, VerifyIdentity,
    VerifyKind, VerifyKindName, VerifyPlan, VerifySection, MIN_STAMPED_BYTES,
};
pub use problems::Overrides;
pub use shape::{
    parse_addresses, ConnectPlan, MessagePlan, Payload, ReconnectPlan, SendModel, SessionPlan,
};
pub use shard::{Shard, ShardError};

/// One problem in a scenario, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted field path, e.g. `fleet.devices`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "scenario has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.0.iter().enumerate() {
            if i + 1 < n {
                writeln!(f, "  {e}")?;
            } else {
                write!(f, "  {e}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A scenario file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// Name used for the results directory (default: the file name).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Which hub.
    #[serde(default)]
    pub target: TargetSection,
    /// Protocol and dialect.
    #[serde(default)]
    pub protocol: ProtocolSection,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSection,
    /// The fleet of devices.
    #[serde(default)]
    pub fleet: FleetSection,
    /// How devices connect.
    #[serde(default)]
    pub connect: ConnectSection,
    /// What devices send.
    #[serde(default)]
    pub messages: MessagesSection,
    /// k6-style stages of open sessions (ramp up, hold, ramp down).
    pub stages: Option<Vec<StageSection>>,
    /// Session lifetime after the messages.
    #[serde(default)]
    pub session: SessionSection,
    /// Churn: connect, send k, disconnect, reconnect, for a duration.
    pub churn: Option<ChurnSection>,
    /// Reconnect after a failed session, with exponential backoff and jitter.
    pub reconnect: Option<ReconnectSection>,
    /// Run-wide bounds.
    #[serde(default)]
    pub run: RunSection,
    /// Pass/fail conditions: metric = "condition", e.g. `"tls_handshake.p99" = "< 50ms"`.
    /// Dotted keys may be quoted or not; either way they name one metric.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub thresholds: toml::Table,
    /// A verifying receiver that reads what the devices send (`[verify]`).
    pub verify: Option<VerifySection>,
    /// A capacity search (`[capacity]`): the highest rate that holds an SLO.
    pub capacity: Option<CapacitySection>,
    /// MQTT or AMQP over WebSockets (`[transport]`).
    #[serde(default)]
    pub transport: TransportSection,
    /// A sweep: every cell of these axes runs in alternating rounds (`[matrix]`).
    pub matrix: Option<MatrixSection>,
}

/// `[transport]`: the protocol inside a WebSocket in the TLS stream, as IoT Hub's port 443.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TransportSection {
    /// MQTT (subprotocol `mqtt`) or AMQP (`AMQPWSB10`) over WebSockets (default false).
    pub websocket: Option<bool>,
    /// The upgrade's path (default: IoT Hub's `/$iothub/websocket`; generic MQTT `/mqtt`,
    /// generic AMQP `/`).
    pub path: Option<String>,
}

/// `[capacity]`: step the offered rate up, then bisect, to find the highest rate whose trials
/// hold the SLO for the hold time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CapacitySection {
    /// What to search: `connects` (default: new sessions per second) or `sends`.
    pub search: Option<String>,
    /// The first offered rate, per second (default 10).
    pub start: Option<f64>,
    /// The step-up factor while the SLO holds (default 2).
    pub factor: Option<f64>,
    /// The highest rate to try (default 10,000).
    pub max: Option<f64>,
    /// How long each trial offers its rate (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub hold: Option<Duration>,
    /// Bisect until the bracket is this narrow, relative (default 0.05).
    pub precision: Option<f64>,
    /// Conditions every trial must meet, as in `[thresholds]`.
    #[serde(default)]
    pub slo: toml::Table,
    /// Conditions on the result for CI, e.g. `"capacity.connect_rate" = "> 500"`.
    #[serde(default)]
    pub verdict: toml::Table,
}

/// `[target]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetSection {
    /// `embedded` (default) or `remote`.
    pub hub: Option<HubKind>,
    /// `host:port` of a remote hub or broker.
    pub address: Option<String>,
    /// TLS server name (SNI) and the host in IoT Hub usernames (default: the address's host).
    pub server_name: Option<String>,
    /// PEM file with the roots that sign the remote server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Check the server's certificate (default true).
    pub verify_server: Option<bool>,
    /// `host:port` of a fleetbench hub's accounting (`hub serve --metrics`), asked at the end
    /// of the run for what the hub received of it.
    pub accounts: Option<String>,
    /// IoT Hub tier (F1, B1-B3, S1-S3): planned rates are checked against its quotas, and the
    /// embedded hub throttles as that tier does.
    pub tier: Option<String>,
    /// IoT Hub units of the tier (default 1).
    pub units: Option<u32>,
}

/// Embedded or remote hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HubKind {
    /// fleetbench's own hub on loopback.
    Embedded,
    /// A hub or broker at `target.address`.
    Remote,
}

/// `[protocol]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProtocolSection {
    /// `mqtt` (default) or `amqp`.
    pub kind: Option<ProtocolKind>,
    /// `iot-hub` (default), `generic` or `event-grid`.
    pub dialect: Option<Dialect>,
    /// IoT Hub `api-version`.
    pub api_version: Option<String>,
    /// MQTT QoS: 0 or 1; 2 in the generic dialect only.
    pub qos: Option<u8>,
    /// MQTT keep-alive.
    #[serde(default, with = "humantime_serde")]
    pub keep_alive: Option<Duration>,
    /// MQTT clean-session flag (default: false for IoT Hub, as its SDKs send; true for generic).
    pub clean_session: Option<bool>,
    /// MQTT version: `"3.1.1"` (default) or `"5"` (generic dialect).
    pub version: Option<String>,
    /// MQTT 5: CONNECT session expiry interval (default 0s: the session ends with the connection).
    #[serde(default, with = "humantime_serde")]
    pub session_expiry: Option<Duration>,
    /// MQTT 5: CONNECT receive maximum (default 65535).
    pub receive_maximum: Option<u16>,
    /// MQTT 5: CONNECT maximum packet size in bytes (default 307200).
    pub maximum_packet_size: Option<u32>,
    /// MQTT 5: publish with a topic alias where the broker allows one (default false).
    pub topic_alias: Option<bool>,
    /// Generic dialect: topic template with `{device_id}`.
    pub topic: Option<String>,
    /// Generic dialect: client id template.
    pub client_id: Option<String>,
    /// Generic dialect: username template.
    pub username: Option<String>,
    /// Generic MQTT dialect: password template, sent with the username. Prefer `password-env`.
    pub password: Option<String>,
    /// Generic MQTT dialect: the environment variable holding the password (template).
    pub password_env: Option<String>,
    /// AMQP generic dialect: target address template, e.g. `/queue/{device_id}`.
    pub address: Option<String>,
    /// AMQP generic dialect: SASL mechanism.
    pub sasl: Option<SaslKind>,
    /// AMQP: sender settle mode.
    pub settle_mode: Option<SettleKind>,
}

/// AMQP SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaslKind {
    /// SASL ANONYMOUS.
    Anonymous,
    /// SASL EXTERNAL (identity from the client certificate).
    External,
    /// No SASL layer.
    None,
}

/// AMQP sender settle mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettleKind {
    /// Pre-settled transfers.
    Settled,
    /// Transfers await a settling disposition.
    Unsettled,
}

/// Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolKind {
    /// AMQP 1.0.
    Amqp,
    /// MQTT 3.1.1.
    Mqtt,
}

/// Dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// Any broker.
    Generic,
    /// Azure IoT Hub.
    IotHub,
    /// Azure Event Grid namespaces' MQTT broker: the generic dialect with Event Grid's
    /// defaults and limits (docs/event-grid.md).
    EventGrid,
}

/// `[tls]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSection {
    /// `"1.2"` or `"1.3"` (default).
    pub version: Option<crate::transport::TlsVersion>,
    /// Offer session resumption on reconnects.
    pub resumption: Option<bool>,
    /// Cipher suites to offer, by rustls name (e.g. `TLS13_AES_128_GCM_SHA256`).
    pub cipher_suites: Option<Vec<String>>,
    /// Key-exchange groups to offer (`x25519`, `secp256r1`, `secp384r1`; with aws-lc-rs also
    /// `X25519MLKEM768`, `SECP256R1MLKEM768`).
    pub groups: Option<Vec<String>>,
    /// Crypto provider of the devices and the embedded hub: `"ring"` (default) or `"aws-lc-rs"`.
    pub provider: Option<crate::transport::Provider>,
    /// The embedded hub's provider, when it differs from `provider`.
    pub hub_provider: Option<crate::transport::Provider>,
    /// Groups the embedded hub offers; default: every group of its provider.
    pub hub_groups: Option<Vec<String>>,
}

/// One `[[stages]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StageSection {
    /// Length of the stage.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Open sessions at its end.
    pub sessions: u64,
}

/// `[session]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SessionSection {
    /// Stay connected this long after the last message, idle with keep-alives.
    #[serde(default, with = "humantime_serde")]
    pub hold: Option<Duration>,
}

/// `[reconnect]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReconnectSection {
    /// First backoff (default 100ms); doubles per failure.
    #[serde(default, with = "humantime_serde")]
    pub initial: Option<Duration>,
    /// Backoff cap (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub max: Option<Duration>,
    /// Consecutive failed attempts before a device gives up (default 20).
    pub attempts: Option<u32>,
}

/// `[churn]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChurnSection {
    /// How long to keep cycling.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Messages per session before disconnecting (0 = handshake benchmark).
    pub messages: Option<u32>,
}

/// Arrival process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrivalKind {
    /// Evenly spaced.
    Constant,
    /// Exponential gaps (Poisson process).
    Poisson,
}

/// Send model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Each device sends its next message when the last is acknowledged, after `think`.
    Closed,
    /// Messages are due on a fixed schedule whatever the hub does.
    Open,
}

/// `[fleet]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FleetSection {
    /// Number of devices.
    pub devices: Option<u64>,
    /// Device id template, e.g. `device-{n:05}`.
    pub id: Option<String>,
    /// Device key type.
    pub key_type: Option<String>,
    /// CA key type.
    pub ca_key_type: Option<String>,
    /// Intermediate CAs between the root and the devices.
    pub intermediates: Option<u8>,
    /// Validity of minted device certificates, days.
    pub validity_days: Option<u32>,
    /// A CA directory (`fleetbench pki init`) whose issuing CA signs the devices, instead of a
    /// chain minted for the run: the CA uploaded and verified once serves every run.
    pub ca_dir: Option<PathBuf>,
}

/// `[connect]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConnectSection {
    /// New sessions per second (open model). Absent: as fast as `max-handshakes` allows.
    pub rate: Option<f64>,
    /// Spread the fleet's connects evenly over this time (instead of `rate`).
    #[serde(default, with = "humantime_serde")]
    pub ramp: Option<Duration>,
    /// `constant` (default) or `poisson` arrivals at `rate`.
    pub arrival: Option<ArrivalKind>,
    /// Seed of Poisson arrivals (default 1).
    pub seed: Option<u64>,
    /// Local source addresses, used round-robin: `"127.0.0.2"` or ranges `"127.0.0.2-127.0.0.50"`.
    pub source_addresses: Option<Vec<String>>,
    /// Handshakes in flight at most.
    pub max_handshakes: Option<u32>,
    /// Timeout of each connect phase (TCP, TLS, protocol connect).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// `[messages]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MessagesSection {
    /// Messages per device.
    pub count: Option<u32>,
    /// Send for this long instead of (or as well as) a count.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// `open` (default: fixed schedule) or `closed` (next message after the last ack + think).
    pub model: Option<ModelKind>,
    /// Closed model: pause between an acknowledgement and the next message.
    #[serde(default, with = "humantime_serde")]
    pub think: Option<Duration>,
    /// Time between a device's messages.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// `tutorial` (the Azure sample's JSON) or `bytes`.
    pub payload: Option<PayloadKind>,
    /// Body size for `bytes` payloads.
    pub size: Option<usize>,
    /// Time to wait for an acknowledgement.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Acknowledgements awaited at once per device.
    pub max_inflight: Option<u32>,
}

/// Payload generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadKind {
    /// Random bytes of `size`.
    Bytes,
    /// `{"deviceId":..,"messageId":n,"temperature":..,"humidity":..}` with `temperatureAlert`.
    Tutorial,
}

/// `[run]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunSection {
    /// Hard bound on the run's length.
    #[serde(default, with = "humantime_serde")]
    pub max_duration: Option<Duration>,
    /// Time allowed to drain in-flight work after the schedule ends or is interrupted.
    #[serde(default, with = "humantime_serde")]
    pub grace: Option<Duration>,
}

/// `[matrix]`: axes over scenario keys whose cartesian product (less what cannot work and
/// what `exclude` names, plus what `include` adds) is the sweep's cells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatrixSection {
    /// Rounds over every cell (default 3).
    pub rounds: Option<u32>,
    /// `alternate` (default: every other round in reverse order) or `same`.
    pub order: Option<MatrixOrder>,
    /// Device key types (`fleet.key-type`).
    pub key_type: Option<Vec<String>>,
    /// CA key types (`fleet.ca-key-type`).
    pub ca_key_type: Option<Vec<String>>,
    /// Key-exchange groups, one per cell (`tls.groups = [group]`).
    pub group: Option<Vec<String>>,
    /// Crypto providers (`tls.provider`: the devices', and the hub's unless `hub-provider`).
    pub provider: Option<Vec<String>>,
    /// The embedded hub's crypto providers (`tls.hub-provider`).
    pub hub_provider: Option<Vec<String>>,
    /// TLS versions (`tls.version`).
    pub version: Option<Vec<String>>,
    /// Session resumption on or off (`tls.resumption`).
    pub resumption: Option<Vec<bool>>,
    /// Chain depths: intermediate CAs between root and devices (`fleet.intermediates`).
    pub intermediates: Option<Vec<u8>>,
    /// Cells added to the product, each with its own values.
    pub include: Option<Vec<MatrixCellSection>>,
    /// Cells taken out of the product: every one that has all of an entry's values.
    pub exclude: Option<Vec<MatrixCellSection>>,
}

/// One `include` or `exclude` entry of `[matrix]`: a value per axis (absent: any, or the base
/// scenario's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatrixCellSection {
    /// The cell's name in the comparison (include only; default: its values).
    pub label: Option<String>,
    /// `fleet.key-type`.
    pub key_type: Option<String>,
    /// `fleet.ca-key-type`.
    pub ca_key_type: Option<String>,
    /// One key-exchange group.
    pub group: Option<String>,
    /// `tls.provider`.
    pub provider: Option<String>,
    /// `tls.hub-provider`.
    pub hub_provider: Option<String>,
    /// `tls.version`.
    pub version: Option<String>,
    /// `tls.resumption`.
    pub resumption: Option<bool>,
    /// `fleet.intermediates`.
    pub intermediates: Option<u8>,
}

/// A plan from inline TOML, as the unit tests of this module build them.
#[cfg(test)]
pub(crate) fn test_plan(text: &str) -> Result<Plan, ConfigErrors> {
    let s = Scenario::parse(text, Path::new("t.toml"))?;
    Plan::new(&s, text, Path::new("t.toml"), "t", &Overrides::default())
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<(Self, String), ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                column: None,
                field: String::new(),
                message: format!("cannot read the scenario file: {e}"),
            }])
        })?;
        let scenario = Self::parse(&text, path)?;
        Ok((scenario, text))
    }

    /// Parses scenario text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigErrors> {
        toml::from_str(text).map_err(|e| {
            let locator = Locator::new(text);
            let span = e.span();
            let (line, column) = span
                .as_ref()
                .map(|s| locator.line_col(s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            let field = span
                .as_ref()
                .and_then(|s| locator.path_at(s))
                .unwrap_or_default();
            ConfigErrors(vec![ConfigError {
                file: file.to_owned(),
                line,
                column,
                field,
                message: e.message().trim().to_owned(),
            }])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<ConfigError> {
        Scenario::parse(text, Path::new("s.toml")).unwrap_err().0
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = &errs("[fleet]\ndevices = 3\ncolour = \"red\"\n")[0];
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("colour"), "{e}");
        assert_eq!(e.field, "fleet.colour");
    }

    #[test]
    fn wrong_type_is_named_with_its_line() {
        let e = &errs("[fleet]\n\ndevices = \"many\"\n")[0];
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field, "fleet.devices");
        assert!(e.to_string().starts_with("s.toml:3:"), "{e}");
    }
}
