//! Issue 19: fe2o3's connection engine, as this project carries it (`patches/fe2o3-amqp`), writes
//! the frames its sessions have already queued together: a batch of transfers goes out in one TLS
//! record and one `write`, not one each (published fe2o3-amqp 0.18 flushed every frame).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use fe2o3_amqp::types::messaging::{Message, Outcome};
use fe2o3_amqp::types::primitives::Binary;
use fe2o3_amqp::Sendable;
use fleetbench::transport;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::support::{self, amqp_link};

/// A stream that counts its successful writes: under TLS, each is one `write` system call of
/// one or more records.
#[derive(Debug)]
struct CountWrites<S> {
    inner: S,
    writes: Arc<AtomicU64>,
}

impl<S> CountWrites<S> {
    fn counted<T>(&self, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Ok(_)) = poll {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountWrites<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountWrites<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.counted(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.counted(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

const MESSAGES: u64 = 64;

/// One thread, the hub's tasks and the client's on it: the client queues its transfers before the
/// engine next runs, whatever the machine's load, so how they are written does not depend on
/// timing.
#[tokio::test(flavor = "current_thread")]
async fn queued_transfers_go_out_in_a_few_writes_not_one_each() {
    let ca = support::chain();
    let hub = support::hub(&ca, &[&ca]).await;
    let writes = Arc::new(AtomicU64::new(0));
    let tcp = CountWrites {
        inner: transport::tcp_connect(hub.amqp, None).await.unwrap(),
        writes: writes.clone(),
    };
    let mut link = amqp_link::telemetry(&hub, &ca, "flusher", "flusher", tcp).await;

    // Queue every transfer unsettled before awaiting any settlement, as a device with a window
    // does; then count the writes they took.
    let before = writes.load(Ordering::Relaxed);
    let mut settlements = Vec::new();
    for i in 0..MESSAGES {
        let message = Message::builder()
            .data(Binary::from(format!("message {i}").into_bytes()))
            .build();
        let sendable = Sendable::builder().message(message).build();
        settlements.push(link.sender.send_batchable(sendable).await.unwrap());
    }
    for settled in settlements {
        let outcome = settled.await.unwrap();
        assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    }
    let took = writes.load(Ordering::Relaxed) - before;
    assert_eq!(hub.hub.registry.received("flusher"), MESSAGES);
    // One write per transfer when the engine flushes each frame on its own.
    assert!(
        took * 4 <= MESSAGES,
        "{took} writes for {MESSAGES} transfers queued together"
    );
    link.close().await;
    hub.stop().await;
}
