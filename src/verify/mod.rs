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
use crate::protocol::QoS;
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

/// Connects every receiver of `plan` (each confirmed subscribed) and starts reading. `tls` is
/// the receiver's own identity; `run` the run id the messages carry.
pub async fn start(
    plan: &VerifyPlan,
    endpoint: &Endpoint,
    tls: Arc<rustls::ClientConfig>,
    run: u64,
    recorder: Arc<Recorder>,
) -> Result<Verifier, VerifyError> {
    let VerifyKind::Mqtt {
        topic,
        qos,
        group,
        receivers,
    } = &plan.kind
    else {
        return Err(VerifyError::Unsupported(match plan.kind {
            VerifyKind::Amqp { .. } => "amqp",
            _ => "eventhubs",
        }));
    };
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
        connected.push(mqtt::MqttReceiver::connect(endpoint, tls.clone(), &id, &sub).await?);
    }
    let (tx, rx) = mpsc::channel(CHANNEL);
    let stop = CancellationToken::new();
    let receivers = connected
        .into_iter()
        .map(|r| tokio::spawn(r.run(tx.clone(), stop.clone())))
        .collect();
    let (expect, expected) = oneshot::channel();
    let account = tokio::spawn(consume(rx, Account::new(run, recorder), expected));
    let n = plan_receivers(plan);
    Ok(Verifier {
        description: format!(
            "mqtt {} at QoS {}, {n} receiver{}",
            sub.filter,
            *qos as u8,
            if n == 1 { "" } else { "s" }
        ),
        strict_receiver: *qos != QoS::AtMostOnce,
        settle: plan.settle,
        stop,
        receivers,
        expect: Some(expect),
        account,
    })
}

fn plan_receivers(plan: &VerifyPlan) -> u32 {
    match plan.kind {
        VerifyKind::Mqtt { receivers, .. } => receivers,
        _ => 1,
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
