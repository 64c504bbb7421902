//! The owner of a server's background tasks: each is spawned with the
//! stop token it must watch, and shutting down cancels that token and waits
//! for every task to return, so none is cut in the middle of a catalog
//! write or left holding a lease or a claim when the process exits.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blobs::ByteStream;

/// A set of tasks that stop together.
#[derive(Clone, Default)]
pub struct Background {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token the tasks watch: cancelled when they are asked to stop.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task`, which must return soon after its token is cancelled.
    pub fn spawn<F, T>(&self, task: T)
    where
        T: FnOnce(CancellationToken) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task(self.stop.clone()));
    }

    /// Asks every task to stop and waits for them, for `grace` at most.
    /// Returns false when some were still running then (they are left to
    /// the runtime's end).
    pub async fn stop(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// Waits `period`, or less if `stop` is cancelled first: true when the
/// caller should go on, false when it should return.
pub async fn pause(stop: &CancellationToken, period: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(period) => true,
    }
}

/// `body`, cut with an error once `stop` is cancelled: a write in progress
/// then fails the way a dropped connection does, and its caller's error
/// path cleans up (the partial blob, the upload intent) as it always does.
pub fn cut_on_stop(body: ByteStream, stop: CancellationToken) -> ByteStream {
    Box::pin(futures::stream::unfold(
        Some((body, stop)),
        |state| async move {
            let (mut body, stop) = state?;
            tokio::select! {
                // The stop first: a fast body would otherwise never yield.
                biased;
                _ = stop.cancelled() => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::Interrupted,
                        "the server is stopping",
                    )),
                    None,
                )),
                item = body.next() => item.map(|i| (i, Some((body, stop)))),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_task_to_finish_its_step() {
        let bg = Background::new();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        bg.spawn(|stop| async move {
            stop.cancelled().await;
            // A step that outlives the cancellation, like a last write.
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, Ordering::SeqCst);
        });
        assert!(bg.stop(Duration::from_secs(10)).await);
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_token_is_left_after_the_grace() {
        let bg = Background::new();
        bg.spawn(|_| std::future::pending());
        assert!(!bg.stop(Duration::from_millis(20)).await);
    }

    #[tokio::test]
    async fn a_body_is_cut_with_an_error_on_stop_and_ends() {
        let stop = CancellationToken::new();
        let endless = futures::stream::repeat_with(|| Ok(bytes::Bytes::from_static(b"x")));
        let mut body = cut_on_stop(Box::pin(endless), stop.clone());
        assert!(body.next().await.unwrap().is_ok());
        stop.cancel();
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn pause_ends_early_on_stop() {
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(!pause(&stop, Duration::from_secs(3600)).await);
    }
}
