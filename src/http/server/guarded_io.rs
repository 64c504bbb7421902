//! The socket as hyper sees it: every read passes the request framing
//! check ([`Framing`]), and every wait on the client is bounded.
//!
//! The timers live here rather than in hyper because hyper has one header
//! timer that also bounds keep-alive waits, and none for a client that
//! stops reading. Which timer applies follows from where the connection is:
//! - nothing of a request yet, no response pending: `header` on a fresh
//!   connection, `keep_alive_idle` after a response; then it is closed
//!   quietly, as any keep-alive close;
//! - part of a head arrived: `header` from its first byte, then `408`;
//! - in a body the handler is waiting for: `body_idle` without a byte,
//!   then the body read fails (the handler answers or drops the request);
//! - a write the client does not take: `write_idle` without progress, then
//!   the connection is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::conn::ConnShared;
use super::framing::{Framing, Rejection};

/// How long the server waits on a client, each with its own option.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header: Duration,
    pub body_idle: Duration,
    pub keep_alive_idle: Duration,
    pub write_idle: Duration,
}

/// Why the read deadline in force exists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Idle,
    Head,
    Body,
}

pub struct GuardedIo {
    inner: TcpStream,
    shared: Arc<ConnShared>,
    timeouts: Timeouts,
    framing: Framing,
    /// Checked bytes not yet handed to hyper.
    pending: BytesMut,
    head_started: Option<Instant>,
    /// Since when a body read has waited without a byte.
    body_wait_since: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    read_deadline: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_deadline: Option<Instant>,
    /// A request was refused here: nothing more is read from the client.
    refused: bool,
    /// Hyper is told end-of-stream from now on.
    closed: bool,
    linger_until: Option<Instant>,
    lingered: usize,
}

/// When a connection closes while the client may still be sending, the
/// longest time and most bytes read and dropped first (as nginx's lingering
/// close): enough for an upload refused on its declared length to reach its
/// end, so its client reads the answer instead of a reset.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

impl GuardedIo {
    pub fn new(inner: TcpStream, shared: Arc<ConnShared>, timeouts: Timeouts) -> Self {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
        Self {
            inner,
            shared,
            timeouts,
            framing: Framing::new(),
            pending: BytesMut::new(),
            head_started: None,
            body_wait_since: None,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            read_deadline: None,
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_deadline: None,
            refused: false,
            closed: false,
            linger_until: None,
            lingered: 0,
        }
    }

    /// The deadline of the wait the connection is in, if any.
    fn read_wait(&mut self, now: Instant) -> Option<(Instant, Wait)> {
        if self.framing.head_in_progress() {
            let started = *self.head_started.get_or_insert(now);
            return Some((started + self.timeouts.header, Wait::Head));
        }
        if self.framing.in_body() {
            let since = *self.body_wait_since.get_or_insert(now);
            return Some((since + self.timeouts.body_idle, Wait::Body));
        }
        if !self.shared.is_idle() {
            // The handler or the response is still at work: not the
            // client's wait (the caller asks to be woken when it ends).
            return None;
        }
        let limit = if self.shared.served() == 0 {
            self.timeouts.header
        } else {
            self.timeouts.keep_alive_idle
        };
        Some((self.shared.idle_since() + limit, Wait::Idle))
    }

    /// Called when a read is pending: arms the timer of the current wait
    /// and answers what its expiry means.
    fn poll_read_timer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((deadline, wait)) = self.read_wait(Instant::now()) else {
            // Busy: once the response ends, the idle wait starts, and hyper
            // may not read again by itself before the client sends.
            self.shared.wake_when_idle(cx.waker());
            if self.shared.is_idle() {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        };
        if self.read_deadline != Some(deadline) {
            self.read_deadline = Some(deadline);
            self.read_timer.as_mut().reset(deadline.into());
        }
        ready!(self.read_timer.as_mut().poll(cx));
        self.read_deadline = None;
        match wait {
            Wait::Idle => {
                self.closed = true;
                Poll::Ready(Ok(()))
            }
            Wait::Head => {
                self.refuse(Rejection {
                    status: StatusCode::REQUEST_TIMEOUT,
                    kind: "REQUEST_TIMEOUT",
                    message: format!(
                        "the request head did not arrive within {} s",
                        self.timeouts.header.as_secs()
                    ),
                });
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Wait::Body => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no byte of the request body for {} s",
                    self.timeouts.body_idle.as_secs()
                ),
            ))),
        }
    }

    /// Refuses the request whose head is arriving: hyper is handed, in its
    /// place, a head that stands for the refusal (the service answers it
    /// with the API's error body), so the answer leaves after every
    /// response before it, in order and flushed, and the connection then
    /// closes. Nothing the client sends after it is read on.
    fn refuse(&mut self, r: Rejection) {
        tracing::info!(status = r.status.as_u16(), reason = %r.message, "request refused before routing");
        self.framing.refuse();
        self.shared.refuse(self.framing.heads() + 1, r);
        self.pending.extend_from_slice(REFUSAL_HEAD);
        self.refused = true;
    }
}

/// The head hyper is given for a refused request. The service recognises
/// it by its position on the connection ([`ConnShared::refusal_for`]), not
/// by its text, so a client sending the same bytes gets nothing special.
const REFUSAL_HEAD: &[u8] = b"GET /.refused HTTP/1.1\r\nhost: refused\r\nconnection: close\r\n\r\n";

/// Fails a write that has made no progress for `limit` (the deadline is
/// set by the first write that had to wait, cleared by any progress).
fn poll_write_timer(
    timer: &mut Pin<Box<Sleep>>,
    deadline: &mut Option<Instant>,
    limit: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    if deadline.is_none() {
        let d = Instant::now() + limit;
        timer.as_mut().reset(d.into());
        *deadline = Some(d);
    }
    ready!(timer.as_mut().poll(cx));
    Poll::Ready(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client took no response byte for {} s", limit.as_secs()),
    ))
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.closed {
                return Poll::Ready(Ok(()));
            }
            if this.refused {
                // The refusal's answer closes the connection; until hyper
                // does, only the idle wait applies.
                return this.poll_read_timer(cx);
            }
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Pending => return this.poll_read_timer(cx),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let n = buf.filled().len() - before;
            if n == 0 {
                // End of stream; a head held back here is simply dropped,
                // and hyper sees a clean close.
                return Poll::Ready(Ok(()));
            }
            this.body_wait_since = None;
            // Body bytes of a known length pass as they are, uncopied.
            let fast = this.framing.take_body_prefix(n);
            if fast == n {
                return Poll::Ready(Ok(()));
            }
            let result = this
                .framing
                .feed(&buf.filled()[before + fast..], &mut this.pending);
            buf.set_filled(before + fast);
            if !this.framing.head_in_progress() {
                this.head_started = None;
            } else if this.head_started.is_none() {
                this.head_started = Some(Instant::now());
            }
            if let Err(r) = result {
                this.refuse(r);
            }
            if fast > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
        // A refused request, or an answer given before its body was read
        // (a 413 or 507 decided on the declared length): the client may
        // still be sending.
        if this.refused || this.framing.in_body() {
            return this.poll_linger(cx);
        }
        Poll::Ready(Ok(()))
    }
}

impl GuardedIo {
    /// Closing while the client is still sending would reset the
    /// connection and could destroy the answer before the client reads it,
    /// so the rest is read and dropped first, for a bounded time and
    /// amount.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline = *self
            .linger_until
            .get_or_insert_with(|| Instant::now() + LINGER_TIME);
        if self.read_deadline != Some(deadline) {
            self.read_deadline = Some(deadline);
            self.read_timer.as_mut().reset(deadline.into());
        }
        let mut scratch = [0u8; 16 * 1024];
        while self.lingered < LINGER_BYTES {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.lingered += buf.filled().len();
                }
                Poll::Ready(_) => break,
                Poll::Pending => {
                    ready!(self.read_timer.as_mut().poll(cx));
                    break;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let e = ready!(poll_write_timer(
            &mut self.write_timer,
            &mut self.write_deadline,
            self.timeouts.write_idle,
            cx
        ));
        Poll::Ready(Err(e))
    }
}
