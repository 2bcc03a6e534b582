//! A registered device's own AMQP telemetry link to the embedded hub, for tests that drive fe2o3
//! directly (what fleetbench's sessions do, without fleetbench around it).

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::{Connection, Sender, Session};
use fleetbench::command::run::EmbeddedHub;
use fleetbench::pki::{CaChain, KeyType, Validity};
use fleetbench::transport::{self, ClientTls, ServerVerification, TlsVersion};
use tokio::io::{AsyncRead, AsyncWrite};

/// An attached sender with its session and connection.
pub struct Link {
    pub connection: ConnectionHandle<()>,
    pub session: SessionHandle<()>,
    pub sender: Sender,
}

/// Registers `id` (CA-signed by `ca`) with `hub` and opens its telemetry link over `io`, a
/// stream to the hub's AMQP listener: TLS 1.3 with the device's certificate, then open (as
/// `container`), begin, and attach to `/devices/{id}/messages/events`.
pub async fn telemetry<IO>(
    hub: &EmbeddedHub,
    ca: &CaChain,
    id: &str,
    container: &str,
    io: IO,
) -> Link
where
    IO: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    hub.hub.registry.register_ca_signed([id.to_owned()]);
    let dev = ca
        .mint_device(id, KeyType::EcdsaP256, Validity::default())
        .unwrap();
    let roots = ClientTls::roots(std::slice::from_ref(ca.root().cert())).unwrap();
    let tls = ClientTls::new(TlsVersion::Tls13, ServerVerification::Roots(roots), false)
        .for_device(&dev)
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .unwrap()
        .to_owned();
    let (stream, _) = transport::tls_handshake(tls, name, io).await.unwrap();
    let mut connection = Connection::builder()
        .container_id(container)
        .hostname("localhost")
        .open_with_stream(stream)
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let sender = Sender::attach(
        &mut session,
        format!("link-snd-{id}"),
        format!("/devices/{id}/messages/events"),
    )
    .await
    .unwrap();
    Link {
        connection,
        session,
        sender,
    }
}

impl Link {
    /// Detach, end, close.
    pub async fn close(mut self) {
        let _ = self.sender.close().await;
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}
