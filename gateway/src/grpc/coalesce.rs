//! A connection that hands a gRPC answer to the kernel in one write. HTTP/2 (the `h2`
//! crate) writes what it has queued at the end of each turn of its connection task, and
//! a unary answer is queued in two turns: headers and message in one, the trailers that
//! carry the status in the next (the call's task queues them after the connection task
//! was woken for the message). So every answer cost two writes and two TCP segments, and
//! the client an extra ACK. Here a flush that finds small writes held lets them wait for
//! the connection's next turn, which it wakes at once; that turn's flush writes them with
//! whatever was queued meanwhile (the trailers): one write per answer.
//!
//! This bends `poll_flush`'s contract (Ready before the bytes left) in a way only a task
//! that flushes again on its next turn may rely on; `h2`'s connection task does (every
//! turn ends with a flush, and closing shuts down, which writes everything). So the type
//! serves the gRPC port's connections and nothing else, and defers only where `h2` is
//! its direct user: under TLS the handshake flushes once and then waits for the client,
//! so there a flush writes at once (and only writes between flushes go out together).
//!
//! Told that the connection takes no vectored writes, `h2` also copies message payloads
//! of up to 1 KiB into its own frame buffer instead of writing them apart; a larger
//! message leaves in one `writev` with what is held before it.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

use crate::conn::ClientConn;

/// Writes up to this many bytes in all wait in memory for the next write or flush.
const HELD_BYTES: usize = 4096;

/// A TCP connection of the gRPC port whose small writes go out together.
#[derive(Debug)]
pub struct Coalesced<S> {
    inner: S,
    held: Vec<u8>,
    /// Whether a flush may let small writes wait for the connection's next turn.
    defers: bool,
    /// A flush found small writes held and let them wait for the connection's next turn.
    deferred: bool,
}

impl<S> Coalesced<S> {
    /// Wraps a connection; `defers` lets a flush wait a turn (only for a connection whose
    /// user is `h2` itself, see the module's comment).
    pub fn new(inner: S, defers: bool) -> Coalesced<S> {
        Coalesced {
            inner,
            held: Vec::new(),
            defers,
            deferred: false,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes out what is held, then nothing is.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.held.len() + buf.len() <= HELD_BYTES {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        loop {
            if this.held.is_empty() {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
            let both = [IoSlice::new(&this.held), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &both))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let held = this.held.len();
            if n < held {
                this.held.drain(..n);
                continue;
            }
            this.held.clear();
            if n > held {
                return Poll::Ready(Ok(n - held));
            }
        }
    }

    /// False, so that `h2` copies payloads of up to 1 KiB into its own buffer (see the
    /// module's comment); larger ones still leave in one `writev` with what is held.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.defers && !self.held.is_empty() && !self.deferred {
            self.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        self.deferred = false;
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection as admission sees it: tonic asks once per connection and puts a clone in
/// every call's extensions (under TLS too), so the token places it holds last as long as
/// the connection.
impl Connected for Coalesced<TcpStream> {
    type ConnectInfo = ClientConn;

    fn connect_info(&self) -> ClientConn {
        ClientConn::new(self.inner.peer_addr().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::task::ArcWake;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A writer that takes at most `limit` bytes a call and records each call.
    struct Recorder {
        writes: Vec<Vec<u8>>,
        limit: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(self.limit);
            self.writes.push(all[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn recorder(limit: usize) -> Coalesced<Recorder> {
        Coalesced::new(
            Recorder {
                writes: Vec::new(),
                limit,
            },
            true,
        )
    }

    #[tokio::test]
    async fn small_writes_leave_together_at_the_second_flush() {
        let mut c = recorder(usize::MAX);
        c.write_all(b"headers").await.unwrap();
        c.write_all(b"message").await.unwrap();
        c.flush().await.unwrap();
        assert!(
            c.inner.writes.is_empty(),
            "the first flush lets them wait a turn"
        );
        c.write_all(b"trailers").await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(c.inner.writes, vec![b"headersmessagetrailers".to_vec()]);
        c.flush().await.unwrap();
        assert_eq!(c.inner.writes.len(), 1, "nothing held, nothing written");
    }

    /// Counts its wake-ups.
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_deferring_flush_wakes_its_task() {
        let mut c = recorder(usize::MAX);
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = futures::task::waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let pinned = Pin::new(&mut c);
        assert!(pinned.poll_write(&mut cx, b"answer").is_ready());
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "the next turn is certain"
        );
        assert!(c.inner.writes.is_empty());
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.writes, vec![b"answer".to_vec()]);
    }

    #[tokio::test]
    async fn without_deferring_a_flush_writes_at_once() {
        let mut c = recorder(usize::MAX);
        c.defers = false;
        c.write_all(b"server hello").await.unwrap();
        c.write_all(b" and more").await.unwrap();
        assert!(c.inner.writes.is_empty());
        c.flush().await.unwrap();
        assert_eq!(c.inner.writes, vec![b"server hello and more".to_vec()]);
    }

    #[tokio::test]
    async fn a_large_write_takes_what_is_held_with_it() {
        let mut c = recorder(usize::MAX);
        let large = vec![7u8; HELD_BYTES];
        c.write_all(b"head").await.unwrap();
        c.write_all(&large).await.unwrap();
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&large);
        assert_eq!(c.inner.writes, vec![expected]);
    }

    #[tokio::test]
    async fn short_writes_lose_and_repeat_nothing() {
        let mut c = recorder(3);
        let large: Vec<u8> = (0..HELD_BYTES as u32 + 10).map(|i| i as u8).collect();
        c.write_all(b"held bytes").await.unwrap();
        c.write_all(&large).await.unwrap();
        c.write_all(b"tail").await.unwrap();
        c.shutdown().await.unwrap();
        let written: Vec<u8> = c.inner.writes.concat();
        let mut expected = b"held bytes".to_vec();
        expected.extend_from_slice(&large);
        expected.extend_from_slice(b"tail");
        assert_eq!(written, expected);
    }

    #[tokio::test]
    async fn reads_pass_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut c = Coalesced::new(server, true);
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        c.write_all(b"pong").await.unwrap();
        c.flush().await.unwrap();
        c.flush().await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }
}
