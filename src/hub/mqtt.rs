//! The hub's MQTT endpoint: IoT Hub's rules for X.509 devices over MQTT 3.1.1.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{FutureExt as _, SinkExt, StreamExt};
use percent_encoding::percent_decode_str;
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, Connect, ConnectReturnCode, Packet, PubAck, SubAck, SubscribeReasonCode,
};
use rumqttc::mqttbytes::QoS;
use rustls::pki_types::CertificateDer;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::accounts::{RunCounter, RUN_PROPERTY};
use super::registry::{Device, Refusal};
use super::throttle::Admission;
use super::ws::HubStream;
use super::{Hub, Protocol};

type Conn = Framed<HubStream, Codec>;

/// IoT Hub keeps a session for 1.5 x the client's keep-alive, at most 1767 s.
fn keep_alive_deadline(keep_alive: u16) -> Option<Duration> {
    (keep_alive > 0)
        .then(|| Duration::from_millis(u64::from(keep_alive) * 1500).min(Duration::from_secs(1767)))
}

/// The device id named in an IoT Hub username `host/deviceId[/moduleId]/?query` (the `?` may be missing).
fn username_device(username: &str) -> Option<&str> {
    let mut parts = username.splitn(3, '/');
    let _host = parts.next()?;
    parts.next().filter(|d| !d.is_empty())
}

pub(super) async fn session(
    hub: &Hub,
    tls: HubStream,
    chain: Vec<CertificateDer<'static>>,
    conn: u64,
    stop: CancellationToken,
) {
    let codec = Codec {
        max_incoming_size: hub.config.max_message_size + 64 * 1024,
        max_outgoing_size: 64 * 1024,
    };
    let mut framed = Framed::new(tls, codec);

    let first = tokio::select! {
        () = stop.cancelled() => return,
        r = tokio::time::timeout(hub.config.connect_timeout, framed.next()) => r,
    };
    // Anything but a CONNECT first (garbage, timeout, another packet): close.
    let Ok(Some(Ok(Packet::Connect(connect)))) = first else {
        hub.stats.violations.fetch_add(1, Ordering::Relaxed);
        return;
    };

    let (device, ca) = match authorize(hub, &chain, &connect) {
        Ok(d) => d,
        Err(refusal) => {
            tracing::debug!(conn, client_id = %connect.client_id, %refusal, "hub refused session");
            hub.stats
                .refuse(Protocol::Mqtt, &connect.client_id, &refusal);
            let _ = framed
                .send(Packet::ConnAck(ConnAck::new(
                    ConnectReturnCode::NotAuthorized,
                    false,
                )))
                .await;
            return;
        }
    };

    if let Some(until) = hub.connack_hold() {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(until) => {}
        }
    }
    // The new-connection throttle: shaped (a late CONNACK), or a throttling disconnect.
    match hub.admit_connect() {
        Admission::Now => {}
        Admission::After(wait) => {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
        Admission::Refused => {
            let why = "new-connection throttle exceeded";
            let accounts = &hub.stats.accounts;
            accounts.refuse_for(Protocol::Mqtt, &device.id, "throttled", &why);
            return;
        }
    }
    let kicked = device.take_over(conn);
    if framed
        .send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false,
        )))
        .await
        .is_err()
    {
        device.release(conn);
        return;
    }
    hub.stats.accept(Protocol::Mqtt);
    let received = hub.stats.accounts.received_counter(Protocol::Mqtt, &ca);
    let session = Session {
        device: &device,
        received: &received,
        kicked: &kicked,
    };
    let end = serve_device(hub, &mut framed, &session, &connect, &stop).await;
    if end == End::TakenOver {
        hub.stats.taken_over.fetch_add(1, Ordering::Relaxed);
    }
    hub.stats.active.fetch_sub(1, Ordering::Relaxed);
    device.release(conn);
}

fn authorize(
    hub: &Hub,
    chain: &[CertificateDer<'static>],
    connect: &Connect,
) -> Result<(std::sync::Arc<Device>, std::sync::Arc<str>), Refusal> {
    if chain.is_empty() {
        return Err(Refusal::NoCertificate);
    }
    let id = connect.client_id.as_str();
    let username = connect
        .login
        .as_ref()
        .map(|l| l.username.as_str())
        .unwrap_or_default();
    match username_device(username) {
        Some(named) if named == id => {}
        Some(named) => {
            return Err(Refusal::IdentityMismatch(format!(
                "username names device {named:?} but the client id is {id:?}"
            )))
        }
        None => {
            return Err(Refusal::IdentityMismatch(format!(
                "username {username:?} is not of the form host/deviceId/?api-version=..."
            )))
        }
    }
    hub.registry.authenticate_by(chain, id)
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    Shutdown,
    TakenOver,
    Violation,
}

/// An accepted session: its device, where its messages are counted, and its take-over token.
struct Session<'a> {
    device: &'a Device,
    received: &'a AtomicU64,
    kicked: &'a CancellationToken,
}

async fn serve_device(
    hub: &Hub,
    framed: &mut Conn,
    session: &Session<'_>,
    connect: &Connect,
    stop: &CancellationToken,
) -> End {
    let Session {
        device,
        received,
        kicked,
    } = *session;
    let events_topic = format!("devices/{}/messages/events", device.id);
    let idle = keep_alive_deadline(connect.keep_alive);
    let mut runs = RunCounter::default();
    loop {
        // Answers go out in batches, as a server under load writes them: a PUBACK is queued
        // while more of the device's packets are already readable, and the queue is written
        // (one TLS record, one write) before the hub waits for more.
        let packet = match framed.next().now_or_never() {
            Some(p) => Some(p),
            None => {
                if framed.flush().await.is_err() {
                    return End::Closed;
                }
                let next = async {
                    match idle {
                        Some(d) => tokio::time::timeout(d, framed.next()).await.ok(),
                        None => Some(framed.next().await),
                    }
                };
                tokio::select! {
                    () = stop.cancelled() => return End::Shutdown,
                    () = kicked.cancelled() => return End::TakenOver,
                    p = next => p,
                }
            }
        };
        let packet = match packet {
            // Keep-alive expired (IoT Hub: 404104 DeviceConnectionClosedRemotely).
            None => return End::Closed,
            Some(None) => return End::Closed,
            Some(Some(Err(_))) => return violation(hub),
            Some(Some(Ok(p))) => p,
        };
        match packet {
            Packet::Publish(p) => {
                if p.qos == QoS::ExactlyOnce || !is_events_topic(&p.topic, &events_topic) {
                    // IoT Hub closes the connection on QoS 2 and on another device's topic.
                    return violation(hub);
                }
                if message_size(&p.topic, &events_topic, p.payload.len())
                    > hub.config.max_message_size
                {
                    return violation(hub);
                }
                // The send throttle: over the limit the PUBACK comes late (queued at the limit
                // rate); past the queue, IoT Hub closes the connection (MQTT has no negative ack).
                let wait = match hub.admit_send() {
                    Admission::Now => None,
                    Admission::After(wait) => Some(wait),
                    Admission::Refused => return End::Closed,
                };
                // Count before acknowledging: whatever the device sees acknowledged is counted
                // (the PUBACK below is queued only after these adds), so a run that asks the
                // hub for its counts after its last acknowledgement finds every one counted.
                device.count_message();
                received.fetch_add(1, Ordering::Relaxed);
                let run = bag_property(&p.topic, &events_topic, RUN_PROPERTY);
                runs.count(&hub.stats.accounts, run.as_deref(), &device.id, 1);
                hub.stats.count_message();
                let bag = &p.topic[events_topic.len()..];
                let event = super::eventhubs::Event::mqtt(&device.id, bag, p.payload.clone());
                hub.eventhubs.publish(event);
                if let Some(wait) = wait {
                    // Earlier messages' answers are not held back by this one's.
                    if framed.flush().await.is_err() {
                        return End::Closed;
                    }
                    tokio::select! {
                        () = stop.cancelled() => return End::Shutdown,
                        () = kicked.cancelled() => return End::TakenOver,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                if p.qos == QoS::AtLeastOnce
                    && !hub.puback_withheld()
                    && framed
                        .feed(Packet::PubAck(PubAck::new(p.pkid)))
                        .await
                        .is_err()
                {
                    return End::Closed;
                }
            }
            Packet::PingReq => {
                if framed.send(Packet::PingResp).await.is_err() {
                    return End::Closed;
                }
            }
            Packet::Subscribe(s) => {
                let allowed = format!("devices/{}/messages/devicebound/", device.id);
                let codes = s
                    .filters
                    .iter()
                    .map(|f| {
                        if f.path.starts_with(&allowed) || f.path.starts_with("$iothub/") {
                            SubscribeReasonCode::Success(at_most_qos1(f.qos))
                        } else {
                            SubscribeReasonCode::Failure
                        }
                    })
                    .collect();
                if framed
                    .send(Packet::SubAck(SubAck::new(s.pkid, codes)))
                    .await
                    .is_err()
                {
                    return End::Closed;
                }
            }
            Packet::Disconnect => {
                hub.stats.count_disconnect();
                return End::Closed;
            }
            _ => return violation(hub),
        }
    }
}

/// IoT Hub grants at most QoS 1.
fn at_most_qos1(q: QoS) -> QoS {
    match q {
        QoS::ExactlyOnce => QoS::AtLeastOnce,
        q => q,
    }
}

fn violation(hub: &Hub) -> End {
    hub.stats.violations.fetch_add(1, Ordering::Relaxed);
    End::Violation
}

/// `devices/{id}/messages/events` with an optional `/` and property bag.
fn is_events_topic(topic: &str, events: &str) -> bool {
    topic
        .strip_prefix(events)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The value of property `key` in the property bag of events topic `topic`, decoded (borrowed
/// from the topic unless it holds escapes: no allocation for a run id).
fn bag_property<'t>(topic: &'t str, events: &str, key: &str) -> Option<Cow<'t, str>> {
    let bag = topic.get(events.len()..)?.trim_start_matches('/');
    bag.trim_end_matches('/').split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (percent_decode_str(k).decode_utf8_lossy() == key)
            .then(|| percent_decode_str(v).decode_utf8_lossy())
    })
}

/// IoT Hub's protocol-agnostic size: body + property names and values (decoded).
fn message_size(topic: &str, events: &str, body: usize) -> usize {
    let bag = topic[events.len()..]
        .trim_start_matches('/')
        .trim_end_matches('/');
    let props: usize = bag
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let k = percent_decode_str(k).decode_utf8_lossy();
            let v = percent_decode_str(v).decode_utf8_lossy();
            // System properties count their values only.
            if k.starts_with("$.") {
                v.len()
            } else {
                k.len() + v.len()
            }
        })
        .sum();
    body + props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_forms_iot_hub_accepts() {
        assert_eq!(
            username_device("h.azure-devices.net/dev1/?api-version=2021-04-12"),
            Some("dev1")
        );
        assert_eq!(
            username_device("h/dev1/api-version=2016-11-14"),
            Some("dev1")
        );
        assert_eq!(username_device("h/dev1/mod1/?api-version=x"), Some("dev1"));
        assert_eq!(username_device("nohost"), None);
        assert_eq!(username_device("h//x"), None);
    }

    #[test]
    fn events_topic_matching() {
        let e = "devices/d1/messages/events";
        assert!(is_events_topic("devices/d1/messages/events/", e));
        assert!(is_events_topic("devices/d1/messages/events/%24.mid=1", e));
        assert!(is_events_topic("devices/d1/messages/events", e));
        assert!(!is_events_topic("devices/d10/messages/events/", e));
        assert!(!is_events_topic("devices/d2/messages/events/", e));
    }

    #[test]
    fn run_id_is_read_from_the_property_bag() {
        let e = "devices/d1/messages/events";
        let t = "devices/d1/messages/events/%24.mid=d1-0&fleetbench-run=00ab&x=%2F";
        assert_eq!(bag_property(t, e, RUN_PROPERTY).as_deref(), Some("00ab"));
        assert_eq!(bag_property(t, e, "x").as_deref(), Some("/"));
        assert_eq!(
            bag_property("devices/d1/messages/events/", e, RUN_PROPERTY),
            None
        );
        assert_eq!(
            bag_property("devices/d1/messages/events", e, RUN_PROPERTY),
            None
        );
    }

    #[test]
    fn size_counts_body_and_properties() {
        let e = "devices/d1/messages/events";
        let t = "devices/d1/messages/events/%24.mid=abc&temperatureAlert=true/";
        assert_eq!(
            message_size(t, e, 10),
            10 + 3 + "temperatureAlert".len() + 4
        );
    }

    #[test]
    fn keep_alive_is_one_and_a_half_times_capped() {
        assert_eq!(keep_alive_deadline(60), Some(Duration::from_secs(90)));
        assert_eq!(keep_alive_deadline(0), None);
        assert_eq!(keep_alive_deadline(5000), Some(Duration::from_secs(1767)));
    }
}
