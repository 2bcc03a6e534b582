//! `[protocol]`: MQTT or AMQP, the dialect and its templates (AMQP's own checks are in `amqp.rs`).

use std::time::Duration;

use crate::protocol::{AmqpOptions, MqttDialect, MqttOptions, QoS};
use crate::scenario::problems::Problems;
use crate::scenario::{Dialect, ProtocolKind, Scenario};

/// Protocol settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolPlan {
    /// AMQP 1.0.
    Amqp(AmqpOptions),
    /// MQTT 3.1.1.
    Mqtt(MqttOptions),
}

pub(super) fn protocol(s: &Scenario, p: &mut Problems<'_>) -> Option<ProtocolPlan> {
    let pr = &s.protocol;
    if pr.kind == Some(ProtocolKind::Amqp) {
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
