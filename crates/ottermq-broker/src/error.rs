//! AMQP exceptions raised while handling a method.
//!
//! The spec splits failures into channel exceptions (only the channel closes) and connection
//! exceptions (the whole connection closes). Which one applies is decided by the reply code, as
//! RabbitMQ does: 403, 404, 405 and 406 close the channel; the 5xx codes close the connection.

use ottermq_protocol::{reply_code, ProtocolError};

/// A failure that the broker reports to the client with a close method and a reply code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    /// AMQP reply code (404, 406, 501 ...).
    pub code: u16,
    /// Reply text, already prefixed with the code's name as RabbitMQ does ("NOT_FOUND - ...").
    pub text: String,
    /// Class and method of the method that failed (0 when not caused by a method).
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    fn with_code(code: u16, detail: impl AsRef<str>) -> Self {
        AmqpError {
            code,
            text: format!("{} - {}", code_name(code), detail.as_ref()),
            class_id: 0,
            method_id: 0,
        }
    }

    pub fn not_found(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::NOT_FOUND, detail)
    }
    pub fn access_refused(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::ACCESS_REFUSED, detail)
    }
    pub fn resource_locked(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::RESOURCE_LOCKED, detail)
    }
    pub fn precondition_failed(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::PRECONDITION_FAILED, detail)
    }
    pub fn frame_error(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::FRAME_ERROR, detail)
    }
    pub fn syntax_error(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::SYNTAX_ERROR, detail)
    }
    pub fn command_invalid(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::COMMAND_INVALID, detail)
    }
    pub fn channel_error(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::CHANNEL_ERROR, detail)
    }
    pub fn unexpected_frame(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::UNEXPECTED_FRAME, detail)
    }
    pub fn resource_error(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::RESOURCE_ERROR, detail)
    }
    pub fn not_allowed(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::NOT_ALLOWED, detail)
    }
    pub fn not_implemented(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::NOT_IMPLEMENTED, detail)
    }
    pub fn internal_error(detail: impl AsRef<str>) -> Self {
        Self::with_code(reply_code::INTERNAL_ERROR, detail)
    }

    /// Records which method failed, for the class-id / method-id fields of the close.
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// True when this error must close the whole connection rather than one channel.
    pub fn is_connection_error(&self) -> bool {
        !matches!(
            self.code,
            reply_code::CONTENT_TOO_LARGE
                | reply_code::NO_ROUTE
                | reply_code::NO_CONSUMERS
                | reply_code::ACCESS_REFUSED
                | reply_code::NOT_FOUND
                | reply_code::RESOURCE_LOCKED
                | reply_code::PRECONDITION_FAILED
        )
    }
}

impl From<ProtocolError> for AmqpError {
    fn from(e: ProtocolError) -> Self {
        let name = code_name(e.code);
        let text = if e.text.starts_with(name) {
            e.text
        } else {
            format!("{name} - {}", e.text)
        };
        AmqpError {
            code: e.code,
            text,
            class_id: e.class_id,
            method_id: e.method_id,
        }
    }
}

impl std::fmt::Display for AmqpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl std::error::Error for AmqpError {}

/// The constant name RabbitMQ puts in front of a reply text.
pub fn code_name(code: u16) -> &'static str {
    match code {
        reply_code::REPLY_SUCCESS => "OK",
        reply_code::CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        reply_code::NO_ROUTE => "NO_ROUTE",
        reply_code::NO_CONSUMERS => "NO_CONSUMERS",
        reply_code::CONNECTION_FORCED => "CONNECTION_FORCED",
        reply_code::INVALID_PATH => "INVALID_PATH",
        reply_code::ACCESS_REFUSED => "ACCESS_REFUSED",
        reply_code::NOT_FOUND => "NOT_FOUND",
        reply_code::RESOURCE_LOCKED => "RESOURCE_LOCKED",
        reply_code::PRECONDITION_FAILED => "PRECONDITION_FAILED",
        reply_code::FRAME_ERROR => "FRAME_ERROR",
        reply_code::SYNTAX_ERROR => "SYNTAX_ERROR",
        reply_code::COMMAND_INVALID => "COMMAND_INVALID",
        reply_code::CHANNEL_ERROR => "CHANNEL_ERROR",
        reply_code::UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        reply_code::RESOURCE_ERROR => "RESOURCE_ERROR",
        reply_code::NOT_ALLOWED => "NOT_ALLOWED",
        reply_code::NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        reply_code::INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => "ERROR",
    }
}

pub type AmqpResult<T> = Result<T, AmqpError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_and_connection_codes_are_split_as_rabbitmq_does() {
        assert!(!AmqpError::not_found("x").is_connection_error());
        assert!(!AmqpError::precondition_failed("x").is_connection_error());
        assert!(AmqpError::channel_error("x").is_connection_error());
        assert!(AmqpError::frame_error("x").is_connection_error());
        assert_eq!(
            AmqpError::not_found("no queue 'q'").text,
            "NOT_FOUND - no queue 'q'"
        );
    }
}
