//! `[protocol]`: MQTT or AMQP, the dialect and its templates (AMQP's own checks are in `amqp.rs`).

use std::time::Duration;

use crate::protocol::mqtt::{MqttVersion, Password, V5Options};
use crate::protocol::{AmqpOptions, MqttDialect, MqttOptions, QoS};
use crate::scenario::problems::Problems;
use crate::scenario::{Dialect, ProtocolKind, Scenario};

/// Protocol settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolPlan {
    /// AMQP 1.0.
    Amqp(AmqpOptions),
    /// MQTT 3.1.1 or 5.
    Mqtt(MqttOptions),
}

pub(super) fn protocol(s: &Scenario, p: &mut Problems<'_>) -> Option<ProtocolPlan> {
    let pr = &s.protocol;
    if pr.kind == Some(ProtocolKind::Amqp) {
        p.not_applicable(
            &[(pr.version.is_some(), "protocol.version")],
            "only applies to kind = \"mqtt\"",
        );
        not_v5(pr, p);
        if pr.dialect == Some(Dialect::EventGrid) {
            p.add(
                "protocol.dialect",
                "\"event-grid\" is MQTT only: Event Grid namespaces' broker speaks MQTT 3.1.1 and 5 (kind = \"mqtt\")",
            );
        }
        return super::amqp::protocol(pr, p);
    }
    p.not_applicable(
        &[
            (pr.address.is_some(), "protocol.address"),
            (pr.sasl.is_some(), "protocol.sasl"),
            (pr.settle_mode.is_some(), "protocol.settle-mode"),
        ],
        "only applies to kind = \"amqp\"",
    );
    let generic = pr.dialect == Some(Dialect::Generic);
    let event_grid = pr.dialect == Some(Dialect::EventGrid);
    let qos = match pr.qos.unwrap_or(1) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 if generic => QoS::ExactlyOnce,
        2 if event_grid => {
            p.add(
                "protocol.qos",
                "2 is not valid with dialect = \"event-grid\": Event Grid's broker supports QoS 0 and 1 and closes the connection on a QoS 2 PUBLISH (docs/event-grid.md)",
            );
            QoS::AtLeastOnce
        }
        2 => {
            p.add(
                "protocol.qos",
                "2 is not valid with dialect = \"iot-hub\": IoT Hub closes the connection on QoS 2 (0 or 1; QoS 2 is for dialect = \"generic\")",
            );
            QoS::AtLeastOnce
        }
        q => {
            p.add("protocol.qos", format!("{q} is not valid: 0, 1 or 2"));
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
    if event_grid {
        super::event_grid::limits(s, keep_alive_secs, p);
    }
    let dialect = match pr.dialect.unwrap_or(Dialect::IotHub) {
        Dialect::IotHub => {
            p.not_applicable(
                &[
                (pr.topic.is_some(), "protocol.topic"),
                (pr.client_id.is_some(), "protocol.client-id"),
                (pr.username.is_some(), "protocol.username"),
                (pr.password.is_some(), "protocol.password"),
                (pr.password_env.is_some(), "protocol.password-env"),
                ],
                "only applies to dialect = \"generic\" (topic, client-id and username to \"event-grid\" too); IoT Hub fixes topic, client id and username, and X.509 devices send no password",
            );
            MqttDialect::IotHub {
                api_version: iot_hub_api_version(pr),
            }
        }
        d @ (Dialect::Generic | Dialect::EventGrid) => {
            if pr.api_version.is_some() {
                p.add(
                    "protocol.api-version",
                    "only applies to dialect = \"iot-hub\"",
                );
            }
            generic_dialect(pr, d == Dialect::EventGrid, p)
        }
    };
    Some(ProtocolPlan::Mqtt(MqttOptions {
        version: version(pr, generic || event_grid, p),
        dialect,
        qos,
        keep_alive_secs,
        // IoT Hub's SDKs keep their session; a generic broker's load test starts clean.
        clean_session: pr.clean_session.unwrap_or(generic || event_grid),
        // Set by `run` for each run.
        run_id: None,
    }))
}

/// The generic dialect's templates, or Event Grid's: the same strings with Event Grid's
/// defaults (username = the client authentication name = the device id, the certificate's
/// CN) and no password (X.509 clients send none).
fn generic_dialect(
    pr: &crate::scenario::ProtocolSection,
    event_grid: bool,
    p: &mut Problems<'_>,
) -> MqttDialect {
    let topic = pr.topic.clone().unwrap_or_else(|| {
        if event_grid {
            "devices/{device_id}/telemetry"
        } else {
            "fleet/{device_id}/telemetry"
        }
        .to_owned()
    });
    let client_id = pr
        .client_id
        .clone()
        .unwrap_or_else(|| "{device_id}".to_owned());
    let username = pr
        .username
        .clone()
        .or_else(|| event_grid.then(|| "{device_id}".to_owned()));
    for (field, value) in [
        ("protocol.topic", Some(&topic)),
        ("protocol.client-id", Some(&client_id)),
        ("protocol.username", username.as_ref()),
    ] {
        if let Some(v) = value {
            check_template(v, field, p);
        }
    }
    let password = if event_grid {
        p.not_applicable(
            &[
                (pr.password.is_some(), "protocol.password"),
                (pr.password_env.is_some(), "protocol.password-env"),
            ],
            "does not apply to dialect = \"event-grid\": its clients authenticate with their X.509 certificate and send no password",
        );
        None
    } else {
        password(pr, p)
    };
    MqttDialect::Generic {
        topic,
        client_id,
        username,
        password,
    }
}

/// The largest packet a session accepts by default: the 3.1.1 path's bound.
const MAX_PACKET: u32 = 300 * 1024;

/// `version`: "3.1.1" (default) or "5" (generic dialect only), with MQTT 5's CONNECT keys.
fn version(
    pr: &crate::scenario::ProtocolSection,
    generic: bool,
    p: &mut Problems<'_>,
) -> MqttVersion {
    match pr.version.as_deref() {
        None | Some("3.1.1") => {
            not_v5(pr, p);
            return MqttVersion::V311;
        }
        // `generic` here is true for event-grid too: both speak 5.
        Some("5" | "5.0") if generic => {}
        Some(v @ ("5" | "5.0")) => {
            p.add(
                "protocol.version",
                format!("{v:?} is not valid with dialect = \"iot-hub\": IoT Hub speaks MQTT 3.1.1 (version = \"5\" is for dialect = \"generic\" or \"event-grid\")"),
            );
            return MqttVersion::V311;
        }
        Some(v) => {
            p.add(
                "protocol.version",
                format!("{v:?} is not valid: \"3.1.1\" (the default) or \"5\""),
            );
            return MqttVersion::V311;
        }
    }
    let expiry = pr.session_expiry.unwrap_or_default();
    let session_expiry_secs = match u32::try_from(expiry.as_secs()) {
        Ok(s) if expiry.subsec_nanos() == 0 => s,
        _ => {
            p.add(
                "protocol.session-expiry",
                format!(
                    "{} is not valid: whole seconds up to 4294967295",
                    humantime::format_duration(expiry)
                ),
            );
            0
        }
    };
    let receive_maximum = match pr.receive_maximum {
        Some(0) => {
            p.add(
                "protocol.receive-maximum",
                "0 is not valid: 1 to 65535 (MQTT 5 forbids 0)",
            );
            u16::MAX
        }
        r => r.unwrap_or(u16::MAX),
    };
    let max_packet_size = match pr.maximum_packet_size {
        Some(n) if n < 64 => {
            p.add(
                "protocol.maximum-packet-size",
                format!(
                    "{n} is not valid: at least 64 bytes (a CONNACK with its properties must fit)"
                ),
            );
            MAX_PACKET
        }
        n => n.unwrap_or(MAX_PACKET),
    };
    MqttVersion::V5(V5Options {
        session_expiry_secs,
        receive_maximum,
        max_packet_size,
        topic_alias: pr.topic_alias.unwrap_or(false),
    })
}

/// MQTT 5's keys, set where version = "5" is not.
fn not_v5(pr: &crate::scenario::ProtocolSection, p: &mut Problems<'_>) {
    p.not_applicable(
        &[
            (pr.session_expiry.is_some(), "protocol.session-expiry"),
            (pr.receive_maximum.is_some(), "protocol.receive-maximum"),
            (
                pr.maximum_packet_size.is_some(),
                "protocol.maximum-packet-size",
            ),
            (pr.topic_alias.is_some(), "protocol.topic-alias"),
        ],
        "only applies to version = \"5\"",
    );
}

/// The generic dialect's password: written in the file (`password`) or read from the
/// environment variable `password-env` names, at validation. Either way a template.
fn password(pr: &crate::scenario::ProtocolSection, p: &mut Problems<'_>) -> Option<Password> {
    let (field, value) = match (&pr.password, &pr.password_env) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            p.add(
                "protocol.password-env",
                "set password or password-env, not both",
            );
            return None;
        }
        (Some(pw), None) => {
            check_template(pw, "protocol.password", p);
            ("protocol.password", pw.clone())
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(pw) => ("protocol.password-env", pw),
            Err(_) => {
                p.add(
                    "protocol.password-env",
                    format!("the environment variable {var:?} is not set (or not UTF-8)"),
                );
                return None;
            }
        },
    };
    if pr.username.is_none() {
        p.add(
            field,
            "a password needs protocol.username too (MQTT 3.1.1 sends a password only with a user name)",
        );
    }
    Some(Password(value))
}

/// The `api-version` IoT Hub usernames and AMQP attach properties carry (the docs' current one
/// unless the scenario names another).
pub(super) fn iot_hub_api_version(pr: &crate::scenario::ProtocolSection) -> String {
    pr.api_version
        .clone()
        .unwrap_or_else(|| "2021-04-12".to_owned())
}

/// Templates may name only `{device_id}`.
pub(super) fn check_template(template: &str, field: &str, p: &mut Problems<'_>) {
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

#[cfg(test)]
pub(super) mod tests {
    use crate::protocol::{MqttDialect, QoS};
    use crate::scenario::{test_plan as plan, ProtocolPlan};

    /// A remote target's table, for protocol settings that need one.
    pub(in crate::scenario::plan) const REMOTE: &str =
        "[target]\nhub = \"remote\"\naddress = \"127.0.0.1:8883\"\nca-file = \"r.pem\"\n";

    /// The MQTT options of a plan from inline TOML.
    pub(in crate::scenario::plan) fn mqtt(text: &str) -> crate::protocol::MqttOptions {
        match plan(text).unwrap().protocol {
            ProtocolPlan::Mqtt(m) => m,
            ProtocolPlan::Amqp(_) => panic!("not mqtt"),
        }
    }

    #[test]
    fn generic_allows_qos_2_and_starts_clean_iot_hub_does_neither() {
        let m = mqtt(&format!(
            "{REMOTE}[protocol]\ndialect = \"generic\"\nqos = 2\n"
        ));
        assert_eq!((m.qos, m.clean_session), (QoS::ExactlyOnce, true));
        let m = mqtt("[protocol]\ndialect = \"iot-hub\"\n");
        assert!(!m.clean_session);
        let e = plan("[protocol]\nqos = 2\n").unwrap_err();
        assert_eq!(
            (e.0[0].field.as_str(), e.0[0].line),
            ("protocol.qos", Some(2))
        );
        assert!(e.0[0].message.contains("IoT Hub closes"), "{e}");
    }

    #[test]
    fn a_password_comes_from_the_file_or_the_environment_and_needs_a_username() {
        let m = mqtt(&format!("{REMOTE}[protocol]\ndialect = \"generic\"\nusername = \"{{device_id}}\"\npassword = \"pw-{{device_id}}\"\n"));
        let MqttDialect::Generic { password, .. } = &m.dialect else {
            panic!()
        };
        assert_eq!(
            password.as_ref().map(|p| p.0.as_str()),
            Some("pw-{device_id}")
        );
        let e = plan(&format!(
            "{REMOTE}[protocol]\ndialect = \"generic\"\npassword = \"x\"\n"
        ))
        .unwrap_err();
        assert!(e.0[0].message.contains("needs protocol.username"), "{e}");
        let e = plan(&format!("{REMOTE}[protocol]\ndialect = \"generic\"\nusername = \"u\"\npassword-env = \"FLEETBENCH_TEST_UNSET_VARIABLE\"\n")).unwrap_err();
        assert_eq!(e.0[0].field, "protocol.password-env");
        assert!(
            e.0[0].message.contains("FLEETBENCH_TEST_UNSET_VARIABLE"),
            "{e}"
        );
    }

    #[test]
    fn version_5_takes_its_keys_with_defaults_and_only_for_generic() {
        use crate::protocol::mqtt::{MqttVersion, V5Options};
        let m = mqtt(&format!(
            "{REMOTE}[protocol]\ndialect = \"generic\"\nversion = \"5\"\nreceive-maximum = 20\n"
        ));
        let want = V5Options {
            session_expiry_secs: 0,
            receive_maximum: 20,
            max_packet_size: 300 * 1024,
            topic_alias: false,
        };
        assert_eq!(m.version, MqttVersion::V5(want));
        assert_eq!(mqtt("[protocol]\n").version, MqttVersion::V311);
        let e = plan(&format!(
            "{REMOTE}[protocol]\ndialect = \"generic\"\nversion = \"5\"\nreceive-maximum = 0\nsession-expiry = \"1500ms\"\n"
        ))
        .unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| (e.field.as_str(), e.line)).collect();
        assert_eq!(
            fields,
            [
                ("protocol.receive-maximum", Some(8)),
                ("protocol.session-expiry", Some(9)),
            ],
            "{e}"
        );
        let e = plan("[protocol]\nversion = \"5\"\n").unwrap_err();
        assert_eq!(
            (e.0[0].field.as_str(), e.0[0].line),
            ("protocol.version", Some(2))
        );
        assert!(e.0[0].message.contains("IoT Hub speaks MQTT 3.1.1"), "{e}");
        let e =
            plan("[protocol]\nkind = \"amqp\"\nversion = \"5\"\ntopic-alias = true\n").unwrap_err();
        assert!(e.0.iter().any(|e| e.field == "protocol.version"), "{e}");
        assert!(e.0.iter().any(|e| e.field == "protocol.topic-alias"), "{e}");
    }

    #[test]
    fn generic_mqtt_against_the_embedded_hub_is_refused_at_its_line() {
        let e = plan("name = \"x\"\n[protocol]\ndialect = \"generic\"\n").unwrap_err();
        assert_eq!(
            (e.0[0].field.as_str(), e.0[0].line),
            ("protocol.dialect", Some(3))
        );
        assert!(e.0[0].message.contains("embedded hub"), "{e}");
    }
}
