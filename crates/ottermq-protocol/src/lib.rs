//! AMQP 0-9-1 wire protocol for OtterMQ: frames, methods, field tables and content properties.
//! Decodes from and encodes into `bytes` buffers; no I/O.
//!
//! - `frame`: splitting a stream into frames and writing them, with hot-path encoders for
//!   deliveries that build no intermediate values.
//! - `method`: every method of the spec as a Rust value.
//! - `table`: short/long strings and field tables with every value type clients send.
//! - `properties`: basic content properties, decoded or kept raw.
//! - `error`: protocol errors with their reply codes, and the reply-code constants.

mod codec;
pub mod error;
pub mod frame;
pub mod method;
pub mod properties;
pub mod table;

pub use error::{
    reply_code, ProtocolError, CLASS_BASIC, CLASS_CHANNEL, CLASS_CONFIRM, CLASS_CONNECTION,
    CLASS_EXCHANGE, CLASS_QUEUE, CLASS_TX,
};
pub use frame::*;
pub use method::*;
pub use properties::{BasicProperties, RawProperties};
pub use table::{FieldTable, FieldValue, LongStr, ShortStr, MAX_TABLE_DEPTH};
