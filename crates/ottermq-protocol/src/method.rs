//! Every AMQP 0-9-1 method as a Rust value, with its decoder and encoder.
//!
//! The table at the bottom of this file is the spec's method list; the macro turns each row
//! into a struct (or a unit variant for methods without fields), a decode arm and an encode
//! arm. Reserved fields (the old `ticket`, empty reserved strings and bits) are read and
//! dropped, and written as zeros, so they never appear in the API.

use crate::codec::{Decoder, Encoder};
use crate::error::ProtocolError;
use crate::table::{FieldTable, LongStr, ShortStr};
use bytes::{Bytes, BytesMut};

macro_rules! field_type {
    (octet) => {
        u8
    };
    (short) => {
        u16
    };
    (long) => {
        u32
    };
    (longlong) => {
        u64
    };
    (shortstr) => {
        ShortStr
    };
    (longstr) => {
        LongStr
    };
    (table) => {
        FieldTable
    };
    (bit) => {
        bool
    };
}

macro_rules! read_field {
    ($d:ident, octet) => {
        $d.octet()?
    };
    ($d:ident, short) => {
        $d.u16()?
    };
    ($d:ident, long) => {
        $d.u32()?
    };
    ($d:ident, longlong) => {
        $d.u64()?
    };
    ($d:ident, shortstr) => {
        $d.shortstr()?
    };
    ($d:ident, longstr) => {
        $d.longstr()?
    };
    ($d:ident, table) => {
        $d.table()?
    };
    ($d:ident, bit) => {
        $d.bit()?
    };
}

macro_rules! write_field {
    ($e:ident, octet, $v:expr) => {
        $e.octet($v)
    };
    ($e:ident, short, $v:expr) => {
        $e.u16($v)
    };
    ($e:ident, long, $v:expr) => {
        $e.u32($v)
    };
    ($e:ident, longlong, $v:expr) => {
        $e.u64($v)
    };
    ($e:ident, shortstr, $v:expr) => {
        $e.shortstr(&$v)
    };
    ($e:ident, longstr, $v:expr) => {
        $e.longstr(&$v)
    };
    ($e:ident, table, $v:expr) => {
        $e.table(&$v)
    };
    ($e:ident, bit, $v:expr) => {
        $e.bit($v)
    };
}

macro_rules! skip_reserved {
    ($d:ident, short) => {
        let _ = $d.u16()?;
    };
    ($d:ident, shortstr) => {
        let _ = $d.shortstr()?;
    };
    ($d:ident, longstr) => {
        let _ = $d.longstr()?;
    };
    ($d:ident, bit) => {
        let _ = $d.bit()?;
    };
}

macro_rules! write_reserved {
    ($e:ident, short) => {
        $e.u16(0)
    };
    ($e:ident, shortstr) => {
        $e.shortstr(&ShortStr::default())
    };
    ($e:ident, longstr) => {
        $e.longstr(&LongStr::default())
    };
    ($e:ident, bit) => {
        $e.bit(false)
    };
}

macro_rules! methods {
    (
        units { $( $uv:ident = ($uc:literal, $um:literal, $un:literal) [$($ur:ident),*] ),* $(,)? }
        structs { $( $sv:ident = ($sc:literal, $sm:literal, $sn:literal) [$($pre:ident),*] { $( $f:ident : $k:ident ),* $(,)? } [$($post:ident),*] ),* $(,)? }
    ) => {
        $(
            #[doc = concat!("`", $sn, "`")]
            #[derive(Clone, Debug, PartialEq, Default)]
            pub struct $sv { $( pub $f: field_type!($k), )* }
        )*

        /// One AMQP method, decoded.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Method {
            $( #[doc = concat!("`", $un, "`")] $uv, )*
            $( #[doc = concat!("`", $sn, "`")] $sv($sv), )*
        }

        impl Method {
            pub fn class_id(&self) -> u16 {
                match self { $( Method::$uv => $uc, )* $( Method::$sv(_) => $sc, )* }
            }
            pub fn method_id(&self) -> u16 {
                match self { $( Method::$uv => $um, )* $( Method::$sv(_) => $sm, )* }
            }
            /// The spec's name, e.g. `basic.publish`, for error texts and logs.
            pub fn name(&self) -> &'static str {
                match self { $( Method::$uv => $un, )* $( Method::$sv(_) => $sn, )* }
            }

            /// Decodes a method frame's payload (starting at class-id).
            pub fn decode(payload: Bytes) -> Result<Method, ProtocolError> {
                let mut d = Decoder::new(payload);
                let class = d.u16()?;
                let method = d.u16()?;
                // Arguments that do not parse: RabbitMQ answers FRAME_ERROR "cannot decode"
                // (checked against RabbitMQ 3.10), so the same code is used here.
                Self::decode_args(class, method, &mut d).map_err(|e| {
                    if e.code == crate::reply_code::SYNTAX_ERROR {
                        ProtocolError::frame(format!("cannot decode {}", e.text)).on(class, method)
                    } else {
                        e.on(class, method)
                    }
                })
            }

            fn decode_args(class: u16, method: u16, d: &mut Decoder) -> Result<Method, ProtocolError> {
                Ok(match (class, method) {
                    $( ($uc, $um) => { $( skip_reserved!(d, $ur); )* Method::$uv } )*
                    $( ($sc, $sm) => {
                        $( skip_reserved!(d, $pre); )*
                        let v = $sv { $( $f: read_field!(d, $k), )* };
                        $( skip_reserved!(d, $post); )*
                        Method::$sv(v)
                    } )*
                    _ => return Err(ProtocolError::unknown_method(class, method)),
                })
            }

            /// Writes the method payload (class-id, method-id, arguments).
            pub fn encode(&self, out: &mut BytesMut) {
                let mut e = Encoder::new(out);
                e.u16(self.class_id());
                e.u16(self.method_id());
                match self {
                    $( Method::$uv => { $( write_reserved!(e, $ur); )* } )*
                    $( Method::$sv(_v) => {
                        $( write_reserved!(e, $pre); )*
                        $( write_field!(e, $k, _v.$f); )*
                        $( write_reserved!(e, $post); )*
                    } )*
                }
            }
        }
    };
}

methods! {
    units {
        ConnectionCloseOk = (10, 51, "connection.close-ok") [],
        ConnectionUnblocked = (10, 61, "connection.unblocked") [],
        ConnectionUpdateSecretOk = (10, 71, "connection.update-secret-ok") [],
        ConnectionOpenOk = (10, 41, "connection.open-ok") [shortstr],
        ChannelOpen = (20, 10, "channel.open") [shortstr],
        ChannelOpenOk = (20, 11, "channel.open-ok") [longstr],
        ChannelCloseOk = (20, 41, "channel.close-ok") [],
        ExchangeDeclareOk = (40, 11, "exchange.declare-ok") [],
        ExchangeDeleteOk = (40, 21, "exchange.delete-ok") [],
        ExchangeBindOk = (40, 31, "exchange.bind-ok") [],
        ExchangeUnbindOk = (40, 51, "exchange.unbind-ok") [],
        QueueBindOk = (50, 21, "queue.bind-ok") [],
        QueueUnbindOk = (50, 51, "queue.unbind-ok") [],
        BasicQosOk = (60, 11, "basic.qos-ok") [],
        BasicGetEmpty = (60, 72, "basic.get-empty") [shortstr],
        BasicRecoverOk = (60, 111, "basic.recover-ok") [],
        ConfirmSelectOk = (85, 11, "confirm.select-ok") [],
        TxSelect = (90, 10, "tx.select") [],
        TxSelectOk = (90, 11, "tx.select-ok") [],
        TxCommit = (90, 20, "tx.commit") [],
        TxCommitOk = (90, 21, "tx.commit-ok") [],
        TxRollback = (90, 30, "tx.rollback") [],
        TxRollbackOk = (90, 31, "tx.rollback-ok") [],
    }
    structs {
        ConnectionStart = (10, 10, "connection.start") [] {
            version_major: octet, version_minor: octet, server_properties: table, mechanisms: longstr, locales: longstr,
        } [],
        ConnectionStartOk = (10, 11, "connection.start-ok") [] {
            client_properties: table, mechanism: shortstr, response: longstr, locale: shortstr,
        } [],
        ConnectionSecure = (10, 20, "connection.secure") [] { challenge: longstr } [],
        ConnectionSecureOk = (10, 21, "connection.secure-ok") [] { response: longstr } [],
        ConnectionTune = (10, 30, "connection.tune") [] { channel_max: short, frame_max: long, heartbeat: short } [],
        ConnectionTuneOk = (10, 31, "connection.tune-ok") [] { channel_max: short, frame_max: long, heartbeat: short } [],
        ConnectionOpen = (10, 40, "connection.open") [] { virtual_host: shortstr } [shortstr, bit],
        ConnectionClose = (10, 50, "connection.close") [] {
            reply_code: short, reply_text: shortstr, class_id: short, method_id: short,
        } [],
        ConnectionBlocked = (10, 60, "connection.blocked") [] { reason: shortstr } [],
        ConnectionUpdateSecret = (10, 70, "connection.update-secret") [] { new_secret: longstr, reason: shortstr } [],
        ChannelFlow = (20, 20, "channel.flow") [] { active: bit } [],
        ChannelFlowOk = (20, 21, "channel.flow-ok") [] { active: bit } [],
        ChannelClose = (20, 40, "channel.close") [] {
            reply_code: short, reply_text: shortstr, class_id: short, method_id: short,
        } [],
        ExchangeDeclare = (40, 10, "exchange.declare") [short] {
            exchange: shortstr, kind: shortstr, passive: bit, durable: bit, auto_delete: bit, internal: bit,
            nowait: bit, arguments: table,
        } [],
        ExchangeDelete = (40, 20, "exchange.delete") [short] { exchange: shortstr, if_unused: bit, nowait: bit } [],
        ExchangeBind = (40, 30, "exchange.bind") [short] {
            destination: shortstr, source: shortstr, routing_key: shortstr, nowait: bit, arguments: table,
        } [],
        ExchangeUnbind = (40, 40, "exchange.unbind") [short] {
            destination: shortstr, source: shortstr, routing_key: shortstr, nowait: bit, arguments: table,
        } [],
        QueueDeclare = (50, 10, "queue.declare") [short] {
            queue: shortstr, passive: bit, durable: bit, exclusive: bit, auto_delete: bit, nowait: bit, arguments: table,
        } [],
        QueueDeclareOk = (50, 11, "queue.declare-ok") [] { queue: shortstr, message_count: long, consumer_count: long } [],
        QueueBind = (50, 20, "queue.bind") [short] {
            queue: shortstr, exchange: shortstr, routing_key: shortstr, nowait: bit, arguments: table,
        } [],
        QueuePurge = (50, 30, "queue.purge") [short] { queue: shortstr, nowait: bit } [],
        QueuePurgeOk = (50, 31, "queue.purge-ok") [] { message_count: long } [],
        QueueDelete = (50, 40, "queue.delete") [short] { queue: shortstr, if_unused: bit, if_empty: bit, nowait: bit } [],
        QueueDeleteOk = (50, 41, "queue.delete-ok") [] { message_count: long } [],
        QueueUnbind = (50, 50, "queue.unbind") [short] {
            queue: shortstr, exchange: shortstr, routing_key: shortstr, arguments: table,
        } [],
        BasicQos = (60, 10, "basic.qos") [] { prefetch_size: long, prefetch_count: short, global: bit } [],
        BasicConsume = (60, 20, "basic.consume") [short] {
            queue: shortstr, consumer_tag: shortstr, no_local: bit, no_ack: bit, exclusive: bit, nowait: bit,
            arguments: table,
        } [],
        BasicConsumeOk = (60, 21, "basic.consume-ok") [] { consumer_tag: shortstr } [],
        BasicCancel = (60, 30, "basic.cancel") [] { consumer_tag: shortstr, nowait: bit } [],
        BasicCancelOk = (60, 31, "basic.cancel-ok") [] { consumer_tag: shortstr } [],
        BasicPublish = (60, 40, "basic.publish") [short] {
            exchange: shortstr, routing_key: shortstr, mandatory: bit, immediate: bit,
        } [],
        BasicReturn = (60, 50, "basic.return") [] {
            reply_code: short, reply_text: shortstr, exchange: shortstr, routing_key: shortstr,
        } [],
        BasicDeliver = (60, 60, "basic.deliver") [] {
            consumer_tag: shortstr, delivery_tag: longlong, redelivered: bit, exchange: shortstr, routing_key: shortstr,
        } [],
        BasicGet = (60, 70, "basic.get") [short] { queue: shortstr, no_ack: bit } [],
        BasicGetOk = (60, 71, "basic.get-ok") [] {
            delivery_tag: longlong, redelivered: bit, exchange: shortstr, routing_key: shortstr, message_count: long,
        } [],
        BasicAck = (60, 80, "basic.ack") [] { delivery_tag: longlong, multiple: bit } [],
        BasicReject = (60, 90, "basic.reject") [] { delivery_tag: longlong, requeue: bit } [],
        BasicRecoverAsync = (60, 100, "basic.recover-async") [] { requeue: bit } [],
        BasicRecover = (60, 110, "basic.recover") [] { requeue: bit } [],
        BasicNack = (60, 120, "basic.nack") [] { delivery_tag: longlong, multiple: bit, requeue: bit } [],
        ConfirmSelect = (85, 10, "confirm.select") [] { nowait: bit } [],
    }
}

impl Method {
    /// Methods followed by a content header and body.
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_)
                | Method::BasicReturn(_)
                | Method::BasicDeliver(_)
                | Method::BasicGetOk(_)
        )
    }
}
