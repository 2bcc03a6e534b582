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

/// A `wss://host[:port][/path]` target address, as IoT Hub's SDKs write theirs
/// (`wss://{host}:443/$iothub/websocket`): the scenario with it taken apart into
/// `target.address = "host:port"` (port 443 unless given) and `[transport] websocket = true`
/// with that path (the protocol's default path when none). `None` when the address is not a
/// URL; a `ws://` address (no TLS) or a contradiction with `[transport]` is a problem.
pub(super) fn wss_address(s: &Scenario, p: &mut Problems<'_>) -> Option<Scenario> {
    let address = s.target.address.as_deref()?;
    if address.starts_with("ws://") {
        p.add(
            "target.address",
            format!("{address:?}: fleetbench's devices speak mutual TLS; use wss://"),
        );
        return None;
    }
    let rest = address.strip_prefix("wss://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let host_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    if s.transport.websocket == Some(false) {
        p.add(
            "transport.websocket",
            format!("is false, but target.address {address:?} is a WebSocket URL"),
        );
        return None;
    }
    if let (Some(url), Some(table)) = (path, s.transport.path.as_deref()) {
        if url != table {
            p.add(
                "transport.path",
                format!("{table:?} differs from the path of target.address {address:?}: give it in one place"),
            );
            return None;
        }
    }
    let mut out = s.clone();
    out.target.address = Some(host_port);
    out.transport.websocket = Some(true);
    if let Some(path) = path {
        out.transport.path = Some(path.to_owned());
    }
    Some(out)
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
    fn a_wss_address_is_taken_apart_into_address_and_path() {
        let remote = |addr: &str, transport: &str| {
            plan(&format!(
                "[target]\nhub = \"remote\"\naddress = \"{addr}\"\nca-file = \"ca.pem\"\n[transport]\n{transport}\n"
            ))
        };
        let m = remote("wss://hub.example.net/$iothub/websocket", "").unwrap();
        assert!(m.to_json()["target"]
            .to_string()
            .contains("hub.example.net:443"));
        assert_eq!(m.websocket.unwrap().path, "/$iothub/websocket");
        let m = remote("wss://127.0.0.1:8443/mqtt", "").unwrap();
        assert_eq!(m.websocket.unwrap().path, "/mqtt");
        // No path: the protocol's default.
        let m = remote("wss://localhost", "").unwrap();
        assert_eq!(m.websocket.unwrap().path, "/$iothub/websocket");
        let e = remote("ws://127.0.0.1:80/mqtt", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("target.address") && e.contains("wss://"), "{e}");
        let e = remote("wss://h:1/a", "path = \"/b\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("transport.path") && e.contains("one place"),
            "{e}"
        );
        let e = remote("wss://h:1/a", "websocket = false")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transport.websocket"), "{e}");
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
