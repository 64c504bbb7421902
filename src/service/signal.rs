//! A wake-up for a background worker: "there is work now", so it need not
//! wait for its next tick. Wake-ups coalesce; none is lost while the worker
//! is busy (Notify keeps one permit).

use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Signal(Arc<Notify>);

impl Signal {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub async fn wait(&self) {
        self.0.notified().await;
    }
}
