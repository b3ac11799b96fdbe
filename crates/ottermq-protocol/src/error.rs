//! Protocol violations, each carrying the AMQP reply code the broker closes with.

/// A protocol violation found while decoding, with the reply code to close the connection with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {text}")]
pub struct ProtocolError {
    pub code: u16,
    pub text: String,
    /// The method being decoded when the error was found (0 when not in a method).
    pub class_id: u16,
    pub method_id: u16,
}

impl ProtocolError {
    /// Malformed framing: bad frame-end, unknown frame type, oversized frame (501).
    pub fn frame(text: impl Into<String>) -> Self {
        ProtocolError {
            code: crate::reply_code::FRAME_ERROR,
            text: format!("FRAME_ERROR - {}", text.into()),
            class_id: 0,
            method_id: 0,
        }
    }

    /// A method or header payload that does not parse (502), as RabbitMQ reports a malformed
    /// method (`rabbit_binary_parser` failures surface as syntax errors).
    pub fn syntax(text: impl Into<String>) -> Self {
        ProtocolError {
            code: crate::reply_code::SYNTAX_ERROR,
            text: format!("SYNTAX_ERROR - {}", text.into()),
            class_id: 0,
            method_id: 0,
        }
    }

    /// A class or method id the protocol does not define: COMMAND_INVALID (503).
    pub fn unknown_method(class_id: u16, method_id: u16) -> Self {
        ProtocolError {
            code: crate::reply_code::COMMAND_INVALID,
            text: format!("COMMAND_INVALID - unknown method {class_id}/{method_id}"),
            class_id,
            method_id,
        }
    }

    pub(crate) fn on(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }
}

/// AMQP 0-9-1 reply codes.
pub mod reply_code {
    pub const REPLY_SUCCESS: u16 = 200;
    pub const CONTENT_TOO_LARGE: u16 = 311;
    pub const NO_ROUTE: u16 = 312;
    pub const NO_CONSUMERS: u16 = 313;
    pub const CONNECTION_FORCED: u16 = 320;
    pub const INVALID_PATH: u16 = 402;
    pub const ACCESS_REFUSED: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const RESOURCE_LOCKED: u16 = 405;
    pub const PRECONDITION_FAILED: u16 = 406;
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const COMMAND_INVALID: u16 = 503;
    pub const CHANNEL_ERROR: u16 = 504;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const RESOURCE_ERROR: u16 = 506;
    pub const NOT_ALLOWED: u16 = 530;
    pub const NOT_IMPLEMENTED: u16 = 540;
    pub const INTERNAL_ERROR: u16 = 541;
}

pub const CLASS_CONNECTION: u16 = 10;
pub const CLASS_CHANNEL: u16 = 20;
pub const CLASS_EXCHANGE: u16 = 40;
pub const CLASS_QUEUE: u16 = 50;
pub const CLASS_BASIC: u16 = 60;
pub const CLASS_CONFIRM: u16 = 85;
pub const CLASS_TX: u16 = 90;
