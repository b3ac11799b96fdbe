//! The expiry timer: wakes a queue at the deadline of its head message (message TTL) or of its
//! `x-expires`, as RabbitMQ arms one timer per queue process for its head's expiry.
//!
//! One thread per process keeps a heap of (deadline, queue) entries and sleeps on a condition
//! variable until the earliest; a queue adds an entry only when its earliest deadline moves
//! earlier than the one it already armed (see `Queue::arm_head`), never per message, and a
//! queue without TTL or expiry never touches it. Entries hold a `Weak<Queue>`: a deleted queue
//! just makes its entry a no-op. A thread rather than a tokio task so that deadlines do not
//! depend on which runtime a broker (or a test) happens to run in, and so that one sleeper
//! serves every broker in the process.

use super::Queue;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Once, OnceLock, Weak};
use std::time::Instant;

struct Entry {
    at: Instant,
    queue: Weak<Queue>,
}

// Ordered by deadline only, reversed: the heap's top is the earliest.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

#[derive(Default)]
struct Timer {
    heap: Mutex<BinaryHeap<Entry>>,
    wake: Condvar,
}

static TIMER: OnceLock<Timer> = OnceLock::new();
static START: Once = Once::new();

fn timer() -> &'static Timer {
    let t = TIMER.get_or_init(Timer::default);
    START.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("ottermq-expiry".into())
            .spawn(move || run(t));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the queue expiry timer thread");
        }
    });
    t
}

/// Asks for `queue.on_timer()` to run at `at` (or right away when it is past).
pub(super) fn schedule(at: Instant, queue: &Arc<Queue>) {
    let t = timer();
    let mut heap = t.heap.lock();
    let wakes_sooner = heap.peek().is_none_or(|e| at < e.at);
    heap.push(Entry {
        at,
        queue: Arc::downgrade(queue),
    });
    drop(heap);
    if wakes_sooner {
        t.wake.notify_one();
    }
}

fn run(t: &'static Timer) {
    let mut heap = t.heap.lock();
    loop {
        let Some(at) = heap.peek().map(|e| e.at) else {
            t.wake.wait(&mut heap);
            continue;
        };
        if at > Instant::now() {
            t.wake.wait_until(&mut heap, at);
            continue;
        }
        let Some(e) = heap.pop() else { continue };
        // The queue's work (dead-lettering, deletion) runs without the heap lock, so queues
        // may arm new entries meanwhile.
        MutexGuard::unlocked(&mut heap, || {
            if let Some(q) = e.queue.upgrade() {
                q.on_timer();
            }
        });
    }
}
