//! The AMQP 1.0 verifying receiver on a generic broker: receiver links on the scenario's
//! addresses (RabbitMQ queues), over mutual TLS with the receiver's own certificate and the
//! device path's SASL (EXTERNAL for RabbitMQ), opened with `protocol::amqp`'s helpers.
//!
//! [`AmqpReceiver::open`] connects and attaches every link, so the caller knows the receiver is
//! ready before the load starts; [`AmqpReceiver::run`] then turns each delivery into a
//! [`Received`] until told to stop or its time is up. The link loop and the conversion are
//! shared with the Event Hubs receiver ([`super::eventhubs`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Receiver, Session};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

mod received;

use super::Received;
use crate::protocol::amqp::{open_connection, SaslMechanism};
use crate::protocol::SessionError;
use crate::transport::{tcp_connect, tls_handshake};
pub(super) use received::to_received;

/// Link credit per receiver link unless told otherwise: enough that a broker never waits for a
/// flow frame at tens of thousands of messages per second.
pub const DEFAULT_CREDIT: u32 = 1_000;

/// Time a link is given to detach and the connection to close after the receiver stops.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Where and how the generic receiver connects.
#[derive(Debug, Clone)]
pub struct AmqpReceiverOptions {
    /// The broker's TCP address.
    pub addr: SocketAddr,
    /// Name sent as SNI and checked against the broker's certificate; also the AMQP hostname.
    pub server_name: String,
    /// The receiver's TLS client configuration: its own certificate chain (for EXTERNAL).
    pub tls: Arc<rustls::ClientConfig>,
    /// SASL mechanism, as the devices' `[protocol] sasl`.
    pub sasl: SaslMechanism,
    /// AMQP container id of the receiving connection.
    pub container_id: String,
    /// Source addresses, one receiver link each, e.g. `/queue/telemetry`.
    pub addresses: Vec<String>,
    /// Link credit per link (replenished as messages arrive).
    pub credit: u32,
    /// Time allowed to connect, open and attach every link.
    pub timeout: Duration,
}

/// Why a receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// TCP connect failed.
    #[error("verifying receiver: connecting to {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The TLS handshake failed.
    #[error("verifying receiver: TLS handshake with {addr}: {source}")]
    Tls {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Header exchange, SASL or OPEN failed.
    #[error("verifying receiver: opening the AMQP connection to {addr}: {source}")]
    Open {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: SessionError,
    },
    /// BEGIN failed.
    #[error("verifying receiver: AMQP begin failed: {0}")]
    Begin(String),
    /// A receiver link was refused.
    #[error("verifying receiver: attaching a receiver link to {address:?}: {why}")]
    Attach {
        /// The source address.
        address: String,
        /// Why.
        why: String,
    },
    /// Setting up took longer than allowed.
    #[error("verifying receiver: {what} did not finish within {after:?}")]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The Event Hubs endpoint refused or misunderstood a request.
    #[error("verifying receiver: {0}")]
    EventHubs(String),
}

/// What one link delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    /// The link's source address.
    pub address: String,
    /// Messages received on it.
    pub received: u64,
    /// Why it stopped before it was told to, if it did (a detach, the connection lost).
    pub ended: Option<String>,
}

/// What a receiver delivered, link by link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveReport {
    /// One entry per link, in the order they were attached.
    pub links: Vec<LinkReport>,
}

impl ReceiveReport {
    /// Messages received on every link.
    pub fn received(&self) -> u64 {
        self.links.iter().map(|l| l.received).sum()
    }
}

/// An open connection with its receiver links attached.
pub struct AmqpReceiver {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    links: Vec<(String, Receiver)>,
}

impl fmt::Debug for AmqpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses: Vec<&str> = self.links.iter().map(|(a, _)| a.as_str()).collect();
        f.debug_struct("AmqpReceiver")
            .field("links", &addresses)
            .finish_non_exhaustive()
    }
}

impl AmqpReceiver {
    /// Connects, opens and attaches a receiver link on every address.
    pub async fn open(options: &AmqpReceiverOptions) -> Result<Self, ReceiverError> {
        let opening = async {
            let stream = connect(options.addr, &options.server_name, &options.tls).await?;
            let connection = open_connection(
                stream,
                options.sasl,
                &options.container_id,
                &options.server_name,
            )
            .await
            .map_err(|source| ReceiverError::Open {
                addr: options.addr,
                source,
            })?;
            let mut receiver = Self::begin(connection).await?;
            for address in &options.addresses {
                receiver
                    .attach(address, options.credit, Vec::new(), None)
                    .await?;
            }
            Ok(receiver)
        };
        tokio::time::timeout(options.timeout, opening)
            .await
            .map_err(|_| ReceiverError::Timeout {
                what: "connecting and attaching",
                after: options.timeout,
            })?
    }

    /// BEGIN on an open connection, no links yet.
    pub(super) async fn begin(mut connection: ConnectionHandle<()>) -> Result<Self, ReceiverError> {
        match Session::begin(&mut connection).await {
            Ok(session) => Ok(Self {
                connection,
                session,
                links: Vec::new(),
            }),
            Err(e) => {
                let _ = connection.close().await;
                Err(ReceiverError::Begin(e.to_string()))
            }
        }
    }

    /// The session, for request/response links on the same connection.
    pub(super) fn session(&mut self) -> &mut SessionHandle<()> {
        &mut self.session
    }

    /// Attaches a receiver link on `address` with `credit`, `filters` on its source (name and
    /// described value) and, if given, a sender settle mode to ask for.
    pub(super) async fn attach(
        &mut self,
        address: &str,
        credit: u32,
        filters: Vec<(String, Value)>,
        settle: Option<fe2o3_amqp::types::definitions::SenderSettleMode>,
    ) -> Result<(), ReceiverError> {
        let mut source = fe2o3_amqp::types::messaging::Source::builder().address(address);
        for (name, value) in filters {
            source = source.add_to_filter_using_legacy_format(name, value);
        }
        let n = self.links.len();
        let mut builder = Receiver::builder()
            .name(format!("fleetbench-verify-{n}"))
            .source(source.build())
            .target(format!("fleetbench-verify-{n}"))
            .credit_mode(fe2o3_amqp::link::receiver::CreditMode::Auto(credit.max(1)))
            .auto_accept(true);
        if let Some(mode) = settle {
            builder = builder.sender_settle_mode(mode);
        }
        let link = builder
            .attach(&mut self.session)
            .await
            .map_err(|e| ReceiverError::Attach {
                address: address.to_owned(),
                why: match e {
                    fe2o3_amqp::link::ReceiverAttachError::IncomingSourceIsNone => {
                        "refused: the peer answered with no source".to_owned()
                    }
                    e => e.to_string(),
                },
            })?;
        self.links.push((address.to_owned(), link));
        Ok(())
    }

    /// Receives on every link until `stop` is cancelled, `max` has passed or `out` is closed,
    /// then detaches the links and closes the connection.
    pub async fn run(
        mut self,
        out: mpsc::Sender<Received>,
        stop: CancellationToken,
        max: Duration,
    ) -> ReceiveReport {
        let until = stop.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (address, link)) in std::mem::take(&mut self.links).into_iter().enumerate() {
            tasks.spawn(drain(i, address, link, out.clone(), until.clone()));
        }
        drop(out);
        let deadline = tokio::time::sleep(max);
        tokio::pin!(deadline);
        let mut links = Vec::new();
        loop {
            tokio::select! {
                () = &mut deadline, if !until.is_cancelled() => until.cancel(),
                done = tasks.join_next() => match done {
                    Some(Ok(report)) => links.push(report),
                    // A link task panicked or was aborted: nothing more it can report.
                    Some(Err(_)) => {}
                    None => break,
                },
            }
        }
        links.sort_by_key(|(i, _)| *i);
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            let _ = self.session.end().await;
            let _ = self.connection.close().await;
        })
        .await;
        ReceiveReport {
            links: links.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

/// TCP connect and the TLS handshake to `addr`, checking the certificate against `server_name`.
pub(super) async fn connect(
    addr: SocketAddr,
    server_name: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, ReceiverError> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| ReceiverError::Tls {
        addr,
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    let tcp = tcp_connect(addr, None)
        .await
        .map_err(|source| ReceiverError::Connect { addr, source })?;
    let (stream, _) = tls_handshake(tls.clone(), name, tcp)
        .await
        .map_err(|source| ReceiverError::Tls { addr, source })?;
    Ok(stream)
}

/// One link's loop: each delivery becomes a [`Received`] (accepted by the link as it arrives).
async fn drain(
    index: usize,
    address: String,
    mut link: Receiver,
    out: mpsc::Sender<Received>,
    stop: CancellationToken,
) -> (usize, LinkReport) {
    let mut received = 0;
    let mut ended = None;
    loop {
        let delivery = tokio::select! {
            () = stop.cancelled() => break,
            d = link.recv::<Body<Value>>() => d,
        };
        match delivery {
            Ok(d) => {
                if out.send(to_received(&d)).await.is_err() {
                    break;
                }
                received += 1;
            }
            Err(e) => {
                ended = Some(e.to_string());
                break;
            }
        }
    }
    if ended.is_none() {
        let _ = tokio::time::timeout(CLOSE_GRACE, link.close()).await;
    }
    let report = LinkReport {
        address,
        received,
        ended,
    };
    (index, report)
}
