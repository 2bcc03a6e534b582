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
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The hub's runtime; `None` only once shut down (stop or drop).
    runtime: Option<Runtime>,
}

impl EmbeddedHub {
    /// Starts a hub whose server certificate comes from `chain`, on 127.0.0.1 with an ephemeral port.
    pub async fn start(chain: &CaChain, config: HubConfig) -> anyhow::Result<Self> {
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
        let bound = runtime.spawn(async {
            Ok::<_, anyhow::Error>((bind_loopback().await?, bind_loopback().await?))
        });
        let (listener, amqp_listener) = match bound.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(shut(runtime, e)),
            Err(e) => return Err(shut(runtime, e.into())),
        };
        let mqtt = listener.local_addr()?;
        let amqp = amqp_listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = runtime.spawn(hub::serve(
            hub.clone(),
            Listeners {
                amqp: Some(amqp_listener),
                mqtt: Some(listener),
            },
            stop.clone().cancelled_owned(),
        ));
        Ok(Self {
            hub,
            amqp,
            mqtt,
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
        let (mqtt, amqp) = (self.mqtt, self.amqp);
        let runtime = self
            .runtime
            .as_ref()
            .context("the embedded hub's runtime is shut down")?;
        let (mqtt, amqp) = runtime
            .spawn(
                async move { Ok::<_, anyhow::Error>((bind_at(mqtt).await?, bind_at(amqp).await?)) },
            )
            .await
            .context("binding the hub's ports failed")??;
        self.stop = CancellationToken::new();
        self.task = runtime.spawn(hub::serve(
            self.hub.clone(),
            Listeners {
                amqp: Some(amqp),
                mqtt: Some(mqtt),
            },
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
