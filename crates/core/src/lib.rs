//! Rallypoint's decision core: plain, deterministic Rust.
//!
//! Events in, state changes and outputs out. Nothing here knows of Kafka, RocksDB, tokio or a
//! clock; the crate's dependencies make that hold by themselves (see its `Cargo.toml`). The
//! adapters in the `rallypoint` crate read inputs, call these functions, and carry out what they
//! return.
//!
//! # Layout
//! - [`event`]: the input events feeds send, as typed values
//! - [`validate`]: field rules and authorization (nation = topic) applied at intake
//! - [`apply`](mod@apply): the fold of the journal into state, returning decisions and rejections
//! - [`rules`], [`rank`], [`optimal`]: eligibility, ranking of competing requests, and the
//!   priority-weighted optimal matching (proven against exhaustive search)
//! - [`decision`], [`tlp`]: the decisions, and who may see what of them
//! - [`picture`], [`indicator`], [`attack`]: the live threat picture, campaign correlation over
//!   normalized indicators, and the ATT&CK tactics of techniques; [`query`]: read-only views
//!   of them for the query API; [`hunt`]: a campaign's indicators as STIX patterns under
//!   OpenCTI's ids, and the warninglists that keep values out of hunts
//! - [`state`], [`store`]: typed state over a narrow key-value interface; [`working`]: the
//!   entities of a transaction, held typed until it writes them back
//! - [`reject`]: why an input was not applied

pub mod apply;
pub mod attack;
pub mod decision;
pub mod derived;
pub mod event;
pub mod hunt;
pub mod indicator;
pub mod optimal;
pub mod picture;
pub mod query;
pub mod rank;
pub mod reject;
pub mod rules;
pub mod sample;
pub mod state;
pub mod store;
pub mod tlp;
pub mod validate;
pub mod working;

pub use apply::{apply, apply_with, CoreConfig, Output};
pub use event::Event;
pub use reject::{RejectReason, Rejection};
pub use store::{MemStore, Store, StoreMut};
pub use working::Working;
