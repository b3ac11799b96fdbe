//! The writer task: owns the socket's write half, flushes the outbound buffer with one write
//! per wake-up, and sends heartbeats when the connection has been quiet.

use super::ConnectionHandle;
use ottermq_protocol::encode_heartbeat;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

pub(super) async fn run(handle: Arc<ConnectionHandle>, mut wr: super::WriteHalf) {
    let out = &handle.out;
    let mut last_write = Instant::now();
    loop {
        let hb = handle.heartbeat();
        if hb > 0 {
            // RabbitMQ sends a heartbeat after half an interval without other traffic.
            let half = Duration::from_millis(hb as u64 * 500);
            tokio::select! {
                _ = out.wait() => {}
                _ = tokio::time::sleep_until(last_write + half) => {
                    if last_write.elapsed() >= half {
                        out.write(|b, _| encode_heartbeat(b));
                    }
                }
            }
        } else {
            out.wait().await;
        }
        loop {
            let data = out.take();
            if data.is_empty() {
                break;
            }
            if wr.write_all(&data).await.is_err() {
                // The peer is gone; the reader notices on its side. Stop accepting deliveries.
                out.written();
                handle.force_close("write failed");
                return;
            }
            out.written();
            last_write = Instant::now();
            if out.relieved() {
                handle.resume_consumers();
            }
        }
        if out.is_closing() {
            let _ = wr.shutdown().await;
            return;
        }
    }
}
