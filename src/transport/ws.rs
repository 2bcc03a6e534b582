//! MQTT and AMQP over WebSockets: the HTTP upgrade inside an established (mutual-TLS) stream,
//! and [`WsBytes`], which turns the WebSocket back into a byte stream (binary messages) for the
//! protocols, as IoT Hub's device SDKs use it.
//!
//! tokio-tungstenite does the handshake and the framing; this module only adapts its message
//! stream to `AsyncRead`/`AsyncWrite` (one binary message per write, read across message
//! boundaries) and checks what IoT Hub checks: the path and the subprotocol.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// IoT Hub's WebSocket path, for MQTT and AMQP alike (`docs/websockets.md`).
pub const IOT_HUB_PATH: &str = "/$iothub/websocket";
/// The subprotocol of MQTT over WebSockets.
pub const MQTT_SUBPROTOCOL: &str = "mqtt";
/// The subprotocol of AMQP over WebSockets (AMQP WebSocket Binding 1.0).
pub const AMQP_SUBPROTOCOL: &str = "AMQPWSB10";
/// The header that names the subprotocol, both ways.
const PROTOCOL_HEADER: &str = "sec-websocket-protocol";

/// Both sides' settings: tungstenite allocates its read buffer up front (128 KiB by default),
/// which a fleet of idle sessions cannot afford; 4 KiB is what a device's acks need, and the
/// buffer grows for a larger message. Messages up to 1 MiB (IoT Hub's limit is 256 KiB).
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// What a WebSocket upgrade asks for: the path and the one subprotocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsTarget {
    /// The request path, e.g. `/$iothub/websocket`.
    pub path: String,
    /// The subprotocol requested (client) or required (server).
    pub subprotocol: &'static str,
}

/// Why a WebSocket upgrade failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The connection failed under the upgrade.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server answered with an HTTP status other than 101, or the wrong subprotocol, or the
    /// request could not be made.
    #[error("WebSocket upgrade refused: {0}")]
    Refused(String),
}

impl From<tungstenite::Error> for UpgradeError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Io(e) => Self::Io(e),
            tungstenite::Error::Http(r) => Self::Refused(format!("HTTP {}", r.status())),
            e => Self::Refused(e.to_string()),
        }
    }
}

/// The client's upgrade on `stream` (TLS already established): GET `target.path` on `host`
/// with the subprotocol; the server must answer 101 with that subprotocol.
pub async fn upgrade<S>(
    stream: S,
    host: &str,
    target: &WsTarget,
) -> Result<WsBytes<S>, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!("wss://{host}{}", target.path).into_client_request()?;
    request.headers_mut().insert(
        PROTOCOL_HEADER,
        HeaderValue::from_static(target.subprotocol),
    );
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config())).await?;
    Ok(WsBytes::new(ws))
}

/// The server's side on `stream`: answers 101 with the subprotocol when the request's path is
/// `target.path` and it offers `target.subprotocol` (case-sensitive, as the SDKs send it);
/// else 404 for a wrong path, 400 for a missing subprotocol, and the error. `refused` hears why
/// before the refusal is written (so a count of it is in place when the client sees it).
// The check's error type is tungstenite's (its `Callback` trait), whatever its size.
#[allow(clippy::result_large_err)]
pub async fn accept<S>(
    stream: S,
    target: &WsTarget,
    refused: impl FnOnce(&'static str) + Unpin,
) -> Result<WsBytes<S>, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offered = req
            .headers()
            .get_all(PROTOCOL_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == target.subprotocol);
        let why = if req.uri().path() != target.path {
            Some((StatusCode::NOT_FOUND, "no WebSocket endpoint at this path"))
        } else if !offered {
            Some((StatusCode::BAD_REQUEST, "subprotocol not offered"))
        } else {
            None
        };
        if let Some((status, why)) = why {
            refused(why);
            return Err(refusal(status, why));
        }
        resp.headers_mut().insert(
            PROTOCOL_HEADER,
            HeaderValue::from_static(target.subprotocol),
        );
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config())).await?;
    Ok(WsBytes::new(ws))
}

fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

/// A WebSocket as a byte stream: writes go out as binary messages, reads yield the payloads
/// of the messages received in order (text messages are refused as IoT Hub refuses them).
#[derive(Debug)]
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// What is left of the message being read.
    read: Bytes,
}

impl<S> WsBytes<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            read: Bytes::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    /// The stream under the WebSocket (the TLS stream: its peer certificates).
    pub fn get_ref(&self) -> &S {
        self.ws.get_ref()
    }
}

fn io_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::ErrorKind::BrokenPipe.into()
        }
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.read.is_empty() {
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.read = b,
                // tungstenite answers pings itself; pongs and empty frames carry nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message where binary was expected",
                    )))
                }
                // A close frame or the end of the stream: end of file.
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
        let n = buf.remaining().min(self.read.len());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
        // Queued in tungstenite's write buffer; it goes out on flush (one TLS write for a batch).
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

/// A stream that is either `S` itself or a WebSocket over it: what protocols receive when a
/// scenario (or a hub listener) may or may not use WebSockets.
#[derive(Debug)]
pub enum MaybeWs<S> {
    /// The protocol straight over `S`.
    Plain(S),
    /// The protocol in binary WebSocket messages over `S` (boxed: a plain session does not
    /// carry the WebSocket's room).
    Ws(Box<WsBytes<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> MaybeWs<S> {
    /// The stream under any WebSocket.
    pub fn get_ref(&self) -> &S {
        match self {
            Self::Plain(s) => s,
            Self::Ws(w) => w.get_ref(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeWs<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Ws(w) => Pin::new(&mut **w).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeWs<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, b),
            Self::Ws(w) => Pin::new(&mut **w).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Ws(w) => Pin::new(&mut **w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Ws(w) => Pin::new(&mut **w).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn target(path: &str, subprotocol: &'static str) -> WsTarget {
        WsTarget {
            path: path.into(),
            subprotocol,
        }
    }

    #[tokio::test]
    async fn bytes_cross_in_both_directions_across_message_boundaries() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let hub = target(IOT_HUB_PATH, MQTT_SUBPROTOCOL);
        let server = tokio::spawn(async move {
            let mut s = accept(b, &hub, |_| {}).await.unwrap();
            let mut got = [0u8; 7];
            s.read_exact(&mut got).await.unwrap();
            s.write_all(b"pong").await.unwrap();
            s.flush().await.unwrap();
            got
        });
        let mut c = upgrade(a, "localhost", &target(IOT_HUB_PATH, MQTT_SUBPROTOCOL))
            .await
            .unwrap();
        c.write_all(b"pi").await.unwrap();
        c.write_all(b"ngpong").await.unwrap();
        c.flush().await.unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"pong");
        assert_eq!(&server.await.unwrap(), b"pingpon");
    }

    #[tokio::test]
    async fn wrong_path_and_subprotocol_are_refused_with_their_status() {
        for (path, proto, status) in [
            ("/mqtt", MQTT_SUBPROTOCOL, "404"),
            (IOT_HUB_PATH, AMQP_SUBPROTOCOL, "400"),
        ] {
            let (a, b) = tokio::io::duplex(1 << 16);
            let server = tokio::spawn(async move {
                let mut why = None;
                let r = accept(b, &target(IOT_HUB_PATH, MQTT_SUBPROTOCOL), |w| {
                    why = Some(w)
                })
                .await;
                r.is_err() && why.is_some()
            });
            let e = upgrade(a, "localhost", &target(path, proto))
                .await
                .unwrap_err();
            assert!(
                matches!(&e, UpgradeError::Refused(m) if m.contains(status)),
                "{e}"
            );
            assert!(server.await.unwrap());
        }
    }
}
