//! The embedded hub of a run: fleetbench's own hub, started on loopback for the run, on its
//! own tokio runtime whose threads are named [`HUB_THREAD`], so that its CPU time can be read
//! apart from the generator's.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hub::{self, Hub, HubConfig, Listeners};
use crate::metrics::HUB_THREAD;
use crate::pki::{CaChain, KeyType};
use crate::scenario::ProtocolPlan;

/// Listen backlog for the embedded hub: connection storms need more than the default 128.
const BACKLOG: u32 = 4096;

/// An embedded hub serving on loopback.
#[derive(Debug)]
pub struct EmbeddedHub {
    /// The hub's state (registries, counters).
    pub hub: Arc<Hub>,
    /// AMQP address.
    pub amqp: SocketAddr,
    /// MQTT address.
    pub mqtt: SocketAddr,
    /// MQTT-over-WebSockets and AMQP-over-WebSockets addresses, when asked for.
    pub websocket: Option<WsAddrs>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The hub's runtime; `None` only once shut down (stop or drop).
    runtime: Option<Runtime>,
}

/// The embedded hub's WebSocket listeners' addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsAddrs {
    /// MQTT over WebSockets.
    pub mqtt: SocketAddr,
    /// AMQP over WebSockets.
    pub amqp: SocketAddr,
}

impl EmbeddedHub {
    /// Starts a hub whose server certificate comes from `chain`, on 127.0.0.1 with an ephemeral port.
    pub async fn start(chain: &CaChain, config: HubConfig) -> anyhow::Result<Self> {
        Self::start_with(chain, config, false).await
    }

    /// [`Self::start`], with WebSocket listeners for MQTT and AMQP too when `websocket`.
    pub async fn start_with(
        chain: &CaChain,
        config: HubConfig,
        websocket: bool,
    ) -> anyhow::Result<Self> {
        let identity = chain
            .mint_server(
                &["localhost".into(), "127.0.0.1".into()],
                KeyType::EcdsaP256,
            )
            .context("minting the hub's server certificate")?;
        let hub = Hub::new(config, &identity).context("configuring the hub's TLS")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(HUB_THREAD)
            .enable_all()
            .build()
            .context("starting the embedded hub's runtime")?;
        // Bound on the hub's runtime, so that their I/O is driven by its threads.
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let ws = websocket.then_some(WsAddrs {
            mqtt: loopback,
            amqp: loopback,
        });
        let bound = runtime.spawn(bind_all(loopback, loopback, ws));
        let (listeners, (mqtt, amqp, websocket)) = match bound.await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return Err(shut(runtime, e)),
            Err(e) => return Err(shut(runtime, e.into())),
        };
        let stop = CancellationToken::new();
        let task = runtime.spawn(hub::serve(
            hub.clone(),
            listeners,
            stop.clone().cancelled_owned(),
        ));
        Ok(Self {
            hub,
            amqp,
            mqtt,
            websocket,
            stop,
            task,
            runtime: Some(runtime),
        })
    }

    /// The address that serves `protocol`.
    pub fn addr_for(&self, protocol: &ProtocolPlan) -> SocketAddr {
        match protocol {
            ProtocolPlan::Amqp(_) => self.amqp,
            ProtocolPlan::Mqtt(_) => self.mqtt,
        }
    }

    /// The WebSocket address that serves `protocol`, if the hub listens for WebSockets.
    pub fn ws_addr_for(&self, protocol: &ProtocolPlan) -> Option<SocketAddr> {
        self.websocket.map(|w| match protocol {
            ProtocolPlan::Amqp(_) => w.amqp,
            ProtocolPlan::Mqtt(_) => w.mqtt,
        })
    }

    /// Stops the hub and waits for its connections to close.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
        // `Drop` shuts the runtime down without blocking this async context.
    }

    /// Takes the hub down (every connection dropped, listeners closed) and brings it back on
    /// the same ports with the same registries and counters: an outage.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        (&mut self.task).await.context("the hub task failed")?;
        let runtime = self
            .runtime
            .as_ref()
            .context("the embedded hub's runtime is shut down")?;
        let (listeners, _) = runtime
            .spawn(bind_all(self.mqtt, self.amqp, self.websocket))
            .await
            .context("binding the hub's ports failed")??;
        self.stop = CancellationToken::new();
        self.task = runtime.spawn(hub::serve(
            self.hub.clone(),
            listeners,
            self.stop.clone().cancelled_owned(),
        ));
        Ok(())
    }
}

impl Drop for EmbeddedHub {
    fn drop(&mut self) {
        self.stop.cancel();
        // Dropping a runtime blocks, which panics inside an async context: shut it down in
        // the background instead (its tasks were cancelled above).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Shuts `runtime` down without blocking and passes `e` on.
fn shut(runtime: Runtime, e: anyhow::Error) -> anyhow::Error {
    runtime.shutdown_background();
    e
}

/// Binds the hub's listeners at these addresses (port 0: an ephemeral port); returns them
/// with the addresses bound (MQTT, AMQP, WebSockets).
async fn bind_all(
    mqtt: SocketAddr,
    amqp: SocketAddr,
    ws: Option<WsAddrs>,
) -> anyhow::Result<(Listeners, (SocketAddr, SocketAddr, Option<WsAddrs>))> {
    let (mqtt, amqp) = (bind_at(mqtt).await?, bind_at(amqp).await?);
    let bound = (mqtt.local_addr()?, amqp.local_addr()?);
    let (mqtt_ws, amqp_ws, websocket) = match ws {
        Some(w) => {
            let (m, a) = (bind_at(w.mqtt).await?, bind_at(w.amqp).await?);
            let addrs = WsAddrs {
                mqtt: m.local_addr()?,
                amqp: a.local_addr()?,
            };
            (Some(m), Some(a), Some(addrs))
        }
        None => (None, None, None),
    };
    let listeners = Listeners {
        amqp: Some(amqp),
        mqtt: Some(mqtt),
        amqp_ws,
        mqtt_ws,
    };
    Ok((listeners, (bound.0, bound.1, websocket)))
}

/// Binds 127.0.0.1 on an ephemeral port with a deep backlog.
pub async fn bind_loopback() -> anyhow::Result<TcpListener> {
    bind_at(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Binds `addr` (reusing it even with connections in TIME_WAIT) with a deep backlog.
async fn bind_at(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("listening on {addr}"))
}
