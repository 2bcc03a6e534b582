//! A counting adapter around a device's TCP stream: the TCP payload bytes each way, the
//! flights (each change from writing to reading is one round trip; a lone ChangeCipherSpec is
//! no flight), and whether the server's
//! first handshake message was a HelloRetryRequest, read from the record bytes themselves.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The random of a HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446, 4.1.3).
pub const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Record header (5) + handshake header (4) + legacy_version (2) + random (32).
const FIRST_HELLO: usize = 5 + 4 + 2 + 32;

/// A ChangeCipherSpec record on its own (RFC 8446, D.4; RFC 5246, 7.1).
const CCS_RECORD: [u8; 6] = [20, 3, 3, 0, 1, 1];

/// Whether the first `n` bytes of `bufs` are a lone ChangeCipherSpec record.
fn is_lone_ccs(bufs: &[io::IoSlice<'_>], n: usize) -> bool {
    n == CCS_RECORD.len()
        && bufs
            .iter()
            .flat_map(|b| b.iter())
            .take(n)
            .eq(CCS_RECORD.iter())
}

/// What crossed a stream so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// TCP payload bytes read (server to client).
    pub read: u64,
    /// TCP payload bytes written (client to server).
    pub written: u64,
    /// Round trips: how often a read followed a write (the first read after each flight).
    pub round_trips: u32,
    /// The server's first handshake record was a HelloRetryRequest.
    pub hello_retry: bool,
}

/// Called once with the stream's totals when it is dropped (the session's end).
pub type OnDrop = Box<dyn FnOnce(Counts) + Send + Sync>;

/// A stream that counts what crosses it.
pub struct Counted<S> {
    inner: S,
    counts: Counts,
    /// Wrote since the last read: the next read starts a round trip.
    wrote: bool,
    /// The first bytes read, until [`FIRST_HELLO`] of them have come.
    head: [u8; FIRST_HELLO],
    head_len: usize,
    on_drop: Option<OnDrop>,
}

impl<S> std::fmt::Debug for Counted<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl<S> Counted<S> {
    /// Starts counting on `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Counts::default(),
            wrote: false,
            head: [0; FIRST_HELLO],
            head_len: 0,
            on_drop: None,
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Calls `f` with the totals when the stream is dropped.
    pub fn on_drop(&mut self, f: OnDrop) {
        self.on_drop = Some(f);
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn saw_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.wrote {
            self.counts.round_trips += 1;
            self.wrote = false;
        }
        self.counts.read += bytes.len() as u64;
        if self.head_len < FIRST_HELLO {
            let take = (FIRST_HELLO - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
            self.head_len += take;
            if self.head_len == FIRST_HELLO {
                self.counts.hello_retry = is_hello_retry(&self.head);
            }
        }
    }

    /// `lone_ccs`: the `n` bytes written were a ChangeCipherSpec record and nothing else.
    fn saw_write(&mut self, n: usize, lone_ccs: bool) {
        if n > 0 {
            self.counts.written += n as u64;
            // A lone ChangeCipherSpec asks nothing of the server: TLS 1.3's middlebox
            // compatibility record, which rustls may write while the server's flight is still
            // arriving, is not a flight of its own.
            self.wrote |= !lone_ccs;
        }
    }
}

/// Whether `head` (the first bytes from the server) is a handshake record holding a
/// ServerHello whose random is the HelloRetryRequest value.
pub fn is_hello_retry(head: &[u8]) -> bool {
    const HANDSHAKE: u8 = 22;
    const SERVER_HELLO: u8 = 2;
    head.len() >= FIRST_HELLO
        && head[0] == HANDSHAKE
        && head[5] == SERVER_HELLO
        && head[11..FIRST_HELLO] == HRR_RANDOM
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f(self.counts);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let this = &mut *self;
            this.saw_read(&buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.saw_write(n, buf[..n] == CCS_RECORD);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            self.saw_write(n, is_lone_ccs(bufs, n));
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_bytes_and_one_round_trip_per_write_then_read() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut c = Counted::new(a);
        c.write_all(b"hello").await.unwrap();
        b.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        c.read_exact(&mut buf).await.unwrap();
        b.write_all(b"de").await.unwrap();
        c.read_exact(&mut buf[..2]).await.unwrap();
        c.write_all(b"x").await.unwrap();
        b.write_all(b"f").await.unwrap();
        c.read_exact(&mut buf[..1]).await.unwrap();
        let n = c.counts();
        assert_eq!((n.read, n.written, n.round_trips), (6, 6, 2));
        assert!(!n.hello_retry);
        // A lone ChangeCipherSpec between two reads is not a flight.
        c.write_all(&CCS_RECORD).await.unwrap();
        b.write_all(b"g").await.unwrap();
        c.read_exact(&mut buf[..1]).await.unwrap();
        assert_eq!(c.counts().round_trips, 2);
    }

    #[test]
    fn a_server_hello_with_the_magic_random_is_a_hello_retry() {
        let mut head = vec![22, 3, 3, 0, 80, 2, 0, 0, 76, 3, 3];
        head.extend_from_slice(&HRR_RANDOM);
        assert!(is_hello_retry(&head));
        head[20] ^= 1;
        assert!(!is_hello_retry(&head));
    }
}
