//! Publisher flow control: a queue whose consumers drain it more slowly than its publishers
//! fill it asks those publishers' connections to stop reading for a moment.
//!
//! Publishers push into a queue from their own connection task, so without this a publisher
//! that never waits takes the CPU its queue's consumers need, the ready list grows without
//! bound and delivery slows down (docs/BENCHMARKS.md, "publisher flow control"). RabbitMQ gets
//! the same effect from credit flow between its reader, channel and queue processes.
//!
//! The rule: when a publish leaves more than [`FLOW_HIGH`] messages ready and some consumer
//! took a message since the queue last engaged flow, flow engages; a publisher on another
//! connection than that consumer's then waits, before reading more from its socket, until the
//! ready list is down to [`FLOW_LOW`] or [`FLOW_MAX_WAIT`] passes. A queue nobody consumes from
//! never engages (a backlog is allowed to build; the memory alarm bounds it), nor does one whose
//! consumers stopped taking messages (after one bounded wait), and a connection is never held
//! for its own consumers, whose acks it has to read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Ready messages above which a queue with active consumers holds its publishers.
pub const FLOW_HIGH: usize = 8192;
/// Ready messages at or below which held publishers go on.
pub const FLOW_LOW: usize = 4096;
/// The longest a publisher is held at one time, whatever the consumers do.
pub const FLOW_MAX_WAIT: Duration = Duration::from_millis(100);

/// The flow state of one queue.
#[derive(Debug, Default)]
pub struct QueueFlow {
    engaged: AtomicBool,
    /// Connection of the consumer that last took a message when flow engaged: never held.
    consumer_conn: AtomicU64,
    relief: Notify,
}

impl QueueFlow {
    pub(super) fn engage(&self, consumer_conn: u64) {
        self.consumer_conn.store(consumer_conn, Ordering::Relaxed);
        self.engaged.store(true, Ordering::Release);
    }

    pub(super) fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::Acquire)
    }

    /// Whether a publisher on connection `conn` should wait before reading more.
    pub fn holds(&self, conn: u64) -> bool {
        self.is_engaged() && self.consumer_conn.load(Ordering::Relaxed) != conn
    }

    /// Lets held publishers go on (the ready list drained, or the queue went away).
    pub(super) fn release(&self) {
        if self.engaged.swap(false, Ordering::AcqRel) {
            self.relief.notify_waiters();
        }
    }

    /// Waits until flow is released or [`FLOW_MAX_WAIT`] passes.
    pub async fn wait(&self) {
        let relief = self.relief.notified();
        tokio::pin!(relief);
        // Registered before the flag is read, so a release in between is not missed.
        relief.as_mut().enable();
        if self.is_engaged() {
            let _ = tokio::time::timeout(FLOW_MAX_WAIT, relief).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_other_connections_only_while_engaged() {
        let f = QueueFlow::default();
        assert!(!f.holds(1));
        f.engage(7);
        assert!(f.holds(1), "a publisher on another connection waits");
        assert!(!f.holds(7), "the consumer's own connection is never held");
        f.release();
        assert!(!f.holds(1));
    }

    async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("timed out")
    }

    #[tokio::test]
    async fn a_held_publisher_goes_on_at_release_or_after_the_bound() {
        let f = std::sync::Arc::new(QueueFlow::default());
        within(f.wait()).await; // not engaged: no wait
        f.engage(7);
        within(f.wait()).await; // never released: the bound ends it
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.wait().await }
        });
        tokio::task::yield_now().await;
        f.release();
        within(waiter).await.expect("waiter");
        assert!(!f.is_engaged());
    }
}
