//! Kafka adapters, one concept per file: topic names ([`topics`]), client settings
//! ([`client`]), creating topics ([`admin`]), the transactional producer ([`txn`]), what a
//! stage's round can end with and what happens next ([`stage`]), the batch and the round both
//! stages run ([`batch`]), committed offsets ([`offsets`]), retried calls ([`retry`]), the
//! watchdog over every blocking call ([`watchdog`]), client callbacks ([`context`]), dead
//! letters ([`dead_letter`]), no transaction left open where a stage writes ([`settled`]),
//! how state changes travel on the changelog ([`changelog`]), changelog restore
//! ([`restore`]), and the two stages, [`intake`]
//! and [`coordinator`].
//!
//! Each stage runs its poll-process-commit loop on a thread of its own with a `BaseConsumer`,
//! so the consumer is polled no matter how slow the work is, and rebalance callbacks run where
//! the loop can see them.

pub mod admin;
pub mod batch;
pub mod changelog;
pub mod client;
pub mod context;
pub mod coordinator;
pub mod dead_letter;
pub mod intake;
pub mod offsets;
pub mod restore;
pub mod retry;
pub mod settled;
pub mod stage;
pub mod topics;
pub mod txn;
pub mod watchdog;

pub use batch::{abort, commit_batch, poll_batch, BatchOffsets, Handled, Polled};
pub use client::{client_config, consumer_config};
pub use dead_letter::{HDR_INPUT_TS, HDR_SOURCE};
pub use offsets::{rewind_to_committed, settle_after, Settle};
pub use retry::{with_patience, CALL_TIMEOUT};
pub use stage::{
    run_again_when_consumer_lost, Backoff, ConsumerLost, WriteFailures, WRITE_FAILURE_LIMIT,
    WRITE_FAILURE_WINDOW,
};
pub use topics::Topics;
pub use txn::is_seal;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
