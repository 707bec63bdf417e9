//! Rallypoint: the coordination processor of an allied rapid response cyber capability.
//!
//! # Layout
//! - `rallypoint_core` (crate `crates/core`): the pure, deterministic decision core
//! - [`codec`]: Avro single-object, Confluent and JSON framings of events and decisions
//! - [`registry`]: the Schema Registry client; registers the schemas, looks up record ids
//! - [`store`]: RocksDB state, and the overlay that keeps uncommitted changes out of it
//! - [`kafka`]: topics, the intake and coordinator stages, transactions
//! - [`telemetry`]: Prometheus metrics and logs
//! - [`gate`]: the audience gate, which frames every published view as a Kafka record
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` on one listener, the query API on its own;
//!   [`auth`]: who may ask the query API what; [`status`]: what each stage is doing (active,
//!   standing by, restoring)
//! - [`config`]: layered, validated configuration; [`stop`]: stopping by signal
//! - [`fault`]: kill points for crash tests (empty unless built with `fault-injection`)
//! - [`cli`]: the `rallypoint` subcommands, [`simulate`]: the multi-nation feed, and
//!   [`replay`]: the auditor's check of emitted decisions against the journal

pub mod auth;
pub mod cli;
pub mod codec;
pub mod config;
pub mod fault;
pub mod gate;
pub mod http;
pub mod implied;
pub mod kafka;
pub mod query;
pub mod registry;
pub mod replay;
pub mod simulate;
pub mod status;
pub mod stop;
pub mod store;
pub mod telemetry;
