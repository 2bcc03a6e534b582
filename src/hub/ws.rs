//! The hub's WebSocket listeners: IoT Hub's `/$iothub/websocket` on its own port, with
//! subprotocol `mqtt` or `AMQPWSB10`, upgraded inside the mutual-TLS stream (the device's
//! certificate still comes from TLS), then handed to the same MQTT and AMQP sessions.

use std::sync::atomic::Ordering;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::{Hub, Protocol};
use crate::transport::ws::{self, WsTarget};
use crate::transport::MaybeWs;

/// What the hub's MQTT and AMQP sessions run over: TLS, or a WebSocket inside it.
pub(super) type HubStream = MaybeWs<TlsStream<TcpStream>>;

/// The refusal reason counted for a failed upgrade (hub accounts, `hub serve`'s summary).
const REASON: &str = "ws_upgrade";

/// Upgrades `tls` as IoT Hub's WebSocket endpoint for `wire`, within the hub's connect
/// timeout; a refused, failed or silent upgrade is counted (as a refusal and a violation) and
/// ends the connection.
pub(super) async fn upgrade(
    hub: &Hub,
    tls: TlsStream<TcpStream>,
    wire: Protocol,
    stop: &CancellationToken,
) -> Option<HubStream> {
    let target = WsTarget {
        path: ws::IOT_HUB_PATH.to_owned(),
        subprotocol: match wire {
            Protocol::Mqtt => ws::MQTT_SUBPROTOCOL,
            Protocol::Amqp => ws::AMQP_SUBPROTOCOL,
        },
    };
    let mut counted = false;
    let refused = |why: &'static str| {
        counted = true;
        count(hub, wire, &why);
    };
    let accept = ws::accept(tls, &target, refused);
    let result = tokio::select! {
        () = stop.cancelled() => return None,
        r = tokio::time::timeout(hub.config.connect_timeout, accept) => r,
    };
    match result {
        Ok(Ok(stream)) => Some(MaybeWs::Ws(Box::new(stream))),
        Ok(Err(e)) => {
            if !counted {
                count(hub, wire, &e);
            }
            None
        }
        Err(_) => {
            count(hub, wire, &"no WebSocket upgrade in time");
            None
        }
    }
}

/// Counts a failed upgrade: among the hub's refusals by reason (a run's report, `hub serve`'s
/// summary and metrics) and as a violation.
fn count(hub: &Hub, wire: Protocol, why: &dyn std::fmt::Display) {
    *hub.stats.refusals.lock().entry(REASON).or_default() += 1;
    hub.stats.accounts.refuse_for(wire, "", REASON, why);
    hub.stats.violations.fetch_add(1, Ordering::Relaxed);
}
