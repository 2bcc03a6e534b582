//! Device-side protocol sessions over a stream that `transport` built. `load` drives a
//! [`Session`] without seeing any rumqttc or fe2o3-amqp type: it sends [`Telemetry`] and reads
//! [`Ack`]s.

pub mod amqp;
pub mod mqtt;
pub mod stamp;

use std::io;

use bytes::Bytes;

use crate::metrics::FailureKind;

pub use amqp::{AmqpConnection, AmqpDialect, AmqpOptions, AmqpSession, SaslMechanism, SettleMode};
pub use mqtt::{CloseWith, MqttDialect, MqttOptions, MqttSession, MqttVersion, QoS, V5Options};

/// How long a polite close may take before the connection is simply dropped.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One device-to-cloud message, protocol-neutral.
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// Message id (IoT Hub `$.mid` / AMQP message-id).
    pub message_id: String,
    /// Body bytes.
    pub body: Bytes,
    /// Content type, e.g. `application/json`.
    pub content_type: Option<&'static str>,
    /// Content encoding, e.g. `utf-8`.
    pub content_encoding: Option<&'static str>,
    /// Application properties (string keys and values, as IoT Hub requires).
    pub properties: &'static [(&'static str, &'static str)],
    /// The send instant (unix µs) for a verifying receiver: the `fleetbench-sent` property.
    /// `None` when no receiver runs.
    pub sent_us: Option<u64>,
}

/// What the hub said about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (PUBACK; AMQP accepted).
    Accepted,
    /// Refused with a reason (AMQP rejected/released/modified with its condition).
    Refused(String),
}

/// An acknowledgement of the message sent with sequence number `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The sequence number [`Session::send`] returned.
    pub seq: u64,
    /// Accepted or refused.
    pub outcome: Outcome,
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The hub refused the session (CONNACK code, AMQP error condition).
    #[error("refused by the hub: {0}")]
    Refused(String),
    /// The hub throttled the device.
    #[error("throttled by the hub: {0}")]
    Throttled(String),
    /// The connection closed.
    #[error("connection closed by the hub")]
    Closed,
    /// An I/O error on the stream.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// The peer sent something this protocol does not allow here.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl SessionError {
    /// The failure kind this error is counted as.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Refused(_) => FailureKind::Refused,
            Self::Throttled(_) => FailureKind::Throttled,
            Self::Closed => FailureKind::Closed,
            Self::Io(e) => io_kind(e),
            Self::Protocol(_) => FailureKind::Protocol,
        }
    }
}

/// The failure kind of an I/O error: resets and EOFs are the peer closing.
pub fn io_kind(e: &io::Error) -> FailureKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => FailureKind::Closed,
        io::ErrorKind::TimedOut => FailureKind::Timeout,
        io::ErrorKind::InvalidData => FailureKind::Handshake,
        _ => FailureKind::Connect,
    }
}

/// Which protocol a scenario speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AMQP 1.0.
    Amqp,
    /// MQTT 3.1.1.
    Mqtt,
}

/// A connected device session of either protocol.
// The MQTT variant stays inline (0.2 KB, one per device task): boxing it would add an
// allocation to every session for no room saved.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Session<S> {
    /// AMQP 1.0; fe2o3-amqp owns the stream in its connection task. Boxed: fe2o3's handles
    /// are some 0.8 KB, an MQTT session 0.2 KB, and every future that holds a session (its
    /// life, its close) would carry the larger.
    Amqp(Box<AmqpSession>),
    /// MQTT over the device's stream.
    Mqtt(MqttSession<S>),
}

impl<S> Session<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    /// Queues one message for the next [`Self::flush`] (AMQP transfers it at once). Returns
    /// its sequence number, and whether it is already settled (QoS 0, pre-settled AMQP).
    pub async fn send(&mut self, msg: &Telemetry) -> Result<(u64, bool), SessionError> {
        match self {
            // Boxed: fe2o3's send future is some 4 KB, and every MQTT session's send loop
            // would otherwise be as wide as it for its whole life.
            Self::Amqp(s) => Box::pin(s.send(msg)).await,
            Self::Mqtt(s) => s.send(msg),
        }
    }

    /// Writes every queued message (one write, one TLS record where they fit).
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        match self {
            Self::Amqp(_) => Ok(()),
            Self::Mqtt(s) => s.flush().await,
        }
    }

    /// How many unsettled messages may await acknowledgement at once by the protocol's own
    /// rule (an MQTT 5 broker's receive maximum); `usize::MAX` where it sets none.
    pub fn inflight_cap(&self) -> usize {
        match self {
            Self::Amqp(_) => usize::MAX,
            Self::Mqtt(s) => s.inflight_cap(),
        }
    }

    /// Waits for the next acknowledgement. Cancel-safe: use it in `select!`.
    pub async fn next_ack(&mut self) -> Result<Ack, SessionError> {
        match self {
            Self::Amqp(s) => s.next_ack().await,
            Self::Mqtt(s) => s.next_ack().await,
        }
    }

    /// Sends a keep-alive (AMQP: fe2o3-amqp sends empty frames on its own).
    pub async fn keep_alive(&mut self) -> Result<(), SessionError> {
        match self {
            Self::Amqp(_) => Ok(()),
            Self::Mqtt(s) => s.ping().await,
        }
    }
}

impl<S> Session<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + CloseWith + Unpin + Send,
{
    /// Closes the session politely (DISCONNECT, AMQP close); errors are ignored.
    pub async fn close(self) {
        // A peer that stopped answering must not hold a device (and the run) forever.
        // Each arm holds only its own close: fe2o3's is some 5 KB, boxed, so that an MQTT
        // session's close (0.5 KB) does not carry its room.
        match self {
            Self::Amqp(s) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, Box::pin(s.close())).await;
            }
            Self::Mqtt(s) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, s.close()).await;
            }
        }
    }
}
