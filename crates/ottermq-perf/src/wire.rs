//! What the load generator writes and reads, shared by the async and the blocking loops:
//! publishes stamped with their send time, and deliveries turned into latencies and acks.

use bytes::BytesMut;
use ottermq_protocol::*;
use std::time::Instant;

/// Encodes `n` publishes into `out`, each body stamped with the time since `epoch` just
/// before it is encoded, so the latency a consumer computes starts at the send.
pub fn encode_publishes(
    out: &mut BytesMut,
    n: u64,
    epoch: Instant,
    body: &mut [u8],
    publish: &Method,
    props: &RawProperties,
    frame_max: u32,
) {
    for _ in 0..n {
        let ts = epoch.elapsed().as_nanos() as u64;
        body[..8].copy_from_slice(&ts.to_be_bytes());
        encode_method(out, 1, publish);
        encode_content(out, 1, props, body, frame_max);
    }
}

/// One consumer's view of its deliveries: latencies in microseconds, and the acks owed.
pub struct Deliveries {
    pub latencies: Vec<u32>,
    /// Acks to write, encoded (manual ack, one multiple-ack every `multi_ack` deliveries).
    pub acks: BytesMut,
    manual_ack: bool,
    multi_ack: u64,
    last_tag: u64,
    unacked: u64,
    want_body: bool,
}

impl Deliveries {
    pub fn new(manual_ack: bool, multi_ack: u64) -> Self {
        Deliveries {
            latencies: Vec::with_capacity(1 << 20),
            acks: BytesMut::new(),
            manual_ack,
            multi_ack,
            last_tag: 0,
            unacked: 0,
            want_body: false,
        }
    }

    /// Decodes every complete frame in `buf`; returns how many deliveries it held. A
    /// channel.close from the broker ends the run with its reply.
    pub fn drain(&mut self, buf: &mut BytesMut, epoch: Instant) -> anyhow::Result<u64> {
        let mut got = 0u64;
        loop {
            match decode_frame(buf, 0)? {
                Some(Frame::Method {
                    method: Method::BasicDeliver(d),
                    ..
                }) => {
                    self.last_tag = d.delivery_tag;
                    self.want_body = true;
                }
                Some(Frame::Body { payload, .. }) if self.want_body => {
                    self.want_body = false;
                    if payload.len() >= 8 {
                        let mut ts = [0u8; 8];
                        ts.copy_from_slice(&payload[..8]);
                        let sent = u64::from_be_bytes(ts);
                        let now = epoch.elapsed().as_nanos() as u64;
                        self.latencies
                            .push((now.saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
                    }
                    got += 1;
                    self.unacked += 1;
                    if self.manual_ack && self.unacked >= self.multi_ack {
                        encode_method(
                            &mut self.acks,
                            1,
                            &Method::BasicAck(BasicAck {
                                delivery_tag: self.last_tag,
                                multiple: true,
                            }),
                        );
                        self.unacked = 0;
                    }
                }
                Some(Frame::Method {
                    method: Method::ChannelClose(cl),
                    ..
                }) => {
                    anyhow::bail!("channel closed: {} {}", cl.reply_code, cl.reply_text)
                }
                Some(_) => {}
                None => return Ok(got),
            }
        }
    }
}
