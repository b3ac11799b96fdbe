//! Recovery's memory, measured by the allocator: replaying a message log many times larger
//! than the bound never has more than the bound allocated at once. (Its own test binary: the
//! counting allocator sees only this test.)

use bytes::Bytes;
use ottermq_broker::message::Message;
use ottermq_protocol::{BasicProperties, ShortStr};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only
// arithmetic on atomics and never touch the memory itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = NOW.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        NOW.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn replaying_48_mib_of_messages_never_holds_more_than_2_mib() {
    const N: u64 = 12_000;
    const SIZE: usize = 4096;
    let root = std::env::temp_dir().join(format!("ottermq-recovery-mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut issues = Vec::new();
    let v = ottermq_broker::store::open_vhost(&root, "/", 4 << 20, &mut issues).expect("open");
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .to_raw();
    let mut ids = Vec::new();
    for i in 0..N {
        let m = Message {
            exchange: ShortStr::from(""),
            routing_key: ShortStr::from("q"),
            properties: props.clone(),
            body: Bytes::from(vec![(i % 251) as u8; SIZE]),
            received_at: std::time::Instant::now(),
            trace: None,
        };
        ids.push(v.store.log.append_publish(b"q", &m).0);
    }
    for id in ids.iter().step_by(4) {
        v.store.log.settle(*id);
    }
    v.store.log.close();
    let dir = v.store.dir.join("msgs");
    drop(v);
    drop(ids);

    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let log = ottermq_broker::store::recovery::scan(&dir, false).expect("scan");
    let mut got = 0u64;
    let mut bytes = 0u64;
    log.messages(|m| {
        got += 1;
        bytes += m.body.len() as u64;
    })
    .expect("messages");
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(got, N - N.div_ceil(4));
    assert!(bytes > 32 << 20, "{bytes} bytes recovered");
    assert!(
        peak < 2 << 20,
        "peak {peak} bytes allocated while recovering {bytes}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
