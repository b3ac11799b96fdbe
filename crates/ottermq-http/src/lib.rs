//! The management HTTP server (work in progress: see the metrics issue).
pub mod auth;
pub mod error;
pub mod state;
