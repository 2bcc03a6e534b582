//! The `[protocol]` table when `kind = "amqp"`: dialect, address template, SASL, settle mode.

use serde_json::json;

use super::protocol::{check_template, iot_hub_api_version, ProtocolPlan};
use crate::protocol::{AmqpDialect, AmqpOptions, SaslMechanism, SettleMode};
use crate::scenario::problems::Problems;
use crate::scenario::{Dialect, ProtocolSection, SaslKind, SettleKind};

/// Validates the AMQP settings; MQTT-only fields are named as errors.
pub(super) fn protocol(pr: &ProtocolSection, p: &mut Problems<'_>) -> Option<ProtocolPlan> {
    p.not_applicable(
        &[
            (pr.qos.is_some(), "protocol.qos"),
            (pr.keep_alive.is_some(), "protocol.keep-alive"),
            (pr.clean_session.is_some(), "protocol.clean-session"),
            (pr.topic.is_some(), "protocol.topic"),
            (pr.client_id.is_some(), "protocol.client-id"),
            (pr.username.is_some(), "protocol.username"),
            (pr.password.is_some(), "protocol.password"),
            (pr.password_env.is_some(), "protocol.password-env"),
        ],
        "only applies to kind = \"mqtt\"; AMQP uses address, sasl and settle-mode",
    );
    let settle = match pr.settle_mode.unwrap_or(SettleKind::Unsettled) {
        SettleKind::Settled => SettleMode::Settled,
        SettleKind::Unsettled => SettleMode::Unsettled,
    };
    let dialect = match pr.dialect.unwrap_or(Dialect::IotHub) {
        // event-grid is MQTT only: refused with its reason by the caller.
        Dialect::IotHub | Dialect::EventGrid => {
            p.not_applicable(
                &[
                (pr.address.is_some(), "protocol.address"),
                (pr.sasl.is_some(), "protocol.sasl"),
                ],
                "only applies to dialect = \"generic\"; IoT Hub fixes the address (/devices/{id}/messages/events) and uses no SASL for X.509",
            );
            AmqpDialect::IotHub {
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
            let address = pr
                .address
                .clone()
                .unwrap_or_else(|| "/queue/telemetry".to_owned());
            if address.trim().is_empty() {
                p.add(
                    "protocol.address",
                    "\"\" is not valid: name a node such as \"/queue/telemetry\"",
                );
            }
            check_template(&address, "protocol.address", p);
            AmqpDialect::Generic {
                address,
                sasl: match pr.sasl.unwrap_or(SaslKind::External) {
                    SaslKind::Anonymous => SaslMechanism::Anonymous,
                    SaslKind::External => SaslMechanism::External,
                    SaslKind::None => SaslMechanism::None,
                },
            }
        }
    };
    Some(ProtocolPlan::Amqp(AmqpOptions {
        dialect,
        settle,
        // Set by `run` for each run.
        run_id: None,
    }))
}

/// The AMQP settings as written to `summary.json`.
pub(super) fn to_json(a: &AmqpOptions) -> serde_json::Value {
    let mut v = json!({"kind": "amqp", "settle-mode": a.settle.name()});
    match &a.dialect {
        AmqpDialect::IotHub { api_version } => {
            v["dialect"] = json!("iot-hub");
            v["api-version"] = json!(api_version);
        }
        AmqpDialect::Generic { address, sasl } => {
            v["dialect"] = json!("generic");
            v["address"] = json!(address);
            v["sasl"] = json!(sasl.name());
        }
    }
    v
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::scenario::test_plan as plan;

    #[test]
    fn iot_hub_amqp_is_the_default_dialect() {
        let p = plan("[protocol]\nkind = \"amqp\"\n").unwrap();
        let ProtocolPlan::Amqp(a) = p.protocol else {
            panic!("not amqp")
        };
        assert_eq!(a.target("d1"), "/devices/d1/messages/events");
        assert_eq!(a.settle, SettleMode::Unsettled);
    }

    #[test]
    fn generic_takes_address_sasl_and_settle_mode() {
        let p = plan("[protocol]\nkind = \"amqp\"\ndialect = \"generic\"\naddress = \"/queue/{device_id}\"\nsasl = \"anonymous\"\nsettle-mode = \"settled\"\n").unwrap();
        let ProtocolPlan::Amqp(a) = &p.protocol else {
            panic!("not amqp")
        };
        assert_eq!(a.target("d7"), "/queue/d7");
        assert_eq!(a.settle, SettleMode::Settled);
        assert_eq!(p.to_json()["protocol"]["sasl"], "anonymous");
    }

    #[test]
    fn mqtt_fields_on_amqp_and_generic_fields_on_iot_hub_are_named_with_lines() {
        let e = plan("[protocol]\nkind = \"amqp\"\nqos = 1\naddress = \"/queue/x\"\n").unwrap_err();
        let found: Vec<_> = e.0.iter().map(|e| (e.field.as_str(), e.line)).collect();
        assert_eq!(
            found,
            [("protocol.qos", Some(3)), ("protocol.address", Some(4))]
        );
    }

    #[test]
    fn amqp_fields_on_mqtt_are_refused() {
        let e = plan("[protocol]\nsasl = \"external\"\n").unwrap_err();
        assert_eq!(e.0[0].field, "protocol.sasl");
        let e = plan("[protocol]\nkind = \"amqp\"\nsasl = \"plain\"\n").unwrap_err();
        assert_eq!(e.0[0].field, "protocol.sasl");
    }
}
