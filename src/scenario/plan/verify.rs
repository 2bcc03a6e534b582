//! The `[verify]` table: a verifying receiver that reads what the devices send, so that a run
//! can prove delivery (not only acknowledgement). The MQTT subscription works here; the AMQP
//! and Event Hubs kinds are declared so that their receivers slot in.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ProtocolPlan, Target};
use crate::protocol::{MqttDialect, QoS};
use crate::scenario::problems::Problems;
use crate::scenario::Payload;

/// Default wait after the last acknowledgement for deliveries still on their way.
const DEFAULT_SETTLE: Duration = Duration::from_secs(5);
/// Longest settle time accepted.
const MAX_SETTLE: Duration = Duration::from_secs(600);
/// Most receivers of one shared subscription.
const MAX_RECEIVERS: u32 = 64;
/// Smallest `bytes` payload that holds the binary stamp (`protocol::stamp`).
pub const MIN_STAMPED_BYTES: usize = crate::protocol::stamp::BINARY_LEN;

/// `[verify]` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VerifySection {
    /// `mqtt` (a subscription), `amqp` (receiver links) or `eventhubs` (IoT Hub's built-in
    /// endpoint).
    pub kind: Option<VerifyKindName>,
    /// MQTT: topic filter, e.g. `fleet/+/telemetry`.
    pub topic: Option<String>,
    /// MQTT: subscription QoS, 0 or 1 (default 1).
    pub qos: Option<u8>,
    /// MQTT: shared subscription group (`$share/GROUP/filter`).
    pub group: Option<String>,
    /// MQTT: receivers (connections) sharing the subscription (default 1).
    pub receivers: Option<u32>,
    /// AMQP: node addresses to read, e.g. `["/queue/telemetry"]`.
    pub addresses: Option<Vec<String>>,
    /// Event Hubs: the endpoint's connection string (environment variable holding it).
    pub connection_string_env: Option<String>,
    /// Event Hubs: consumer group (default `$Default`).
    pub consumer_group: Option<String>,
    /// The receiver's client id (and its certificate's CN when minted).
    pub client_id: Option<String>,
    /// The receiver's certificate (PEM, leaf then chain); minted by the run's CA when unset.
    pub cert_file: Option<PathBuf>,
    /// The receiver's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Longest wait after the last acknowledgement for the rest to arrive (default 5s).
    #[serde(default, with = "humantime_serde")]
    pub settle: Option<Duration>,
}

/// `[verify] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyKindName {
    /// An MQTT subscription.
    Mqtt,
    /// AMQP 1.0 receiver links.
    Amqp,
    /// IoT Hub's built-in Event Hubs-compatible endpoint.
    Eventhubs,
}

/// What the receiver reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyKind {
    /// An MQTT subscription, possibly shared among several receivers.
    Mqtt {
        /// Topic filter.
        topic: String,
        /// Subscription QoS.
        qos: QoS,
        /// Shared subscription group, if any.
        group: Option<String>,
        /// Receivers (connections).
        receivers: u32,
    },
    /// AMQP 1.0 receiver links on these addresses.
    Amqp {
        /// Node addresses.
        addresses: Vec<String>,
    },
    /// IoT Hub's built-in endpoint.
    EventHubs {
        /// The environment variable with the connection string.
        connection_string_env: String,
        /// Consumer group.
        consumer_group: String,
    },
}

/// The receiver's own identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyIdentity {
    /// A leaf minted by the run's CA with this CN.
    Minted,
    /// Certificate and key files.
    Files {
        /// Leaf then chain, PEM.
        cert: PathBuf,
        /// Private key, PEM.
        key: PathBuf,
    },
}

/// A validated `[verify]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPlan {
    /// What to read.
    pub kind: VerifyKind,
    /// Client id (and minted CN).
    pub client_id: String,
    /// Certificate.
    pub identity: VerifyIdentity,
    /// Longest wait after the last acknowledgement.
    pub settle: Duration,
}

impl VerifyPlan {
    /// The plan as JSON for `summary.json`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match &self.kind {
            VerifyKind::Mqtt {
                topic,
                qos,
                group,
                receivers,
            } => json!({"kind": "mqtt", "topic": topic, "qos": *qos as u8, "group": group,
                        "receivers": receivers}),
            VerifyKind::Amqp { addresses } => json!({"kind": "amqp", "addresses": addresses}),
            VerifyKind::EventHubs {
                connection_string_env,
                consumer_group,
            } => json!({"kind": "eventhubs", "connection-string-env": connection_string_env,
                        "consumer-group": consumer_group}),
        };
        v["client-id"] = json!(self.client_id);
        v["settle"] = json!(humantime::format_duration(self.settle).to_string());
        v["certificate"] = match &self.identity {
            VerifyIdentity::Minted => json!("minted"),
            VerifyIdentity::Files { cert, .. } => json!(cert),
        };
        v
    }
}

/// Validates `[verify]` against the rest of the plan.
pub(super) fn verify(
    v: &VerifySection,
    target: Option<&Target>,
    protocol: Option<&ProtocolPlan>,
    payload: Option<Payload>,
    p: &mut Problems<'_>,
) -> Option<VerifyPlan> {
    let settle = v.settle.unwrap_or(DEFAULT_SETTLE);
    if settle > MAX_SETTLE {
        p.add("verify.settle", "is too long: at most 10m");
    }
    let identity = match (&v.cert_file, &v.key_file) {
        (None, None) => VerifyIdentity::Minted,
        (Some(cert), Some(key)) => VerifyIdentity::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (Some(_), None) => {
            p.add("verify.cert-file", "needs verify.key-file too");
            VerifyIdentity::Minted
        }
        (None, Some(_)) => {
            p.add("verify.key-file", "needs verify.cert-file too");
            VerifyIdentity::Minted
        }
    };
    let client_id = v
        .client_id
        .clone()
        .unwrap_or_else(|| "fleetbench-verify".to_owned());
    if client_id.is_empty() || client_id.len() > 128 {
        p.add("verify.client-id", "must be 1 to 128 characters");
    }
    let kind = match v.kind.unwrap_or(VerifyKindName::Mqtt) {
        VerifyKindName::Mqtt => mqtt(v, target, p)?,
        VerifyKindName::Amqp => amqp(v, target, protocol, p)?,
        VerifyKindName::Eventhubs => eventhubs(v, target, p)?,
    };
    stamp_fits(protocol, payload, p);
    Some(VerifyPlan {
        kind,
        client_id,
        identity,
        settle,
    })
}

impl VerifySection {
    /// The kind-specific keys, with whether each is set, but for those in `uses`: what a
    /// kind does not use is an error when set.
    fn set_except(&self, uses: &[&str]) -> Vec<(bool, &'static str)> {
        [
            (self.topic.is_some(), "verify.topic"),
            (self.qos.is_some(), "verify.qos"),
            (self.group.is_some(), "verify.group"),
            (self.receivers.is_some(), "verify.receivers"),
            (self.addresses.is_some(), "verify.addresses"),
            (
                self.connection_string_env.is_some(),
                "verify.connection-string-env",
            ),
            (self.consumer_group.is_some(), "verify.consumer-group"),
            (self.cert_file.is_some(), "verify.cert-file"),
            (self.key_file.is_some(), "verify.key-file"),
        ]
        .into_iter()
        .filter(|(_, key)| !uses.contains(key))
        .collect()
    }
}

/// The AMQP receiver links' settings: on the devices' own AMQP endpoint, as they connect.
fn amqp(
    v: &VerifySection,
    target: Option<&Target>,
    protocol: Option<&ProtocolPlan>,
    p: &mut Problems<'_>,
) -> Option<VerifyKind> {
    p.not_applicable(
        &v.set_except(&["verify.addresses", "verify.cert-file", "verify.key-file"]),
        "does not apply to kind = \"amqp\"",
    );
    if target == Some(&Target::Embedded) {
        p.add(
            "verify.kind",
            "\"amqp\" reads a broker's queues: the embedded hub has none (its Event Hubs-compatible endpoint is kind = \"eventhubs\" against `hub serve`); set [target] hub = \"remote\"",
        );
    }
    if !matches!(protocol, None | Some(ProtocolPlan::Amqp(_))) {
        p.add(
            "verify.kind",
            "\"amqp\" reads on the devices' AMQP endpoint: needs [protocol] kind = \"amqp\"",
        );
    }
    let addresses = v.addresses.clone().unwrap_or_default();
    if addresses.is_empty() || addresses.iter().any(String::is_empty) {
        p.add(
            "verify.addresses",
            "is required for kind = \"amqp\": the source addresses to read, e.g. [\"/queue/telemetry\"]",
        );
    }
    Some(VerifyKind::Amqp { addresses })
}

/// The Event Hubs-compatible endpoint's settings: its connection string from the environment.
fn eventhubs(
    v: &VerifySection,
    target: Option<&Target>,
    p: &mut Problems<'_>,
) -> Option<VerifyKind> {
    p.not_applicable(
        &v.set_except(&["verify.connection-string-env", "verify.consumer-group"]),
        "does not apply to kind = \"eventhubs\" (the endpoint authenticates by its key)",
    );
    if target == Some(&Target::Embedded) {
        p.add(
            "verify.kind",
            "\"eventhubs\" reads a hub's Event Hubs-compatible endpoint: run the hub as `fleetbench hub serve --amqp ADDR` and set [target] hub = \"remote\"",
        );
    }
    let connection_string_env = v.connection_string_env.clone().unwrap_or_default();
    if connection_string_env.is_empty() {
        p.add(
            "verify.connection-string-env",
            "is required for kind = \"eventhubs\": the name of an environment variable holding the endpoint's connection string (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...;EntityPath=...)",
        );
    }
    let consumer_group = v
        .consumer_group
        .clone()
        .unwrap_or_else(|| "$Default".to_owned());
    Some(VerifyKind::EventHubs {
        connection_string_env,
        consumer_group,
    })
}

/// The MQTT subscription's settings.
fn mqtt(v: &VerifySection, target: Option<&Target>, p: &mut Problems<'_>) -> Option<VerifyKind> {
    p.not_applicable(
        &v.set_except(&[
            "verify.topic",
            "verify.qos",
            "verify.group",
            "verify.receivers",
            "verify.cert-file",
            "verify.key-file",
        ]),
        "does not apply to kind = \"mqtt\"",
    );
    if target == Some(&Target::Embedded) {
        p.add(
            "verify.kind",
            "\"mqtt\" subscribes on a broker: the embedded hub has no subscriptions; set [target] hub = \"remote\"",
        );
    }
    let topic = v.topic.clone().unwrap_or_default();
    if topic.is_empty() {
        p.add(
            "verify.topic",
            "is required for kind = \"mqtt\": a topic filter such as \"fleet/+/telemetry\"",
        );
    } else if !valid_filter(&topic) {
        p.add("verify.topic", format!("{topic:?} is not a valid MQTT topic filter ('#' only last, '+' and '#' alone in their level)"));
    }
    let qos = match v.qos.unwrap_or(1) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => {
            p.add("verify.qos", format!("{q} is not valid: use 0 or 1"));
            QoS::AtLeastOnce
        }
    };
    let receivers = v.receivers.unwrap_or(1);
    if receivers == 0 || receivers > MAX_RECEIVERS {
        p.add(
            "verify.receivers",
            format!("{receivers} is not valid: use 1 to {MAX_RECEIVERS}"),
        );
    }
    let group = v.group.clone();
    match &group {
        Some(g) if g.is_empty() || g.contains(['/', '+', '#']) => {
            p.add(
                "verify.group",
                format!("{g:?} is not valid: a non-empty name without '/', '+' or '#'"),
            );
        }
        None if receivers > 1 => p.add(
            "verify.receivers",
            "more than one receiver needs verify.group (a shared subscription), or each would get every message",
        ),
        _ => {}
    }
    Some(VerifyKind::Mqtt {
        topic,
        qos,
        group,
        receivers,
    })
}

/// Whether `f` is a valid MQTT topic filter.
fn valid_filter(f: &str) -> bool {
    let levels: Vec<&str> = f.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i + 1 == levels.len(),
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// The generic MQTT dialect carries the stamp in the payload: a `bytes` payload must hold it.
fn stamp_fits(protocol: Option<&ProtocolPlan>, payload: Option<Payload>, p: &mut Problems<'_>) {
    let generic = matches!(protocol, Some(ProtocolPlan::Mqtt(m)) if matches!(m.dialect, MqttDialect::Generic { .. }));
    if let (true, Some(Payload::Bytes(n))) = (generic, payload) {
        if n < MIN_STAMPED_BYTES {
            p.add(
                "messages.size",
                format!("{n} bytes cannot carry the delivery stamp that [verify] needs: at least {MIN_STAMPED_BYTES} bytes"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::test_plan as plan;

    const REMOTE: &str = "[target]\nhub = \"remote\"\naddress = \"127.0.0.1:1\"\nverify-server = false\n[protocol]\ndialect = \"generic\"\ntopic = \"fleet/{device_id}/t\"\n";

    #[test]
    fn a_subscription_is_planned_with_defaults() {
        let p = plan(&format!("{REMOTE}[verify]\ntopic = \"fleet/+/t\"\n")).unwrap();
        let v = p.verify.unwrap();
        assert_eq!(v.settle, std::time::Duration::from_secs(5));
        assert_eq!(v.client_id, "fleetbench-verify");
    }

    #[test]
    fn problems_name_the_field_and_line() {
        let text = format!(
            "{REMOTE}[verify]\ntopic = \"a/#/b\"\nqos = 2\nreceivers = 3\nkind = \"amqp\"\n"
        );
        let e = plan(&text).unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"verify.kind"), "{e}");
        let text = format!("{REMOTE}[verify]\ntopic = \"a/#/b\"\nqos = 2\nreceivers = 3\n");
        let e = plan(&text).unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["verify.topic", "verify.qos", "verify.receivers"]);
        assert_eq!(e.0[0].line, Some(9), "{e}");
    }

    #[test]
    fn a_small_bytes_payload_is_refused_with_the_minimum() {
        let text = format!(
            "{REMOTE}[messages]\npayload = \"bytes\"\nsize = 10\n[verify]\ntopic = \"fleet/+/t\"\n"
        );
        let e = plan(&text).unwrap_err();
        assert_eq!(e.0[0].field, "messages.size");
        assert!(e.0[0].message.contains("at least 28 bytes"), "{e}");
    }

    #[test]
    fn the_embedded_hub_has_no_subscriptions() {
        let e = plan("[verify]\ntopic = \"x/+\"\n").unwrap_err();
        assert_eq!(e.0[0].field, "verify.kind");
    }
}
