//! Verifying receivers: fleetbench's own receiving sessions, opened before the load starts,
//! that read every message the devices send and prove delivery rather than acknowledgement.
//! Receivers hand each message to the accounting as a [`Received`]; the accounting
//! ([`account`]) matches them against what the load sent and had acknowledged.
//!
//! Dependencies: command -> verify -> protocol -> transport; verify and hub never meet, and
//! load does not know verify exists (it reports what it sent in `FleetResult::sends`).

pub mod account;
pub mod amqp;
pub mod eventhubs;
pub mod mqtt;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Delivery, Recorder};
use crate::protocol::{QoS, SaslMechanism};
use crate::scenario::{VerifyKind, VerifyPlan};
use crate::transport::Endpoint;
pub use account::{Account, Sent};

/// Messages buffered between the receivers and the accounting.
const CHANNEL: usize = 4096;

/// One message as a verifying receiver got it, before it is matched to what was sent.
#[derive(Debug, Clone)]
pub struct Received {
    /// The sending device, when the transport says (IoT Hub's `iothub-connection-device-id`
    /// annotation, an MQTT topic level); otherwise taken from the stamp.
    pub device: Option<String>,
    /// The message id (AMQP message-id; IoT Hub `$.mid`), when there is one.
    pub message_id: Option<String>,
    /// Application properties (AMQP application-properties; MQTT 5 user properties), as strings.
    pub properties: Vec<(String, String)>,
    /// The body bytes.
    pub body: bytes::Bytes,
    /// When the receiver got it.
    pub at: std::time::Instant,
}

/// Why a receiver could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The broker refused the connection or the subscription.
    #[error("refused: {0}")]
    Refused(String),
    /// A transport error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Connecting and subscribing took too long.
    #[error("no subscription within {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection.
    #[error("connection closed by the broker")]
    Closed,
    /// This kind of receiver is not part of this build.
    #[error("verify.kind {0:?} is not supported")]
    Unsupported(&'static str),
}

/// The running receivers and their accounting.
#[derive(Debug)]
pub struct Verifier {
    description: String,
    strict_receiver: bool,
    settle: Duration,
    stop: CancellationToken,
    receivers: Vec<JoinHandle<Result<u64, VerifyError>>>,
    /// Taken by [`Verifier::finish`].
    expect: Option<oneshot::Sender<(Vec<Sent>, std::time::Instant)>>,
    account: JoinHandle<(Account, std::time::Instant)>,
}

/// What a receiver needs besides its plan: where the devices connect and how.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The devices' endpoint (MQTT and AMQP receivers connect there too).
    pub endpoint: Endpoint,
    /// The receiver's TLS: its own identity (MQTT, AMQP with EXTERNAL).
    pub tls: Arc<rustls::ClientConfig>,
    /// TLS without a client certificate, verifying the server as the devices do (Event Hubs).
    pub tls_anonymous: Arc<rustls::ClientConfig>,
    /// The devices' SASL mechanism (AMQP receivers use the same).
    pub sasl: SaslMechanism,
    /// The Event Hubs-compatible endpoint's connection string, when the kind needs one.
    pub connection_string: Option<String>,
}

/// Longest a receiver reads if nobody stops it: [`Verifier::finish`] (or dropping the
/// [`Verifier`]) stops it when the run ends, which the run's own hard bound limits.
const RECEIVER_MAX: Duration = Duration::from_secs(24 * 3600);

/// Receiver tasks, each returning how many messages it read.
type Tasks = Vec<JoinHandle<Result<u64, VerifyError>>>;

/// Connects every receiver of `plan` (each confirmed subscribed or attached) and starts
/// reading. `run` is the run id the messages carry.
pub async fn start(
    plan: &VerifyPlan,
    setup: &Setup,
    run: u64,
    recorder: Arc<Recorder>,
) -> Result<Verifier, VerifyError> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let stop = CancellationToken::new();
    let (description, strict_receiver, receivers) = match &plan.kind {
        VerifyKind::Mqtt {
            topic,
            qos,
            group,
            receivers,
        } => {
            let sub = mqtt::Subscription {
                filter: match group {
                    Some(g) => format!("$share/{g}/{topic}"),
                    None => topic.clone(),
                },
                qos: *qos,
            };
            let mut connected = Vec::new();
            for k in 0..*receivers {
                let id = if *receivers > 1 {
                    format!("{}-{k}", plan.client_id)
                } else {
                    plan.client_id.clone()
                };
                connected.push(
                    mqtt::MqttReceiver::connect(&setup.endpoint, setup.tls.clone(), &id, &sub)
                        .await?,
                );
            }
            let tasks: Tasks = connected
                .into_iter()
                .map(|r| tokio::spawn(r.run(tx.clone(), stop.clone())))
                .collect();
            let n = *receivers;
            let description = format!(
                "mqtt {} at QoS {}, {n} receiver{}",
                sub.filter,
                *qos as u8,
                if n == 1 { "" } else { "s" }
            );
            (description, *qos != QoS::AtMostOnce, tasks)
        }
        VerifyKind::Amqp { addresses } => {
            let options = amqp::AmqpReceiverOptions {
                addr: setup.endpoint.addr,
                server_name: setup.endpoint.host.clone(),
                tls: setup.tls.clone(),
                sasl: setup.sasl,
                container_id: plan.client_id.clone(),
                addresses: addresses.clone(),
                credit: amqp::DEFAULT_CREDIT,
                timeout: OPEN_TIMEOUT,
            };
            let receiver = amqp::AmqpReceiver::open(&options)
                .await
                .map_err(|e| VerifyError::Refused(e.to_string()))?;
            let task = tokio::spawn(links(receiver.run(tx.clone(), stop.clone(), RECEIVER_MAX)));
            let description = format!("amqp links on {}", addresses.join(", "));
            (description, true, vec![task])
        }
        VerifyKind::EventHubs { consumer_group, .. } => {
            let text = setup.connection_string.as_deref().unwrap_or_default();
            let connection = eventhubs::ConnectionString::parse(text)
                .map_err(|e| VerifyError::Refused(e.to_string()))?;
            let entity = connection.entity.clone();
            let options = eventhubs::EventHubsOptions {
                connection,
                addr: None,
                tls: setup.tls_anonymous.clone(),
                consumer_group: consumer_group.clone(),
                from: std::time::SystemTime::now(),
                credit: amqp::DEFAULT_CREDIT,
                timeout: OPEN_TIMEOUT,
                token_lifetime: RECEIVER_MAX,
                connections: 2,
            };
            let receiver = eventhubs::EventHubsReceiver::open(&options)
                .await
                .map_err(|e| VerifyError::Refused(e.to_string()))?;
            let partitions = receiver.partitions().len();
            let task = tokio::spawn(links(receiver.run(tx.clone(), stop.clone(), RECEIVER_MAX)));
            let description = format!(
                "event hubs {entity}, consumer group {consumer_group}, {partitions} partitions"
            );
            (description, true, vec![task])
        }
    };
    drop(tx);
    let (expect, expected) = oneshot::channel();
    let account = tokio::spawn(consume(rx, Account::new(run, recorder), expected));
    Ok(Verifier {
        description,
        strict_receiver,
        settle: plan.settle,
        stop,
        receivers,
        expect: Some(expect),
        account,
    })
}

/// Time allowed to connect, open and attach an AMQP or Event Hubs receiver.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// An AMQP receiver's links as one task result: the messages read, or why a link ended early.
async fn links(
    report: impl std::future::Future<Output = amqp::ReceiveReport>,
) -> Result<u64, VerifyError> {
    let report = report.await;
    match report.links.iter().find_map(|l| {
        l.ended
            .as_ref()
            .map(|why| format!("link {} ended: {why}", l.address))
    }) {
        Some(why) => Err(VerifyError::Protocol(why)),
        None => Ok(report.received()),
    }
}

/// Reads messages into the accounting until, once told what was sent, every acknowledged
/// message has arrived or the settle time is over. Returns it and when reading ended.
async fn consume(
    mut rx: mpsc::Receiver<Received>,
    mut account: Account,
    mut expected: oneshot::Receiver<(Vec<Sent>, std::time::Instant)>,
) -> (Account, std::time::Instant) {
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let until =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            biased;
            e = &mut expected, if deadline.is_none() => {
                let Ok((sents, until)) = e else { break };
                account.expect(sents);
                deadline = Some(until.into());
            }
            r = rx.recv() => match r {
                Some(r) => account.take(&r),
                None if deadline.is_some() => break,
                // Every receiver ended before the load did: wait to be told what was sent.
                None => match (&mut expected).await {
                    Ok((sents, _)) => {
                        account.expect(sents);
                        break;
                    }
                    Err(_) => break,
                },
            },
            () = tokio::time::sleep_until(until), if deadline.is_some() => break,
        }
        if deadline.is_some() && account.complete() {
            break;
        }
    }
    (account, std::time::Instant::now())
}

impl Verifier {
    /// The load is over: reads on until every acknowledged message of `sents` has arrived or
    /// the settle time passed, then stops the receivers and accounts. `devices_strict`: the
    /// devices sent at least once (QoS >= 1, unsettled AMQP).
    pub async fn finish(mut self, sents: Vec<Sent>, devices_strict: bool) -> Delivery {
        let ended = std::time::Instant::now();
        if let Some(expect) = self.expect.take() {
            let _ = expect.send((sents, ended + self.settle));
        }
        let description = std::mem::take(&mut self.description);
        let (account, done) = match (&mut self.account).await {
            Ok(a) => a,
            Err(e) => {
                return Delivery {
                    receiver: description,
                    errors: vec![format!("the accounting failed: {e}")],
                    ..Delivery::default()
                };
            }
        };
        self.stop.cancel();
        let mut errors = Vec::new();
        for r in std::mem::take(&mut self.receivers) {
            match r.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => errors.push(format!("receiver stopped: {e}")),
                Err(e) => errors.push(format!("receiver failed: {e}")),
            }
        }
        let strict = devices_strict && self.strict_receiver;
        let mut d = account.finish(description, strict, done - ended);
        d.errors = errors;
        d
    }
}

impl Drop for Verifier {
    /// A run that fails before [`Verifier::finish`] leaves no receiver behind.
    fn drop(&mut self) {
        self.stop.cancel();
        self.account.abort();
    }
}
