//! AMQP 1.0 device sessions: fe2o3-amqp over the TLS stream that `transport` built, opened in
//! two timed steps ([`AmqpSession::open`]: header exchange, SASL when used, OPEN;
//! [`AmqpConnection::attach`]: BEGIN and the sender ATTACH). Sends are pipelined: each transfer's
//! settlement is awaited in a [`FuturesUnordered`], so [`AmqpSession::next_ack`] is cancel-safe.

mod sasl;

use std::fmt;

use fe2o3_amqp::connection::{ConnectionHandle, OpenError};
use fe2o3_amqp::link::{SendError, SenderAttachError};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{self, ErrorCondition, Fields, SenderSettleMode};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message, Outcome as AmqpOutcome, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Value};
use fe2o3_amqp::{Connection, Sendable, Sender, Session};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::mqtt::render;
use super::{Ack, Outcome, SessionError, Telemetry};

/// The client version the IoT Hub dialect announces on its sender link.
const CLIENT_VERSION: &str = concat!("fleetbench/", env!("CARGO_PKG_VERSION"));

/// The SASL layer of a generic broker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// SASL ANONYMOUS.
    Anonymous,
    /// SASL EXTERNAL: the broker takes the identity from the TLS client certificate.
    External,
    /// No SASL layer: the AMQP header follows TLS directly (IoT Hub's X.509 path).
    None,
}

impl SaslMechanism {
    /// The name used in scenarios and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::External => "external",
            Self::None => "none",
        }
    }
}

/// How the link address and connection are formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmqpDialect {
    /// A generic AMQP 1.0 broker.
    Generic {
        /// Target address template, e.g. `/queue/telemetry` or `/queue/{device_id}`.
        address: String,
        /// SASL mechanism.
        sasl: SaslMechanism,
    },
    /// Azure IoT Hub's device conventions (no SASL for X.509).
    IotHub {
        /// The `com.microsoft:api-version` attach property.
        api_version: String,
    },
}

/// Whether telemetry is sent pre-settled or awaits the receiver's disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleMode {
    /// Pre-settled: fire and forget, counted on write.
    Settled,
    /// Unsettled: each transfer awaits a settling disposition (IoT Hub SDKs).
    Unsettled,
}

impl SettleMode {
    /// The name used in scenarios and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Settled => "settled",
            Self::Unsettled => "unsettled",
        }
    }
}

/// AMQP settings of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// Dialect.
    pub dialect: AmqpDialect,
    /// Settle mode of the sender link.
    pub settle: SettleMode,
    /// The run's id, sent as the `fleetbench-run` application property.
    pub run_id: Option<std::sync::Arc<str>>,
}

impl AmqpOptions {
    /// The sender link's target address for `device_id`.
    pub fn target(&self, device_id: &str) -> String {
        match &self.dialect {
            AmqpDialect::IotHub { .. } => format!("/devices/{device_id}/messages/events"),
            AmqpDialect::Generic { address, .. } => render(address, device_id),
        }
    }

    fn sasl(&self) -> SaslMechanism {
        match &self.dialect {
            AmqpDialect::IotHub { .. } => SaslMechanism::None,
            AmqpDialect::Generic { sasl, .. } => *sasl,
        }
    }

    /// The attach properties the IoT Hub SDKs send; none for a generic broker.
    fn attach_properties(&self) -> Option<Fields> {
        let AmqpDialect::IotHub { api_version } = &self.dialect else {
            return None;
        };
        let mut p = Fields::new();
        p.insert(
            Symbol::from("com.microsoft:client-version"),
            Value::String(CLIENT_VERSION.to_owned()),
        );
        p.insert(
            Symbol::from("com.microsoft:api-version"),
            Value::String(api_version.clone()),
        );
        Some(p)
    }
}

/// The name of an AMQP error condition, e.g. `amqp:unauthorized-access`.
pub fn condition_name(condition: &ErrorCondition) -> String {
    match condition {
        ErrorCondition::AmqpError(e) => Symbol::from(e).as_str().to_owned(),
        ErrorCondition::ConnectionError(e) => Symbol::from(e).as_str().to_owned(),
        ErrorCondition::SessionError(e) => Symbol::from(e).as_str().to_owned(),
        ErrorCondition::LinkError(e) => Symbol::from(e).as_str().to_owned(),
        ErrorCondition::Custom(s) => s.as_str().to_owned(),
    }
}

fn error_text(e: &definitions::Error) -> String {
    match &e.description {
        Some(d) => format!("{} ({d})", condition_name(&e.condition)),
        None => condition_name(&e.condition),
    }
}

/// IoT Hub's throttling condition (docs/azure-iot-hub.md section 5).
pub const THROTTLED_CONDITION: &str = "com.microsoft:device-container-throttled";

/// A refusal by its condition: IoT Hub's throttling condition is throttling, the rest refusal.
fn refusal(e: &definitions::Error) -> SessionError {
    if condition_name(&e.condition) == THROTTLED_CONDITION {
        SessionError::Throttled(error_text(e))
    } else {
        SessionError::Refused(error_text(e))
    }
}

fn open_error(e: OpenError) -> SessionError {
    match e {
        OpenError::Io(io) => SessionError::Io(io),
        OpenError::SaslError { code, .. } => {
            SessionError::Refused(format!("SASL outcome {code:?}"))
        }
        OpenError::NotImplemented(Some(why)) => {
            SessionError::Protocol(format!("AMQP open failed: not implemented: {why}"))
        }
        other => SessionError::Protocol(format!("AMQP open failed: {other}")),
    }
}

fn attach_error(e: SenderAttachError) -> SessionError {
    match e {
        SenderAttachError::RemoteClosedWithError(e) => refusal(&e),
        SenderAttachError::IncomingTargetIsNone => {
            SessionError::Refused("attach refused: the peer answered with no target".into())
        }
        SenderAttachError::SessionStopped(_) => SessionError::Closed,
        other => SessionError::Protocol(format!("AMQP attach failed: {other}")),
    }
}

fn send_error(e: SendError) -> SessionError {
    match e {
        SendError::Detached(fe2o3_amqp::link::DetachError::RemoteDetachedWithError(e)) => {
            refusal(&e)
        }
        SendError::Detached(d) => SessionError::Refused(format!("link detached: {d:?}")),
        other => SessionError::Protocol(format!("AMQP transfer failed: {other}")),
    }
}

/// What a settling outcome means to the load generator; non-accepted ones by condition.
fn outcome(o: AmqpOutcome) -> Outcome {
    match o {
        AmqpOutcome::Accepted(_) => Outcome::Accepted,
        AmqpOutcome::Rejected(r) => Outcome::Refused(match r.error {
            Some(e) => format!("rejected: {}", condition_name(&e.condition)),
            None => "rejected".to_owned(),
        }),
        AmqpOutcome::Released(_) => Outcome::Refused("released".to_owned()),
        AmqpOutcome::Modified(_) => Outcome::Refused("modified".to_owned()),
    }
}

/// The telemetry message as the IoT Hub SDKs encode it: message id, content type and encoding
/// in the properties, user properties as string application properties, one data section.
fn message(msg: &Telemetry, run_id: Option<&str>) -> Message<Data> {
    let mut props = Properties::builder().message_id(msg.message_id.clone());
    if let Some(ct) = msg.content_type {
        props = props.content_type(ct);
    }
    if let Some(ce) = msg.content_encoding {
        props = props.content_encoding(ce);
    }
    let mut app = ApplicationProperties::builder();
    if let Some(run) = run_id {
        app = app.insert("fleetbench-run", run);
    }
    for (k, v) in msg.properties {
        app = app.insert(*k, *v);
    }
    if let Some(us) = msg.sent_us {
        app = app.insert(super::stamp::SENT_PROPERTY, itoa::Buffer::new().format(us));
    }
    Message::builder()
        .properties(props.build())
        .application_properties(app.build())
        .data(Binary::from(msg.body.to_vec()))
        .build()
}

/// An open AMQP connection (OPEN exchanged), not yet attached.
pub struct AmqpConnection {
    connection: ConnectionHandle<()>,
    options: AmqpOptions,
    device_id: String,
}

impl fmt::Debug for AmqpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConnection")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

type Settlement = BoxFuture<'static, (u64, Result<AmqpOutcome, SendError>)>;

/// An attached AMQP sender session.
pub struct AmqpSession {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    sender: Sender,
    settled: bool,
    run_id: Option<std::sync::Arc<str>>,
    next_seq: u64,
    /// Settlements awaited; at most the plan's `max-inflight` at a time.
    pending: FuturesUnordered<Settlement>,
}

impl fmt::Debug for AmqpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSession")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

macro_rules! connection_builder {
    ($device_id:expr, $host:expr) => {
        Connection::builder()
            .container_id($device_id)
            .hostname($host)
            .max_frame_size(65_536u32)
            .channel_max(8_191u16)
    };
}

impl AmqpSession {
    /// Exchanges protocol headers (and SASL when the dialect uses it) and OPEN over `stream`.
    pub async fn open<S>(
        stream: S,
        options: AmqpOptions,
        device_id: &str,
        host: &str,
    ) -> Result<AmqpConnection, SessionError>
    where
        S: AsyncRead + AsyncWrite + fmt::Debug + Send + Unpin + 'static,
    {
        let connection = match options.sasl() {
            SaslMechanism::None => connection_builder!(device_id, host)
                .open_with_stream(stream)
                .await
                .map_err(open_error)?,
            SaslMechanism::Anonymous => {
                let stream = sasl::negotiate(stream, host, sasl::Mechanism::Anonymous).await?;
                connection_builder!(device_id, host)
                    .open_with_stream(stream)
                    .await
                    .map_err(open_error)?
            }
            SaslMechanism::External => {
                let stream = sasl::negotiate(stream, host, sasl::Mechanism::External).await?;
                connection_builder!(device_id, host)
                    .open_with_stream(stream)
                    .await
                    .map_err(open_error)?
            }
        };
        Ok(AmqpConnection {
            connection,
            options,
            device_id: device_id.to_owned(),
        })
    }

    /// Transfers one message. Returns its sequence number and whether it is already settled.
    pub async fn send(&mut self, msg: &Telemetry) -> Result<(u64, bool), SessionError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let sendable = Sendable::builder()
            .message(message(msg, self.run_id.as_deref()))
            .settled(self.settled)
            .build();
        match self.sender.send_batchable(sendable).await {
            Ok(fut) if !self.settled => {
                self.pending.push(Box::pin(async move { (seq, fut.await) }));
                Ok((seq, false))
            }
            Ok(_) => Ok((seq, true)),
            // Over the link's max-message-size: refused before it reaches the wire.
            Err(SendError::MessageSizeExceeded(e)) => {
                let refused = AmqpOutcome::Rejected(fe2o3_amqp::types::messaging::Rejected {
                    error: Some(definitions::Error::new(
                        definitions::LinkError::MessageSizeExceeded,
                        e.to_string(),
                        None,
                    )),
                });
                self.pending
                    .push(Box::pin(async move { (seq, Ok(refused)) }));
                Ok((seq, false))
            }
            Err(e) => Err(send_error(e)),
        }
    }

    /// Waits for the next settled delivery. Cancel-safe; pends while nothing is in flight.
    pub async fn next_ack(&mut self) -> Result<Ack, SessionError> {
        match self.pending.next().await {
            Some((seq, Ok(o))) => Ok(Ack {
                seq,
                outcome: outcome(o),
            }),
            Some((_, Err(e))) => Err(send_error(e)),
            None => std::future::pending().await,
        }
    }

    /// Detaches the link, ends the session and closes the connection; errors are ignored.
    pub async fn close(mut self) {
        let _ = self.sender.close().await;
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

/// Exchanges protocol headers, `sasl` and OPEN over `stream` as a device session does, for the
/// crate's other AMQP clients (the verifying receiver): the connection without a sender link.
pub async fn open_connection<S>(
    stream: S,
    sasl: SaslMechanism,
    container_id: &str,
    host: &str,
) -> Result<ConnectionHandle<()>, SessionError>
where
    S: AsyncRead + AsyncWrite + fmt::Debug + Send + Unpin + 'static,
{
    let options = AmqpOptions {
        dialect: AmqpDialect::Generic {
            address: String::new(),
            sasl,
        },
        settle: SettleMode::Unsettled,
        run_id: None,
    };
    Ok(AmqpSession::open(stream, options, container_id, host)
        .await?
        .connection)
}

impl AmqpConnection {
    /// BEGIN and the sender ATTACH to the dialect's target. A refused attach is
    /// [`SessionError::Refused`] with the AMQP condition; the connection is closed then.
    pub async fn attach(mut self) -> Result<AmqpSession, SessionError> {
        match self.begin_and_attach().await {
            Ok((session, sender)) => Ok(AmqpSession {
                connection: self.connection,
                session,
                sender,
                settled: self.options.settle == SettleMode::Settled,
                run_id: self.options.run_id.clone(),
                next_seq: 0,
                pending: FuturesUnordered::new(),
            }),
            Err(e) => {
                let _ = self.connection.close().await;
                Err(e)
            }
        }
    }

    async fn begin_and_attach(&mut self) -> Result<(SessionHandle<()>, Sender), SessionError> {
        let mut session = Session::builder()
            .begin(&mut self.connection)
            .await
            .map_err(|e| SessionError::Protocol(format!("AMQP begin failed: {e}")))?;
        let mode = match self.options.settle {
            SettleMode::Settled => SenderSettleMode::Settled,
            SettleMode::Unsettled => SenderSettleMode::Unsettled,
        };
        let mut builder = Sender::builder()
            .name(format!("link-snd-{}", self.device_id))
            .target(self.options.target(&self.device_id))
            .sender_settle_mode(mode);
        if let Some(p) = self.options.attach_properties() {
            builder = builder.properties(p);
        }
        match builder.attach(&mut session).await {
            Ok(sender) => Ok((session, sender)),
            Err(e) => {
                let _ = session.end().await;
                Err(attach_error(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::definitions::{AmqpError, LinkError};

    #[test]
    fn targets_follow_the_dialect() {
        let hub = AmqpOptions {
            dialect: AmqpDialect::IotHub {
                api_version: "2021-04-12".into(),
            },
            settle: SettleMode::Unsettled,
            run_id: None,
        };
        assert_eq!(hub.target("d1"), "/devices/d1/messages/events");
        assert!(hub.attach_properties().is_some());
        let generic = AmqpOptions {
            dialect: AmqpDialect::Generic {
                address: "/queue/{device_id}".into(),
                sasl: SaslMechanism::External,
            },
            settle: SettleMode::Unsettled,
            run_id: None,
        };
        assert_eq!(generic.target("d1"), "/queue/d1");
        assert!(generic.attach_properties().is_none());
    }

    #[test]
    fn conditions_are_named_by_their_symbols() {
        assert_eq!(
            condition_name(&AmqpError::UnauthorizedAccess.into()),
            "amqp:unauthorized-access"
        );
        assert_eq!(
            condition_name(&LinkError::MessageSizeExceeded.into()),
            "amqp:link:message-size-exceeded"
        );
    }

    #[test]
    fn iot_hubs_throttling_condition_is_throttling() {
        let throttled = definitions::Error::new(
            ErrorCondition::Custom(Symbol::from(THROTTLED_CONDITION)),
            "slow down".to_owned(),
            None,
        );
        assert_eq!(
            attach_error(SenderAttachError::RemoteClosedWithError(throttled.clone())).kind(),
            crate::metrics::FailureKind::Throttled
        );
        assert_eq!(
            send_error(SendError::Detached(
                fe2o3_amqp::link::DetachError::RemoteDetachedWithError(throttled)
            ))
            .kind(),
            crate::metrics::FailureKind::Throttled
        );
        let refused = definitions::Error::new(AmqpError::UnauthorizedAccess, None, None);
        assert_eq!(
            attach_error(SenderAttachError::RemoteClosedWithError(refused)).kind(),
            crate::metrics::FailureKind::Refused
        );
    }

    #[test]
    fn the_run_id_is_an_application_property() {
        let msg = Telemetry {
            message_id: "d1-0".into(),
            body: bytes::Bytes::from_static(b"{}"),
            content_type: None,
            content_encoding: None,
            properties: &[("temperatureAlert", "true")],
            sent_us: None,
        };
        let m = message(&msg, Some("00ff00ff00ff00ff"));
        let app = m.application_properties.unwrap();
        assert_eq!(
            app.0.get("fleetbench-run"),
            Some(&fe2o3_amqp::types::primitives::SimpleValue::String(
                "00ff00ff00ff00ff".into()
            ))
        );
        assert!(message(&msg, None)
            .application_properties
            .unwrap()
            .0
            .get("fleetbench-run")
            .is_none());
    }
}
