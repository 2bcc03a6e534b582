//! The MQTT verifying receiver: its own mutual-TLS connection (its own certificate), a
//! subscription confirmed by SUBACK before the load starts, then every PUBLISH handed to the
//! accounting as a [`Received`] and acknowledged. Framed with rumqttc's `mqttbytes` codec over
//! the same transport the devices use; packets read in one batch share one receive instant.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use percent_encoding::percent_decode_str;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Received, VerifyError};
use crate::protocol::stamp::SENT_PROPERTY;
use crate::transport::{self, Endpoint};

/// Largest packet accepted: a 256 KiB message and its topic.
const MAX_PACKET: usize = 1024 * 1024;
/// Keep-alive announced in CONNECT; a PINGREQ goes out after half of it idle.
const KEEP_ALIVE: u16 = 30;
/// Time allowed for connecting and subscribing.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// What to subscribe to.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The filter as sent (with `$share/GROUP/` when shared).
    pub filter: String,
    /// Subscription QoS.
    pub qos: QoS,
}

/// A connected receiver whose subscription the broker confirmed.
pub struct MqttReceiver {
    io: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    read: BytesMut,
    write: BytesMut,
    client_id: String,
}

impl std::fmt::Debug for MqttReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttReceiver")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl MqttReceiver {
    /// Connects as `client_id` and subscribes; an error names what the broker refused.
    pub async fn connect(
        endpoint: &Endpoint,
        tls: Arc<rustls::ClientConfig>,
        client_id: &str,
        sub: &Subscription,
    ) -> Result<Self, VerifyError> {
        let setup = async {
            let tcp = transport::tcp_connect(endpoint.addr, None).await?;
            let (io, _) = transport::tls_handshake(tls, endpoint.server_name.clone(), tcp).await?;
            let mut r = Self {
                io,
                read: BytesMut::with_capacity(16 * 1024),
                write: BytesMut::with_capacity(4 * 1024),
                client_id: client_id.to_owned(),
            };
            let mut connect = Connect::new(client_id);
            connect.keep_alive = KEEP_ALIVE;
            connect.clean_session = true;
            r.send(&Packet::Connect(connect)).await?;
            match r.next().await? {
                Packet::ConnAck(ConnAck {
                    code: ConnectReturnCode::Success,
                    ..
                }) => {}
                Packet::ConnAck(ConnAck { code, .. }) => {
                    return Err(VerifyError::Refused(crate::protocol::mqtt::connack_text(
                        code,
                    )))
                }
                other => return Err(unexpected("CONNACK", &other)),
            }
            let mut subscribe = Subscribe::new(sub.filter.clone(), sub.qos);
            subscribe.pkid = 1;
            r.send(&Packet::Subscribe(subscribe)).await?;
            match r.next().await? {
                Packet::SubAck(ack) => match ack.return_codes.first() {
                    Some(SubscribeReasonCode::Success(_)) => Ok(r),
                    _ => Err(VerifyError::Refused(format!(
                        "SUBACK refused the subscription to {:?}",
                        sub.filter
                    ))),
                },
                other => Err(unexpected("SUBACK", &other)),
            }
        };
        tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| VerifyError::Timeout(SETUP_TIMEOUT))?
    }

    /// Reads until `stop`, handing each message to `tx` and acknowledging it. Returns the
    /// messages read.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Received>,
        stop: CancellationToken,
    ) -> Result<u64, VerifyError> {
        let mut count = 0u64;
        let idle = Duration::from_secs(u64::from(KEEP_ALIVE) / 2);
        loop {
            // Every whole packet already buffered first: one receive instant per read batch.
            let at = std::time::Instant::now();
            while let Some(packet) = self.parse()? {
                match packet {
                    Packet::Publish(p) => {
                        if p.qos != QoS::AtMostOnce {
                            self.queue(&Packet::PubAck(PubAck::new(p.pkid)))?;
                        }
                        count += 1;
                        // The accounting ended: what still comes is not counted.
                        if tx.send(received(p, at)).await.is_err() {
                            return Ok(count);
                        }
                    }
                    Packet::PingResp => {}
                    other => return Err(unexpected("PUBLISH", &other)),
                }
            }
            self.flush().await?;
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                n = self.io.read_buf(&mut self.read) => {
                    if n? == 0 {
                        return Err(VerifyError::Closed);
                    }
                }
                () = tokio::time::sleep(idle) => self.queue(&Packet::PingReq)?,
            }
        }
        let _ = self.send(&Packet::Disconnect).await;
        let _ = self.io.shutdown().await;
        Ok(count)
    }

    fn parse(&mut self) -> Result<Option<Packet>, VerifyError> {
        match Packet::read(&mut self.read, MAX_PACKET) {
            Ok(p) => Ok(Some(p)),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(n)) => {
                self.read.reserve(n.max(4096));
                Ok(None)
            }
            Err(e) => Err(VerifyError::Protocol(e.to_string())),
        }
    }

    fn queue(&mut self, packet: &Packet) -> Result<(), VerifyError> {
        packet
            .write(&mut self.write, MAX_PACKET)
            .map(drop)
            .map_err(|e| VerifyError::Protocol(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), VerifyError> {
        while !self.write.is_empty() {
            let n = self.io.write(&self.write).await?;
            if n == 0 {
                return Err(VerifyError::Closed);
            }
            self.write.advance(n);
        }
        self.io.flush().await?;
        Ok(())
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), VerifyError> {
        self.queue(packet)?;
        self.flush().await
    }

    async fn next(&mut self) -> Result<Packet, VerifyError> {
        loop {
            if let Some(p) = self.parse()? {
                return Ok(p);
            }
            if self.io.read_buf(&mut self.read).await? == 0 {
                return Err(VerifyError::Closed);
            }
        }
    }
}

fn unexpected(wanted: &str, got: &Packet) -> VerifyError {
    VerifyError::Protocol(format!("expected {wanted}, got {got:?}"))
}

/// A PUBLISH as the accounting sees it. IoT Hub-style topics
/// (`devices/{id}/messages/events/{property bag}`) give the device, the message id and the
/// properties; otherwise the payload's stamp says everything.
fn received(p: Publish, at: std::time::Instant) -> Received {
    let mut r = Received {
        device: None,
        message_id: None,
        properties: Vec::new(),
        body: p.payload,
        at,
    };
    let topic = p.topic.as_str();
    if let Some(rest) = topic.strip_prefix("devices/") {
        if let Some((device, bag)) = rest.split_once("/messages/events/") {
            r.device = Some(device.to_owned());
            for pair in bag.split('&').filter(|s| !s.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let k = percent_decode_str(k).decode_utf8_lossy().into_owned();
                let v = percent_decode_str(v).decode_utf8_lossy().into_owned();
                if k == "$.mid" {
                    r.message_id = Some(v);
                } else if k == SENT_PROPERTY || k.starts_with("fleetbench-") {
                    r.properties.push((k, v));
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iot_hub_topics_give_device_id_and_properties() {
        let p = Publish::new(
            "devices/d-1/messages/events/%24.mid=d-1-4&%24.ct=application%2Fjson&fleetbench-sent=17",
            QoS::AtLeastOnce,
            b"{}".to_vec(),
        );
        let r = received(p, std::time::Instant::now());
        assert_eq!(r.device.as_deref(), Some("d-1"));
        assert_eq!(r.message_id.as_deref(), Some("d-1-4"));
        assert_eq!(r.properties, [("fleetbench-sent".into(), "17".into())]);
    }
}
