//! MQTT packets over the device's stream with rumqttc's codec and small reused buffers.

use bytes::{Buf as _, BytesMut};
use rumqttc::mqttbytes::v4::Packet;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::{codec_error, MAX_INCOMING, MAX_OUTGOING};
use crate::protocol::SessionError;

/// Packets over a byte stream with small, reused buffers: an idle session holds a few hundred
/// bytes here rather than the 2 x 8 KiB of a tokio-util `Framed`, and queued packets go out
/// in one write (one TLS record) per flush.
pub(super) struct Wire<S> {
    pub(super) io: S,
    read: BytesMut,
    pub(super) write: BytesMut,
    /// Something was queued and not yet flushed through to the stream.
    pub(super) unflushed: bool,
}

/// Initial buffer size: a CONNACK, a few PUBACKs, one small PUBLISH.
const BUFFER: usize = 512;
/// A buffer grown beyond this by a large message is given back once empty.
const KEEP: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(super) fn new(io: S) -> Self {
        Self {
            io,
            read: BytesMut::with_capacity(BUFFER),
            write: BytesMut::with_capacity(BUFFER),
            unflushed: false,
        }
    }

    /// Encodes a packet into the write buffer; nothing is written until [`Self::flush`].
    pub(super) fn queue(&mut self, packet: &Packet) -> Result<(), SessionError> {
        self.unflushed = true;
        packet
            .write(&mut self.write, MAX_OUTGOING)
            .map(drop)
            .map_err(codec_error)
    }

    /// Writes everything queued. Cancel-safe: what was written leaves the buffer, what was
    /// not stays queued for the next flush (so `next_ack` may answer a PUBREC in `select!`).
    pub(super) async fn flush(&mut self) -> Result<(), SessionError> {
        while !self.write.is_empty() {
            let n = self.io.write(&self.write).await?;
            if n == 0 {
                return Err(SessionError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            self.write.advance(n);
        }
        if self.write.capacity() > KEEP {
            self.write = BytesMut::with_capacity(BUFFER);
        }
        self.io.flush().await?;
        self.unflushed = false;
        Ok(())
    }

    pub(super) async fn send(&mut self, packet: &Packet) -> Result<(), SessionError> {
        self.queue(packet)?;
        self.flush().await
    }

    /// The next packet, `None` at end of stream. Cancel-safe: bytes read stay in the buffer.
    pub(super) async fn next(&mut self) -> Option<Result<Packet, SessionError>> {
        loop {
            match Packet::read(&mut self.read, MAX_INCOMING) {
                Ok(p) => {
                    if self.read.is_empty() && self.read.capacity() > KEEP {
                        self.read = BytesMut::with_capacity(BUFFER);
                    }
                    return Some(Ok(p));
                }
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(n)) => {
                    self.read.reserve(n.max(64));
                    match self.io.read_buf(&mut self.read).await {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) => return Some(Err(SessionError::Io(e))),
                    }
                }
                Err(e) => return Some(Err(codec_error(e))),
            }
        }
    }
}
