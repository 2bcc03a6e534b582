//! The transport under every protocol: TCP connect (optionally from a chosen local address)
//! and the mutual-TLS handshake, each timed on its own.

pub mod provider;
pub mod replay;
pub mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub use provider::Provider;
pub use replay::Replay;
pub use tls::{ClientTls, ServerVerification, TlsConfigError, TlsVersion};

/// A device's mutual-TLS stream, as protocols receive it.
pub type DeviceStream = TlsStream<TcpStream>;

/// Where devices connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Address to connect to.
    pub addr: SocketAddr,
    /// Name sent as SNI and checked against the server certificate.
    pub server_name: ServerName<'static>,
    /// Host name as the protocol sees it (MQTT username, AMQP hostname).
    pub host: String,
}

/// Opens a TCP connection, from `local` when given (a source-address pool).
pub async fn tcp_connect(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = local {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs the client side of the TLS handshake on `tcp`. Returns the stream and whether the
/// session was resumed.
pub async fn tls_handshake(
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    tcp: TcpStream,
) -> io::Result<(TlsStream<TcpStream>, bool)> {
    let stream = TlsConnector::from(config).connect(server_name, tcp).await?;
    let resumed = matches!(
        stream.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    Ok((stream, resumed))
}
