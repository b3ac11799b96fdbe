//! Most of the integration tests, in one binary: each test binary links the whole dependency
//! tree, so one binary instead of nineteen saves minutes of linking on a two-core machine.
//! Tests that measure the process itself (file descriptors, RSS), kill or signal a broker
//! process, or time rates stay binaries of their own next to this one, so nothing else runs
//! in their process.

#[path = "../common/mod.rs"]
mod common;

mod amqprs_client;
mod basic;
mod connection;
mod dead_letter;
mod durability;
mod exchanges_queues;
mod flow_control;
mod http_actions;
mod http_api;
mod http_writes;
mod limits;
mod parity_consumers;
mod permissions;
mod priorities;
mod prometheus_metrics;
mod quorum;
mod raw_frames;
mod tls;
mod tracing_otlp;
