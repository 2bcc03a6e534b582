//! The embedded hub: a real mutual-TLS server on loopback that behaves like IoT Hub's device
//! endpoints, with a CA registry, a device registry and counts of what it received.
//!
//! [`serve`] takes its listeners and a shutdown future from the caller (mini-redis style): it
//! never binds and never installs signal handlers, so tests bind port 0 and `main` wires Ctrl-C.
//! The hub depends only on `transport` and `pki`.

pub mod accounts;
mod amqp;
pub mod eventhubs;
pub mod handshake_cpu;
pub mod identity;
mod mqtt;
pub mod names;
pub mod registry;
pub mod state;
pub mod throttle;
mod ws;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pki::ServerIdentity;
use crate::transport;
use crate::transport::tls::{hub_server_config_for, HubTls, TlsConfigError};

pub use accounts::{Accounts, AccountsSnapshot, Protocol};
pub use identity::{HubIdentity, IdentityError, IdentitySpec};
pub use registry::{CaInfo, DeviceAuth, Refusal, Registry, RegistryError, SELF_SIGNED};
pub use state::{StateDir, StateError};

/// How much waiting the throttles queue before they refuse (IoT Hub: "the first minute or
/// two" at twice the rate; kept short so a local rehearsal shows all three stages).
const THROTTLE_QUEUE: Duration = Duration::from_secs(2);

/// IoT Hub's device-to-cloud message size limit.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// How the hub behaves.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Time allowed for a TLS handshake; a ClientHello followed by silence frees its slot then.
    pub handshake_timeout: Duration,
    /// Time allowed between the handshake and the MQTT CONNECT.
    pub connect_timeout: Duration,
    /// Largest message accepted (IoT Hub: 256 KiB).
    pub max_message_size: usize,
    /// Fault injection: CONNECTs that arrive in this window (offsets from the hub's start)
    /// get their CONNACK only when it ends, as a stalled hub would answer them.
    pub connack_stall: Option<(Duration, Duration)>,
    /// Fault injection: messages received in this window are counted but never acknowledged
    /// (no PUBACK), as a hub that lost its way would.
    pub puback_stall: Option<(Duration, Duration)>,
    /// IoT Hub's throttles for a tier and unit count, if the hub should apply them.
    pub throttle: Option<(throttle::Tier, u32)>,
    /// Log each refused session at warn level (rate-limited): `hub serve` does; the hub
    /// embedded in `run` leaves refusals to the run's report (and to `-vv`).
    pub log_refusals: bool,
    /// The built-in Event Hubs-compatible endpoint on the AMQP listener.
    pub eventhubs: eventhubs::EventHubsConfig,
    /// The crypto provider and the key-exchange groups offered.
    pub tls: HubTls,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_message_size: MAX_MESSAGE_SIZE,
            connack_stall: None,
            puback_stall: None,
            throttle: None,
            log_refusals: false,
            eventhubs: eventhubs::EventHubsConfig::default(),
            tls: HubTls::default(),
        }
    }
}

/// Counts of what the hub saw.
#[derive(Debug, Default)]
pub struct HubStats {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: AtomicU64,
    /// Sessions authenticated and accepted.
    pub sessions: AtomicU64,
    /// Sessions open now.
    pub active: AtomicU64,
    /// Messages received and counted (acknowledged after counting).
    pub messages: AtomicU64,
    /// Connections closed for a protocol violation (QoS 2, foreign topic, bad packet, oversize).
    pub violations: AtomicU64,
    /// Older connections dropped because the same device connected again.
    pub taken_over: AtomicU64,
    /// MQTT sessions the device ended with DISCONNECT.
    pub disconnects: AtomicU64,
    /// Requests the throttles delayed (traffic shaping).
    pub throttle_delays: AtomicU64,
    /// Requests the throttles refused (disconnect or throttled rejection).
    pub throttle_refusals: AtomicU64,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Received, accepted and refused by protocol, CA and reason.
    pub accounts: Accounts,
    /// CPU per completed TLS handshake, full and resumed apart.
    pub handshake_cpu: handshake_cpu::HandshakeCpu,
    /// Woken whenever a message or a DISCONNECT is counted, for callers that wait for a count.
    counted: tokio::sync::Notify,
}

impl HubStats {
    /// Counts one received message and wakes waiters.
    pub(crate) fn count_message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.counted.notify_waiters();
    }

    /// Counts one DISCONNECT and wakes waiters.
    pub(crate) fn count_disconnect(&self) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
        self.counted.notify_waiters();
    }

    /// Waits until the hub has counted at least `n` messages.
    pub async fn messages_at_least(&self, n: u64) {
        self.at_least(&self.messages, n).await;
    }

    /// Waits until the hub has counted at least `n` DISCONNECTs.
    pub async fn disconnects_at_least(&self, n: u64) {
        self.at_least(&self.disconnects, n).await;
    }

    async fn at_least(&self, counter: &AtomicU64, n: u64) {
        loop {
            let woken = self.counted.notified();
            if counter.load(Ordering::Relaxed) >= n {
                return;
            }
            woken.await;
        }
    }

    fn refuse(&self, protocol: Protocol, device: &str, r: &Refusal) {
        *self.refusals.lock().entry(r.name()).or_default() += 1;
        self.accounts.refuse(protocol, device, r);
    }

    /// Counts one accepted session.
    fn accept(&self, protocol: Protocol) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        self.accounts.accept(protocol);
    }

    /// The live metrics: [`Accounts`] and the sessions open now, in OpenMetrics text.
    pub fn openmetrics(&self) -> Vec<u8> {
        let mut text = Vec::with_capacity(2048);
        // Writing to a Vec cannot fail.
        let _ = self
            .accounts
            .snapshot()
            .write_openmetrics(&mut text, self.active.load(Ordering::Relaxed));
        text.extend_from_slice(b"# EOF\n");
        text
    }

    /// Refusals by reason.
    pub fn refusals(&self) -> Vec<(String, u64)> {
        self.refusals
            .lock()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect()
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> HubSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HubSnapshot {
            connections: l(&self.connections),
            tls_failures: l(&self.tls_failures),
            sessions: l(&self.sessions),
            active: l(&self.active),
            messages: l(&self.messages),
            violations: l(&self.violations),
            taken_over: l(&self.taken_over),
            disconnects: l(&self.disconnects),
            throttle_delays: l(&self.throttle_delays),
            throttle_refusals: l(&self.throttle_refusals),
            refusals: self.refusals(),
        }
    }
}

/// A copy of [`HubStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSnapshot {
    /// See [`HubStats::connections`].
    pub connections: u64,
    /// See [`HubStats::tls_failures`].
    pub tls_failures: u64,
    /// See [`HubStats::sessions`].
    pub sessions: u64,
    /// See [`HubStats::active`].
    pub active: u64,
    /// See [`HubStats::messages`].
    pub messages: u64,
    /// See [`HubStats::violations`].
    pub violations: u64,
    /// See [`HubStats::taken_over`].
    pub taken_over: u64,
    /// See [`HubStats::disconnects`].
    pub disconnects: u64,
    /// See [`HubStats::throttle_delays`].
    pub throttle_delays: u64,
    /// See [`HubStats::throttle_refusals`].
    pub throttle_refusals: u64,
    /// Refusals by reason.
    pub refusals: Vec<(String, u64)>,
}

/// Shared state of a running hub.
pub struct Hub {
    /// CA and device registries.
    pub registry: Registry,
    /// What it has seen.
    pub stats: HubStats,
    /// The built-in Event Hubs-compatible endpoint: every accepted message, by partition.
    pub eventhubs: eventhubs::EventHubs,
    config: HubConfig,
    tls: TlsAcceptor,
    next_conn: AtomicU64,
    started: tokio::time::Instant,
    throttles: Option<throttle::Throttles>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with an empty registry serving `identity`.
    pub fn new(config: HubConfig, identity: &ServerIdentity) -> Result<Arc<Self>, TlsConfigError> {
        let throttles = config
            .throttle
            .map(|(tier, units)| throttle::Throttles::new(tier, units, THROTTLE_QUEUE));
        let stats = HubStats::default();
        stats.accounts.log_refusals(config.log_refusals);
        let tls = TlsAcceptor::from(hub_server_config_for(identity, &config.tls)?);
        Ok(Arc::new(Self {
            registry: Registry::new(),
            stats,
            eventhubs: eventhubs::EventHubs::new(&config.eventhubs),
            config,
            tls,
            next_conn: AtomicU64::new(1),
            started: tokio::time::Instant::now(),
            throttles,
        }))
    }

    /// When a CONNACK for a CONNECT received now may be sent (fault injection), if held back.
    pub(crate) fn connack_hold(&self) -> Option<tokio::time::Instant> {
        self.in_window(self.config.connack_stall)
    }

    /// The connect throttle's decision for a session starting now.
    pub(crate) fn admit_connect(&self) -> throttle::Admission {
        self.admit(|t| &t.connects)
    }

    /// The send throttle's decision for a message received now.
    pub(crate) fn admit_send(&self) -> throttle::Admission {
        self.admit(|t| &t.sends)
    }

    fn admit(
        &self,
        bucket: impl Fn(&throttle::Throttles) -> &throttle::Bucket,
    ) -> throttle::Admission {
        let Some(t) = &self.throttles else {
            return throttle::Admission::Now;
        };
        let decision = bucket(t).admit(tokio::time::Instant::now());
        match decision {
            throttle::Admission::Now => {}
            throttle::Admission::After(_) => {
                self.stats.throttle_delays.fetch_add(1, Ordering::Relaxed);
            }
            throttle::Admission::Refused => {
                self.stats.throttle_refusals.fetch_add(1, Ordering::Relaxed);
            }
        }
        decision
    }

    /// Whether a PUBACK for a message received now is withheld (fault injection).
    pub(crate) fn puback_withheld(&self) -> bool {
        self.in_window(self.config.puback_stall).is_some()
    }

    fn in_window(&self, window: Option<(Duration, Duration)>) -> Option<tokio::time::Instant> {
        let (from, len) = window?;
        let (start, end) = (self.started + from, self.started + from + len);
        let now = tokio::time::Instant::now();
        (now >= start && now < end).then_some(end)
    }

    /// The hub's behaviour settings.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }
}

/// The hub's listening sockets; bound by the caller.
#[derive(Debug, Default)]
pub struct Listeners {
    /// AMQP 1.0 over TLS (IoT Hub: 5671).
    pub amqp: Option<TcpListener>,
    /// MQTT over TLS (IoT Hub: 8883).
    pub mqtt: Option<TcpListener>,
    /// AMQP over WebSockets inside TLS (IoT Hub: 443, `/$iothub/websocket`, `AMQPWSB10`).
    pub amqp_ws: Option<TcpListener>,
    /// MQTT over WebSockets inside TLS (IoT Hub: 443, `/$iothub/websocket`, `mqtt`).
    pub mqtt_ws: Option<TcpListener>,
}

/// Serves until `shutdown` completes, then closes every connection and returns.
pub async fn serve(hub: Arc<Hub>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    for (listener, wire, websocket) in [
        (listeners.amqp, Protocol::Amqp, false),
        (listeners.mqtt, Protocol::Mqtt, false),
        (listeners.amqp_ws, Protocol::Amqp, true),
        (listeners.mqtt_ws, Protocol::Mqtt, true),
    ] {
        if let Some(listener) = listener {
            tracker.spawn(accept_loop(
                hub.clone(),
                listener,
                (wire, websocket),
                stop.clone(),
                tracker.clone(),
            ));
        }
    }
    shutdown.await;
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

async fn accept_loop(
    hub: Arc<Hub>,
    listener: TcpListener,
    (wire, websocket): (Protocol, bool),
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let mut backoff = Duration::from_millis(1);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                backoff = Duration::from_millis(1);
                hub.stats.connections.fetch_add(1, Ordering::Relaxed);
                let wire = (wire, websocket);
                tracker.spawn(connection(hub.clone(), tcp, wire, stop.clone()));
            }
            Err(e) => {
                // Out of file descriptors or similar: wait a little rather than spin.
                tracing::warn!(error = %e, "hub accept failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// The TLS handshake, bounded by the hub's handshake timeout; a failure is counted while the
/// connection is still open, so a peer that sees it closed can rely on the hub's counts (its
/// metrics, its summary) including it.
async fn handshake(
    hub: &Hub,
    tcp: TcpStream,
    wire: Protocol,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accept = tokio::time::timeout(
        hub.config.handshake_timeout,
        transport::cpu_clock::clocked(hub.tls.accept(tcp).into_fallible()),
    );
    tokio::pin!(accept);
    // Polled by reference: `accept` (and the stream in it) outlives the counting below.
    let failed = match (&mut accept).await {
        Ok((Ok(tls), cpu)) => {
            let kind = tls.get_ref().1.handshake_kind();
            let resumed = kind == Some(rustls::HandshakeKind::Resumed);
            hub.stats.handshake_cpu.record(resumed, cpu);
            return Some(tls);
        }
        Ok((Err((_, tcp)), _)) => Some(tcp),
        Err(_) => None,
    };
    hub.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
    let why = "TLS handshake failed or timed out";
    hub.stats
        .accounts
        .refuse_for(wire, "", "tls_handshake", &why);
    drop(failed);
    None
}

async fn connection(
    hub: Arc<Hub>,
    tcp: TcpStream,
    (wire, websocket): (Protocol, bool),
    stop: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let tls = tokio::select! {
        () = stop.cancelled() => return,
        tls = handshake(&hub, tcp, wire) => match tls {
            Some(tls) => tls,
            None => return,
        },
    };
    let conn = hub.next_conn.fetch_add(1, Ordering::Relaxed);
    // The chain the device presented (leaf first); judged at CONNECT or attach, not here.
    let chain: Vec<rustls::pki_types::CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    // The WebSocket upgrade, a step of its own after the TLS handshake.
    let tls = if websocket {
        match ws::upgrade(&hub, tls, wire, &stop).await {
            Some(s) => s,
            None => return,
        }
    } else {
        transport::MaybeWs::Plain(tls)
    };
    match wire {
        Protocol::Amqp => amqp::session(hub, tls, chain, conn, stop).await,
        Protocol::Mqtt => mqtt::session(&hub, tls, chain, conn, stop).await,
    }
}
