//! What one connection's parts share: the I/O wrapper (which enforces the
//! timeouts), the service (which sees requests start and end) and the
//! registry (which may evict the connection when the server is full).

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

use super::framing::Rejection;
use crate::metrics::Handles;

pub struct ConnShared {
    pub id: u64,
    /// Requests dispatched whose response has not been sent whole yet.
    in_flight: AtomicU32,
    /// Responses sent whole on this connection.
    served: AtomicU64,
    /// When the connection last became idle (accepted, or a response ended).
    idle_since: Mutex<Instant>,
    /// The I/O side waiting for the connection to go idle (to answer a
    /// refused pipelined request after the responses before it).
    idle_waker: Mutex<Option<Waker>>,
    evict: Notify,
    /// Requests dispatched so far on this connection.
    dispatched: AtomicU64,
    /// A request refused before hyper saw it: its position among the
    /// connection's requests (from 1), and why.
    refusal: Mutex<Option<(u64, Rejection)>>,
}

impl ConnShared {
    pub fn new(id: u64) -> Arc<Self> {
        Arc::new(Self {
            id,
            in_flight: AtomicU32::new(0),
            served: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            idle_waker: Mutex::new(None),
            evict: Notify::new(),
            dispatched: AtomicU64::new(0),
            refusal: Mutex::new(None),
        })
    }

    /// No request is being answered: closing it loses nobody's work.
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }

    pub fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes `waker` once the connection is idle.
    pub fn wake_when_idle(&self, waker: &Waker) {
        *self.idle_waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
    }

    /// Marks a request dispatched; the guard ends it when dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Records that request number `index` is refused.
    pub fn refuse(&self, index: u64, why: Rejection) {
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some((index, why));
    }

    /// Counts a dispatched request; answers the refusal it stands for, if
    /// it is the refused one.
    pub fn dispatch(&self) -> Option<Rejection> {
        let n = self.dispatched.fetch_add(1, Ordering::AcqRel) + 1;
        let mut refusal = self.refusal.lock().unwrap_or_else(|p| p.into_inner());
        match &*refusal {
            Some((index, _)) if *index == n => refusal.take().map(|(_, r)| r),
            _ => None,
        }
    }

    pub fn evict(&self) {
        self.evict.notify_one();
    }

    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

/// A request being answered; dropped when its response body has been sent
/// whole (or the connection died).
pub struct InFlight(Arc<ConnShared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        *s.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        s.served.fetch_add(1, Ordering::AcqRel);
        if s.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(w) = s
                .idle_waker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
        {
            w.wake();
        }
    }
}

/// A request counted in the in-flight gauge until its response has been
/// sent whole, whose body bytes are counted as they go out.
pub struct Metered(&'static Handles);

impl Metered {
    /// None when metrics are not recorded.
    pub fn begin() -> Option<Self> {
        let handles = crate::metrics::handles()?;
        handles.in_flight.increment(1.0);
        Some(Self(handles))
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

/// A response body that holds its request's [`InFlight`] (and
/// [`Metered`], when metrics are recorded) until hyper has taken its last
/// frame (hyper drops the body then).
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
    metered: Option<Metered>,
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, in_flight: InFlight, metered: Option<Metered>) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
            metered,
        }
    }
}

impl<B> Body for TrackedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(Metered(handles)) = &self.metered
            && let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            handles.bytes_sent.increment(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
