//! Which consumer gets the next message: consumer priorities (`x-priority`), round-robin among
//! equals, and single active consumer (`x-single-active-consumer`); plus the checks of the
//! queue arguments that select these behaviours.
//!
//! Selection is one pass over the consumer list (O(consumers)), allocation free.

use super::consumer::Consumer;
use crate::error::{AmqpError, AmqpResult};
use ottermq_protocol::FieldTable;
use std::sync::Arc;

/// Checks the queue arguments this module and `priority` give meaning to, as RabbitMQ does at
/// queue.declare (PRECONDITION_FAILED on a bad type or value).
pub fn check_args(args: &FieldTable, queue: &str, vhost: &str) -> AmqpResult<()> {
    super::priority::max_priority(args, queue, vhost)?;
    if let Some(v) = args.get("x-single-active-consumer") {
        if v.as_bool().is_none() {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-single-active-consumer' for queue '{queue}' in vhost '{vhost}': \
                 {{unacceptable_type,\"expected boolean\"}}"
            )));
        }
    }
    if let Some(v) = args.get("x-queue-mode") {
        if !matches!(v.as_str_bytes(), Some(b"default" | b"lazy")) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-queue-mode' for queue '{queue}' in vhost '{vhost}': \
                 {{unacceptable_value,\"expected 'default' or 'lazy'\"}}"
            )));
        }
    }
    Ok(())
}

/// Whether the queue was declared with `x-single-active-consumer` = true.
pub fn single_active(args: &FieldTable) -> bool {
    args.get("x-single-active-consumer")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Where a new consumer goes in the list. Ordinary queues keep it sorted by priority, highest
/// first, equal priorities in arrival order (round-robin order). A single-active-consumer
/// queue keeps registration order: the head is the active consumer, the next one takes over
/// when it goes.
pub fn insert_position(consumers: &[Arc<Consumer>], new: &Consumer, single_active: bool) -> usize {
    if single_active {
        consumers.len()
    } else {
        consumers.partition_point(|c| c.priority >= new.priority)
    }
}

/// The consumer that gets the next message: among those with credit, the highest priority;
/// among equal priorities the first at or after `cursor` (round-robin). With a single active
/// consumer only the head may receive. None when nobody can take a message now.
#[inline]
pub fn pick(consumers: &[Arc<Consumer>], cursor: usize, single_active: bool) -> Option<usize> {
    let n = consumers.len();
    if n == 0 {
        return None;
    }
    if single_active {
        return consumers[0].has_credit().then_some(0);
    }
    let top = consumers[0].priority;
    let mut best: Option<usize> = None;
    for i in 0..n {
        let idx = (cursor + i) % n;
        let c = &consumers[idx];
        if let Some(b) = best {
            if consumers[b].priority >= c.priority {
                continue;
            }
        }
        if c.has_credit() {
            best = Some(idx);
            if c.priority == top {
                break; // nobody outranks the top priority
            }
        }
    }
    best
}
