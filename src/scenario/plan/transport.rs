//! The `[transport]` table: MQTT or AMQP over WebSockets inside the TLS stream.

use serde_json::json;

use super::super::problems::Problems;
use super::super::Scenario;
use super::ProtocolPlan;
use crate::protocol::{AmqpDialect, MqttDialect};
use crate::transport::ws::{self, WsTarget};

/// The upgrade a scenario asks for, if any: the path (IoT Hub's by default) and the
/// protocol's subprotocol.
pub(super) fn websocket(
    s: &Scenario,
    protocol: Option<&ProtocolPlan>,
    p: &mut Problems<'_>,
) -> Option<WsTarget> {
    let t = &s.transport;
    if t.websocket != Some(true) {
        if t.path.is_some() {
            p.add(
                "transport.path",
                "only applies with websocket = true (MQTT or AMQP over WebSockets)",
            );
        }
        return None;
    }
    let (default, subprotocol) = match protocol? {
        ProtocolPlan::Mqtt(m) => match m.dialect {
            MqttDialect::IotHub { .. } => (ws::IOT_HUB_PATH, ws::MQTT_SUBPROTOCOL),
            MqttDialect::Generic { .. } => ("/mqtt", ws::MQTT_SUBPROTOCOL),
        },
        ProtocolPlan::Amqp(a) => match a.dialect {
            AmqpDialect::IotHub { .. } => (ws::IOT_HUB_PATH, ws::AMQP_SUBPROTOCOL),
            AmqpDialect::Generic { .. } => ("/", ws::AMQP_SUBPROTOCOL),
        },
    };
    let path = t.path.clone().unwrap_or_else(|| default.to_owned());
    let valid = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"#?\"<>\\^`{|}".contains(&b));
    if !valid {
        p.add(
            "transport.path",
            format!("{path:?} is not valid: expected an absolute URL path such as \"/$iothub/websocket\" (no query, no spaces)"),
        );
        return None;
    }
    Some(WsTarget { path, subprotocol })
}

/// The table as `summary.json` records it.
pub(super) fn to_json(ws: Option<&WsTarget>) -> serde_json::Value {
    match ws {
        Some(w) => json!({"websocket": true, "path": w.path, "subprotocol": w.subprotocol}),
        None => json!({"websocket": false}),
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::test_plan as plan;

    #[test]
    fn iot_hub_paths_and_subprotocols_by_protocol() {
        let m = plan("[transport]\nwebsocket = true\n").unwrap();
        let w = m.websocket.unwrap();
        assert_eq!(
            (w.path.as_str(), w.subprotocol),
            ("/$iothub/websocket", "mqtt")
        );
        let a = plan("[protocol]\nkind = \"amqp\"\n[transport]\nwebsocket = true\n").unwrap();
        assert_eq!(a.websocket.unwrap().subprotocol, "AMQPWSB10");
        assert!(plan("").unwrap().websocket.is_none());
    }

    #[test]
    fn a_bad_path_or_a_path_without_websocket_is_named() {
        let e = plan("[transport]\nwebsocket = true\npath = \"mqtt here\"\n").unwrap_err();
        assert_eq!(
            (e.0[0].field.as_str(), e.0[0].line),
            ("transport.path", Some(3))
        );
        let e = plan("[transport]\npath = \"/mqtt\"\n").unwrap_err();
        assert!(
            e.to_string().contains("only applies with websocket = true"),
            "{e}"
        );
    }
}
