//! MQTT packets over the device's stream with rumqttc's codec and small reused buffers.

use bytes::{Buf as _, BytesMut};
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::{codec_error, MAX_INCOMING, MAX_OUTGOING};
use crate::protocol::SessionError;

/// A packet of one MQTT version, as its codec writes it.
pub(super) trait Encode {
    /// Appends the packet to `buf`.
    fn encode(&self, buf: &mut BytesMut) -> Result<(), SessionError>;
}

/// A packet of one MQTT version, as the session reads it.
pub(super) trait Decode: Sized {
    /// The next packet in `buf`; `Err(Ok(n))` when at least `n` more bytes are needed.
    fn decode(buf: &mut BytesMut, max: usize) -> Result<Self, Result<usize, SessionError>>;
}

impl Encode for Packet {
    fn encode(&self, buf: &mut BytesMut) -> Result<(), SessionError> {
        self.write(buf, MAX_OUTGOING).map(drop).map_err(codec_error)
    }
}

impl Decode for Packet {
    fn decode(buf: &mut BytesMut, max: usize) -> Result<Self, Result<usize, SessionError>> {
        match Self::read(buf, max) {
            Ok(p) => Ok(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(n)) => Err(Ok(n)),
            Err(e) => Err(Err(codec_error(e))),
        }
    }
}

impl Encode for Packet5 {
    fn encode(&self, buf: &mut BytesMut) -> Result<(), SessionError> {
        // The bound is ours (as for 3.1.1): a message the broker finds too large is its to refuse.
        let max = u32::try_from(MAX_OUTGOING).ok();
        self.write(buf, max)
            .map(drop)
            .map_err(super::v5::codec_error)
    }
}

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
    pub(super) fn queue(&mut self, packet: &impl Encode) -> Result<(), SessionError> {
        self.unflushed = true;
        packet.encode(&mut self.write)
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

    pub(super) async fn send(&mut self, packet: &impl Encode) -> Result<(), SessionError> {
        self.queue(packet)?;
        self.flush().await
    }

    /// The next packet, `None` at end of stream. Cancel-safe: bytes read stay in the buffer.
    pub(super) async fn next(&mut self) -> Option<Result<Packet, SessionError>> {
        self.next_frame(MAX_INCOMING).await
    }

    /// The next packet of version `P` no larger than `max`, `None` at end of stream.
    /// Cancel-safe: bytes read stay in the buffer.
    pub(super) async fn next_frame<P: Decode>(
        &mut self,
        max: usize,
    ) -> Option<Result<P, SessionError>> {
        loop {
            match P::decode(&mut self.read, max) {
                Ok(p) => {
                    if self.read.is_empty() && self.read.capacity() > KEEP {
                        self.read = BytesMut::with_capacity(BUFFER);
                    }
                    return Some(Ok(p));
                }
                Err(Ok(n)) => {
                    self.read.reserve(n.max(64));
                    match self.io.read_buf(&mut self.read).await {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) => return Some(Err(SessionError::Io(e))),
                    }
                }
                Err(Err(e)) => return Some(Err(e)),
            }
        }
    }
}
