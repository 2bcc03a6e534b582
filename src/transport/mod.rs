//! The transport under every protocol: TCP connect (optionally from a chosen local address)
//! and the mutual-TLS handshake, each timed on its own.

pub mod counting;
pub mod cpu_clock;
pub mod provider;
pub mod replay;
pub mod tls;
pub mod ws;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub use counting::{Counted, Counts};
pub use provider::Provider;
pub use replay::Replay;
pub use tls::{ClientTls, ServerVerification, TlsConfigError, TlsVersion};
pub use ws::{MaybeWs, WsTarget};

/// A device's mutual-TLS stream over a counted TCP stream, boxed: rustls's connection state is
/// large, and a session's stream passes through several futures and results on its way to the
/// protocol, each of which would otherwise copy it whole.
pub type TlsDeviceStream = Box<TlsStream<Counted<TcpStream>>>;

/// A device's stream as protocols receive it: the TLS stream, or a WebSocket inside it.
pub type DeviceStream = MaybeWs<TlsDeviceStream>;

/// Where devices connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Address to connect to.
    pub addr: SocketAddr,
    /// Name sent as SNI and checked against the server certificate.
    pub server_name: ServerName<'static>,
    /// Host name as the protocol sees it (MQTT username, AMQP hostname).
    pub host: String,
    /// The WebSocket upgrade to make after the TLS handshake, if the protocol goes over
    /// WebSockets.
    pub websocket: Option<WsTarget>,
}

/// `name` as one that lasts the process: a DNS name is interned (each distinct name copied
/// once, and kept), so that every connection of a run borrows it instead of copying it, as do
/// the ticket cache's entries for it.
pub fn lasting_name(name: &ServerName<'static>) -> ServerName<'static> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let ServerName::DnsName(dns) = name else {
        return name.clone();
    };
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let kept: &'static str = match names.get(dns.as_ref()) {
        Some(kept) => kept,
        None => {
            let kept: &'static str = Box::leak(dns.as_ref().into());
            names.insert(kept);
            kept
        }
    };
    ServerName::try_from(kept).unwrap_or_else(|_| name.clone())
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
pub async fn tls_handshake<IO>(
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    tcp: IO,
) -> io::Result<(TlsStream<IO>, bool)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let stream = TlsConnector::from(config).connect(server_name, tcp).await?;
    let resumed = resumed(stream.get_ref().1);
    Ok((stream, resumed))
}

/// Whether the connection's handshake resumed a session.
fn resumed(conn: &rustls::ClientConnection) -> bool {
    matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed))
}

/// What one handshake cost on the wire, counted on the client's TCP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeWire {
    /// The session was resumed (no certificates crossed).
    pub resumed: bool,
    /// Bytes, round trips and HelloRetryRequest when the handshake completed on the client
    /// (for TLS 1.3 without the tickets the server sends after it).
    pub counts: Counts,
    /// DER bytes of the certificate chain the client sent (0 when resumed).
    pub chain_sent: u64,
    /// DER bytes of the certificate chain the server sent (0 when resumed).
    pub chain_received: u64,
    /// CPU time spent in the handshake's polls ([`cpu_clock::clocked`]): the client's price
    /// of this handshake, from the ClientHello's making to the server's Finished checked.
    /// `None` when the handshake was not clocked (the clock costs a system call a read).
    pub cpu: Option<std::time::Duration>,
}

/// The TLS handshake on a counted `tcp`: the device's stream and what the handshake cost, its
/// CPU too when `clock_cpu`.
pub async fn tls_handshake_counted(
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    tcp: TcpStream,
    clock_cpu: bool,
) -> io::Result<(TlsDeviceStream, HandshakeWire)> {
    // One handshake future, clocked or not: an arm for each would hold one each, and this
    // future (boxed by the caller, so copied once whole) would be twice the size.
    let (stream, cpu) = cpu_clock::clocked_if(
        clock_cpu,
        TlsConnector::from(config.clone()).connect(server_name, Counted::new(tcp)),
    )
    .await;
    // Boxed as soon as it exists (see `TlsDeviceStream`).
    let stream = Box::new(stream?);
    let (counted, conn) = stream.get_ref();
    let resumed = resumed(conn);
    // Certificates cross only in a full handshake: the device's one certificate (rustls's
    // fixed resolver ignores what it is asked) and the server's chain.
    let der_len = |certs: &[rustls::pki_types::CertificateDer]| -> u64 {
        certs.iter().map(|d| d.len() as u64).sum()
    };
    let (chain_sent, chain_received) = if resumed {
        (0, 0)
    } else {
        (
            config
                .client_auth_cert_resolver
                .resolve(&[], &[])
                .map_or(0, |k| der_len(&k.cert)),
            conn.peer_certificates().map_or(0, der_len),
        )
    };
    let wire = HandshakeWire {
        resumed,
        counts: counted.counts(),
        chain_sent,
        chain_received,
        cpu,
    };
    Ok((stream, wire))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;

    use super::*;

    /// A session's futures are boxed, so copied whole once each when made: they must hold what
    /// they run once, not twice (`clocked_if` rather than an `async fn` around the handshake).
    #[test]
    fn a_lasting_name_is_the_same_name_kept_once() {
        let name = ServerName::try_from("hub.example").unwrap().to_owned();
        let (a, b) = (lasting_name(&name), lasting_name(&name));
        assert_eq!(a, name);
        let (ServerName::DnsName(a), ServerName::DnsName(b)) = (a, b) else {
            panic!("not a DNS name");
        };
        assert_eq!(a.as_ref().as_ptr(), b.as_ref().as_ptr(), "copied twice");
        let ip = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        assert_eq!(lasting_name(&ip), ip);
    }

    #[tokio::test]
    async fn the_handshake_future_holds_one_handshake() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        );
        let name = ServerName::try_from("localhost").unwrap();
        let bare = TlsConnector::from(config.clone()).connect(
            name.clone(),
            Counted::new(TcpStream::connect(addr).await.unwrap()),
        );
        let ours =
            tls_handshake_counted(config, name, TcpStream::connect(addr).await.unwrap(), true);
        let (bare, ours) = (size_of_val(&bare), size_of_val(&ours));
        assert!(
            ours < bare + 512,
            "the handshake future is {ours} bytes for a handshake of {bare}"
        );
    }
}
