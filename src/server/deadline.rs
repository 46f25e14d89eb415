//! A connection whose answers must leave within a time limit, so that a client that does not read can
//! never hold a connection (and its slot in the connection budget) for good.
//!
//! The clock starts when the socket first refuses output (a write or flush that cannot proceed) and stops
//! when everything the server wanted to send has been handed to the kernel (hyper flushes the connection
//! once its own buffer is empty). Progress in between does not restart it: a client that reads a byte
//! every few seconds is cut just like one that reads nothing. A client that reads its answers as they
//! come never starts the clock, so well-behaved keep-alive connections live as long as they like.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner` with a deadline on its pending output; see the module documentation.
#[derive(Debug)]
pub(crate) struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    /// Wraps `inner`; output must drain within `limit` of the first write that has to wait.
    pub(crate) fn new(inner: T, limit: Duration) -> Self {
        WriteDeadline { inner, limit, deadline: None }
    }

    /// After an output call: arms the deadline when the call must wait, disarms it when all output is
    /// out, and fails the connection once the deadline has passed.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>, drained: bool) -> Poll<io::Result<R>> {
        match poll {
            Poll::Pending => {
                let limit = self.limit;
                let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                // Registers the waker: the connection is polled again when the time is up.
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(self.timed_out())),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(Ok(value)) => {
                if drained {
                    self.deadline = None;
                }
                Poll::Ready(Ok(value))
            }
            error => error,
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready())
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client did not read the answer within {} ms (--write-timeout)", self.limit.as_millis()),
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(self.timed_out()));
        }
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll, false)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(self.timed_out()));
        }
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll, false)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(self.timed_out()));
        }
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll, true)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(self.timed_out()));
        }
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn output_that_cannot_drain_fails_at_the_deadline_and_slow_progress_does_not_restart_it() {
        // A pipe of 16 bytes whose reader takes one byte every second.
        let (client, server) = tokio::io::duplex(16);
        let mut server = WriteDeadline::new(server, Duration::from_secs(10));
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut byte = [0u8; 1];
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tokio::io::AsyncReadExt::read(&mut client, &mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        let started = tokio::time::Instant::now();
        let error = async {
            server.write_all(&[b'x'; 1024]).await?;
            server.flush().await
        }
        .await
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed().as_secs(), 10, "cut at the deadline, though bytes kept leaving");
        drop(server);
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn output_that_drains_never_times_out() {
        let (mut client, server) = tokio::io::duplex(16);
        let mut server = WriteDeadline::new(server, Duration::from_secs(1));
        for _ in 0..20 {
            // Each answer waits half the limit for the reader, then drains: the clock restarts each time.
            let write = async {
                server.write_all(&[b'y'; 32]).await?;
                server.flush().await
            };
            let read = async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut answer = [0u8; 32];
                tokio::io::AsyncReadExt::read_exact(&mut client, &mut answer).await
            };
            let (written, read) = tokio::join!(write, read);
            written.unwrap();
            read.unwrap();
        }
    }
}
