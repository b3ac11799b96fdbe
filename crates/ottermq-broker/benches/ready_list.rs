//! Cost of the ready list on the publish / deliver path: the plain `VecDeque` the queue used
//! before priority queues, the `ReadyList::Fifo` an ordinary queue uses now (the enum's match
//! is the only difference), and a priority queue's per-level lists for comparison.
//!
//! `cargo bench -p ottermq-broker --bench ready_list -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ottermq_broker::message::{Message, QueuedMessage};
use ottermq_broker::queue::priority::ReadyList;
use ottermq_protocol::{BasicProperties, ShortStr};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

const N: usize = 1024;

fn messages(priorities: bool) -> Vec<QueuedMessage> {
    let now = Instant::now();
    (0..N)
        .map(|i| QueuedMessage {
            seq: i as u64,
            message: Message {
                exchange: ShortStr::from(""),
                routing_key: ShortStr::from("q"),
                properties: BasicProperties {
                    priority: priorities.then_some((i % 10) as u8),
                    ..Default::default()
                }
                .to_raw(),
                body: bytes::Bytes::from_static(b"0123456789abcdef"),
                received_at: now,
                trace: None,
            },
            redelivered: false,
            enqueued_at: now,
            persist_id: 0,
            expires_at: None,
            body_at: Default::default(),
            paged: None,
            delivery_count: 0,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let plain = messages(false);
    let mut g = c.benchmark_group("push_pop_1024");
    g.bench_function("vecdeque (before)", |b| {
        let mut d: VecDeque<QueuedMessage> = VecDeque::with_capacity(N);
        b.iter_batched(
            || plain.clone(),
            |ms| {
                for m in ms {
                    d.push_back(m);
                }
                while let Some(m) = d.pop_front() {
                    black_box(m);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("readylist fifo (now)", |b| {
        let mut r = ReadyList::new(None);
        b.iter_batched(
            || plain.clone(),
            |ms| {
                for m in ms {
                    r.push_back(m);
                }
                while let Some(m) = r.pop_front() {
                    black_box(m);
                }
            },
            BatchSize::SmallInput,
        )
    });
    let prio = messages(true);
    g.bench_function("readylist priority max 10", |b| {
        let mut r = ReadyList::new(Some(10));
        b.iter_batched(
            || prio.clone(),
            |ms| {
                for m in ms {
                    r.push_back(m);
                }
                while let Some(m) = r.pop_front() {
                    black_box(m);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
