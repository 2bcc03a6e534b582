//! The hub's AMQP 1.0 endpoint: IoT Hub's rules for X.509 devices, with fe2o3-amqp's acceptor.
//!
//! The AMQP header follows TLS directly (no SASL, protocol id 0); a client that starts SASL
//! (protocol id 3) is offered EXTERNAL and ANONYMOUS. The certificate decides at ATTACH: the
//! target's device id must equal the certificate CN, be registered, and chain to a verified CA,
//! else the attach is refused with `amqp:unauthorized-access`. OPEN, BEGIN and ATTACH carry the
//! values IoT Hub sends (see `docs/azure-iot-hub.md` sections 2.3 and 7).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::acceptor::sasl_acceptor::{SaslAcceptor, SaslServerFrame};
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SessionAcceptor,
};
use fe2o3_amqp::types::definitions::{self, AmqpError, Fields, LinkError};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, TargetArchetype};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Array, SimpleValue, Symbol, Value};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use fe2o3_amqp::Receiver;
use percent_encoding::percent_decode_str;
use rustls::pki_types::CertificateDer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::accounts::{RunCounter, RUN_PROPERTY};
use super::eventhubs::{self, Event, PlainAuth};
use super::registry::{Device, Refusal};
use super::throttle::Admission;
use super::ws::HubStream;
use super::{Hub, Protocol};
use crate::pki::common_name_of;
use crate::transport::Replay;

/// What IoT Hub advertises on its OPEN.
const MAX_FRAME_SIZE: u32 = 65_536;
const CHANNEL_MAX: u16 = 8_191;
const IDLE_TIME_OUT_MS: u32 = 240_000;
/// What IoT Hub advertises on its BEGIN.
const INCOMING_WINDOW: u32 = 5_000;
const HANDLE_MAX: u32 = 262_143;
/// What the hub advertises on ATTACH; the 256 KiB service limit is enforced per message.
const LINK_MAX_MESSAGE_SIZE: u64 = 1_048_576;
/// Time allowed for the peer to answer a refusing DETACH.
const REFUSAL_GRACE: Duration = Duration::from_secs(5);

/// SASL for clients that start it: EXTERNAL (the certificate is the identity) or ANONYMOUS.
#[derive(Debug, Clone)]
struct CertificateSasl {
    cn: Option<String>,
    /// The Event Hubs endpoint's policy name and key (SASL PLAIN).
    plain: PlainAuth,
}

impl SaslAcceptor for CertificateSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        let names = ["EXTERNAL", "ANONYMOUS", "PLAIN"];
        Array::from(names.into_iter().map(Symbol::from).collect::<Vec<_>>())
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        let ok = match init.mechanism.as_str() {
            // An EXTERNAL authorization id, when given, must be the certificate's CN.
            "EXTERNAL" => {
                self.cn.is_some()
                    && init.initial_response.as_ref().is_none_or(|r| {
                        r.is_empty() || Some(r.as_slice()) == self.cn.as_deref().map(str::as_bytes)
                    })
            }
            "ANONYMOUS" => true,
            "PLAIN" => self
                .plain
                .check(init.initial_response.as_deref().map(Vec::as_slice)),
            _ => false,
        };
        SaslServerFrame::Outcome(SaslOutcome {
            code: if ok { SaslCode::Ok } else { SaslCode::Auth },
            additional_data: None,
        })
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code: SaslCode::Auth,
            additional_data: None,
        })
    }
}

// The acceptor builder's type-state markers are private, so a function cannot name it.
macro_rules! connection_acceptor {
    () => {
        ConnectionAcceptor::builder()
            .container_id(format!("DeviceGateway_{:032x}", rand::random::<u128>()))
            .max_frame_size(MAX_FRAME_SIZE)
            .channel_max(CHANNEL_MAX)
            .idle_time_out(IDLE_TIME_OUT_MS)
    };
}

/// The device id named by an events target, absolute (`amqps://host[:port]/devices/{id}/messages/events`)
/// or relative (`/devices/{id}/messages/events`), percent-decoded once.
fn target_device(address: &str) -> Option<String> {
    let path = match address.strip_prefix("amqps://") {
        Some(rest) => &rest[rest.find('/')?..],
        None => address,
    };
    let id = path
        .trim_start_matches('/')
        .strip_prefix("devices/")?
        .strip_suffix("/messages/events")?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    percent_decode_str(id)
        .decode_utf8()
        .ok()
        .map(|id| id.into_owned())
}

fn target_address(attach: &Attach) -> Option<String> {
    match attach.target.as_deref() {
        Some(TargetArchetype::Target(t)) => t.address.clone(),
        _ => None,
    }
}

pub(super) async fn session(
    hub: Arc<Hub>,
    tls: HubStream,
    chain: Vec<CertificateDer<'static>>,
    conn: u64,
    stop: CancellationToken,
) {
    let timeout = hub.config.connect_timeout;
    let plain = PlainAuth::new(hub.eventhubs.key_name(), hub.eventhubs.key());
    let open = async {
        let (header, stream) = Replay::peek::<8>(tls).await.ok()?;
        let mut connection = match header {
            [b'A', b'M', b'Q', b'P', 0, 1, 0, 0] => {
                connection_acceptor!().build().accept(stream).await.ok()?
            }
            [b'A', b'M', b'Q', b'P', 3, 1, 0, 0] => connection_acceptor!()
                .sasl_acceptor(CertificateSasl {
                    cn: chain.first().and_then(|c| common_name_of(c)),
                    plain: plain.clone(),
                })
                .build()
                .accept(stream)
                .await
                .ok()?,
            _ => return None,
        };
        let session = SessionAcceptor::builder()
            .incoming_window(INCOMING_WINDOW)
            .handle_max(HANDLE_MAX)
            .build()
            .accept(&mut connection)
            .await
            .ok()?;
        Some((connection, session))
    };
    let opened = tokio::select! {
        () = stop.cancelled() => return,
        r = tokio::time::timeout(timeout, open) => r.ok().flatten(),
    };
    let Some((mut connection, mut session)) = opened else {
        // Not AMQP, a failed SASL, or silence: close.
        hub.stats.violations.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut attached: Option<(Arc<Device>, CancellationToken)> = None;
    let mut receivers = JoinSet::new();
    let mut service = eventhubs::Links::new(hub.clone(), plain);
    let links = LinkAcceptor::builder()
        .max_message_size(LINK_MAX_MESSAGE_SIZE)
        .build();
    loop {
        let kicked = async {
            match &attached {
                Some((_, token)) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let attach = tokio::select! {
            () = stop.cancelled() => break,
            () = kicked => {
                hub.stats.taken_over.fetch_add(1, Ordering::Relaxed);
                break;
            }
            a = session.next_incoming_attach() => a,
        };
        let Some(attach) = attach else { break };
        // IoT Hub's built-in Event Hubs-compatible endpoint shares the listener.
        if eventhubs::claims(&attach) {
            service.attach(&mut session, attach).await;
            continue;
        }
        let (device, ca) = match authorize(&hub, &chain, &attach) {
            Ok(d) => d,
            Err(refusal) => {
                tracing::debug!(conn, link = %attach.name, %refusal, "hub refused attach");
                let address = target_address(&attach).unwrap_or_default();
                let named = target_device(&address).unwrap_or(address);
                hub.stats.refuse(Protocol::Amqp, &named, &refusal);
                let error = definitions::Error::new(
                    AmqpError::UnauthorizedAccess,
                    refusal.to_string(),
                    None,
                );
                refuse(&mut session, attach, error).await;
                continue;
            }
        };
        // The new-connection throttle, at a device's first link: shaped (a late attach), or
        // detached with IoT Hub's throttling condition and the connection closed.
        if attached.is_none() {
            match hub.admit_connect() {
                Admission::Now => {}
                Admission::After(wait) => tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                },
                Admission::Refused => {
                    let why = "new-connection throttle exceeded";
                    let accounts = &hub.stats.accounts;
                    accounts.refuse_for(Protocol::Amqp, &device.id, "throttled", &why);
                    let error = throttled(why);
                    refuse(&mut session, attach, error).await;
                    break;
                }
            }
        }
        let Ok(link) = links.accept_incoming_attach(attach, &mut session).await else {
            continue;
        };
        match link {
            LinkEndpoint::Receiver(r) => {
                if attached.is_none() {
                    let token = device.take_over(conn);
                    hub.stats.accept(Protocol::Amqp);
                    attached = Some((device.clone(), token));
                }
                let counter = hub.stats.accounts.received_counter(Protocol::Amqp, &ca);
                receivers.spawn(receive(r, (device, counter), hub.clone()));
            }
            // Cloud-to-device links are not served.
            LinkEndpoint::Sender(s) => {
                let _ = s.close().await;
            }
        }
    }
    receivers.abort_all();
    drop(service);
    let _ = connection.close().await;
    if let Some((device, _)) = attached {
        hub.stats.active.fetch_sub(1, Ordering::Relaxed);
        device.release(conn);
    }
}

/// The target must name the certificate's device, registered and chaining to a verified CA.
fn authorize(
    hub: &Hub,
    chain: &[CertificateDer<'static>],
    attach: &Attach,
) -> Result<(Arc<Device>, Arc<str>), Refusal> {
    let address = target_address(attach).unwrap_or_default();
    let id = target_device(&address).ok_or_else(|| {
        Refusal::IdentityMismatch(format!(
            "target {address:?} is not /devices/{{deviceId}}/messages/events"
        ))
    })?;
    hub.registry.authenticate_by(chain, &id)
}

/// IoT Hub's throttling error (docs/azure-iot-hub.md section 5).
fn throttled(description: &str) -> definitions::Error {
    definitions::Error::new(
        definitions::ErrorCondition::Custom(Symbol::from(
            "com.microsoft:device-container-throttled",
        )),
        description.to_owned(),
        None,
    )
}

/// Answers an ATTACH with a null target, then DETACH with `error` (`amqp:unauthorized-access`
/// for a refusal, IoT Hub's throttling condition for the connection throttle).
async fn refuse(
    session: &mut ListenerSessionHandle,
    mut attach: Attach,
    error: definitions::Error,
) {
    attach.target = None;
    let links = LinkAcceptor::builder().build();
    match links.accept_incoming_attach(attach, session).await {
        Ok(LinkEndpoint::Receiver(r)) => {
            let _ = tokio::time::timeout(REFUSAL_GRACE, r.close_with_error(error)).await;
        }
        Ok(LinkEndpoint::Sender(s)) => {
            let _ = tokio::time::timeout(REFUSAL_GRACE, s.close_with_error(error)).await;
        }
        Err(_) => {}
    }
}

/// IoT Hub's size of a message: body plus application property names and values.
fn message_size(body: &Body<Value>, properties: Option<&ApplicationProperties>) -> usize {
    let body = match body {
        Body::Data(batch) => batch.iter().map(|d| d.0.len()).sum(),
        _ => 0,
    };
    let props: usize = properties.map_or(0, |p| {
        p.0.iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        SimpleValue::String(s) => s.len(),
                        _ => 0,
                    }
            })
            .sum()
    });
    body + props
}

/// The run id a message carries as application property [`RUN_PROPERTY`], if any.
fn run_property(properties: Option<&ApplicationProperties>) -> Option<&str> {
    match properties?.0.get(RUN_PROPERTY)? {
        SimpleValue::String(s) => Some(s),
        _ => None,
    }
}

/// Message format of an IoT Hub batch (`AMQP_BATCHING_FORMAT_CODE` in the C SDK).
const BATCHED_FORMAT: u32 = 0x8001_3700;

/// Receives until the link ends: counts each message, then settles it `accepted`; rejects
/// oversize messages with `amqp:link:message-size-exceeded`.
async fn receive(
    mut receiver: Receiver,
    (device, received): (Arc<Device>, Arc<AtomicU64>),
    hub: Arc<Hub>,
) {
    let max = hub.config.max_message_size;
    let mut runs = RunCounter::default();
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        let message = delivery.message();
        let size = message_size(&message.body, message.application_properties.as_ref());
        // The C SDK sends telemetry in the batched format, one data section per message, even
        // for one message: IoT Hub counts the messages inside.
        let messages = match (delivery.message_format(), &message.body) {
            (Some(BATCHED_FORMAT), Body::Data(batch)) => batch.len().max(1),
            _ => 1,
        };
        let settled = if size > max {
            hub.stats.violations.fetch_add(1, Ordering::Relaxed);
            let mut info = Fields::new();
            info.insert(
                Symbol::from("com.microsoft:tracking-id"),
                Value::String(format!("fleetbench-{:032x}", rand::random::<u128>())),
            );
            info.insert(Symbol::from("com.microsoft:is-filtered"), Value::Bool(true));
            let error = definitions::Error::new(
                LinkError::MessageSizeExceeded,
                format!("Message size is {size} bytes which is greater than the max size {max} bytes allowed."),
                Some(info),
            );
            receiver.reject(&delivery, error).await
        } else {
            match hub.admit_send() {
                // Past the throttle's queue: rejected, not counted.
                Admission::Refused => {
                    let error = throttled("device-to-cloud send throttle exceeded");
                    receiver.reject(&delivery, error).await
                }
                admission => {
                    // Count before settling: whatever the device sees accepted is counted
                    // (the disposition goes out in `accept` below, after these adds), so a run
                    // that asks the hub for its counts after its last acknowledgement finds
                    // every one counted.
                    for _ in 0..messages {
                        device.count_message();
                        received.fetch_add(1, Ordering::Relaxed);
                        hub.stats.count_message();
                    }
                    let run = run_property(message.application_properties.as_ref());
                    runs.count(&hub.stats.accounts, run, &device.id, messages as u64);
                    let format = delivery.message_format().as_ref().copied();
                    for event in Event::amqp(&device.id, message, format) {
                        hub.eventhubs.publish(event);
                    }
                    if let Admission::After(wait) = admission {
                        tokio::time::sleep(wait).await;
                    }
                    receiver.accept(&delivery).await
                }
            }
        };
        if settled.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative_targets_name_the_device() {
        for t in [
            "/devices/d1/messages/events",
            "devices/d1/messages/events",
            "amqps://hub.azure-devices.net/devices/d1/messages/events",
            "amqps://hub:5671/devices/d1/messages/events",
        ] {
            assert_eq!(target_device(t).as_deref(), Some("d1"), "{t}");
        }
        assert_eq!(
            target_device("/devices/a%2Db/messages/events").as_deref(),
            Some("a-b")
        );
        for t in [
            "/devices//messages/events",
            "/devices/d1/messages/devicebound",
            "/queue/x",
            "amqps://hub",
        ] {
            assert_eq!(target_device(t), None, "{t}");
        }
    }
}
