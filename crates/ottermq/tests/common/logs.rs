//! The broker's log as one test sees it, so a test can assert the line an operator reads for
//! each refusal, not only the reply code the client gets.
//!
//! `capture()` installs a fmt subscriber as the *thread's* default (not the process's), writing
//! into a buffer. `#[tokio::test]` runs each test on its own thread with a current-thread
//! runtime, so every task of the in-process broker started by that test is polled on that
//! thread and logs there, while the tests running in parallel on other threads, with their own
//! brokers, log elsewhere: no line from another test can satisfy an assertion. `capture()`
//! refuses a multi-thread runtime, where that would not hold.

use super::WAIT;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::subscriber::DefaultGuard;

/// The buffer the subscriber writes into.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

/// The captured log; capture stops when it is dropped.
pub struct Logs {
    sink: Sink,
    _guard: DefaultGuard,
}

/// Starts capturing this test's log at the broker's default level (info). Call it before
/// starting the broker.
pub fn capture() -> Logs {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread,
        "log capture is per thread: it needs a current-thread runtime"
    );
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    Logs {
        sink,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        let b = self.sink.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Waits (at most `WAIT`) for a line holding every one of `parts` and returns it; the
    /// broker may log a refusal just after the client has seen it, so this polls rather than
    /// reading once. Panics with the whole log when no line matches.
    pub async fn line_with(&self, parts: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.text();
            if let Some(l) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.to_string();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("no log line with {parts:?}; the log:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
