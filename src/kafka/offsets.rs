//! Resuming from the consumer group's committed offsets, and settling a group whose offsets
//! the broker keeps unstable.

use super::{context, txn, with_patience};
use crate::stop::Stop;

/// Seeks every partition the consumer holds to its committed offset (the start when none is
/// committed): where a new producer must resume after a fatal error, when the outcome of the
/// last transaction is unknown. Reading `read_committed`, librdkafka asks the broker for
/// stable offsets only, so a transaction still in doubt is settled first.
///
/// The broker can keep a group's offsets unstable for good: after broker restarts, Kafka 4.3's
/// group coordinator was seen to hold a committed transaction's offsets as pending, answering
/// every stable read with `UNSTABLE_OFFSET_COMMIT` (librdkafka retries until its timeout),
/// until the same producer id committed offsets for the group again. So when reading keeps
/// failing for `settle.after` (longer than the transaction timeout, after which no genuine
/// transaction can still be open), `settle.run` commits such a transaction, and reading goes
/// on (a settlement that fails is logged and tried again after as long). Without `settle`, reading fails after
/// [`txn::PATIENCE`].
pub fn rewind_to_committed(
    consumer: &rdkafka::consumer::BaseConsumer<context::StageContext>,
    stop: &Stop,
    mut settle: Option<Settle<'_>>,
) -> anyhow::Result<()> {
    use rdkafka::consumer::Consumer;
    let wait = std::time::Duration::from_secs(10);
    let mut failing_since: Option<std::time::Instant> = None;
    let committed = super::retry::with_patience_between(
        "reading committed offsets",
        txn::PATIENCE,
        stop,
        || consumer.committed(wait),
        || {
            let Some(settle) = settle.as_mut() else {
                return;
            };
            let since = *failing_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= settle.after {
                if let Err(e) = (settle.run)(since.elapsed()) {
                    tracing::warn!(error = %e, "settling the group's offsets failed");
                }
                failing_since = None;
            }
        },
    )?;
    for e in committed.elements() {
        let offset = match e.offset() {
            rdkafka::Offset::Offset(o) => rdkafka::Offset::Offset(o),
            _ => rdkafka::Offset::Beginning,
        };
        with_patience(
            "seeking to the committed offset",
            txn::PATIENCE,
            stop,
            || consumer.seek(e.topic(), e.partition(), offset, wait),
        )?;
        tracing::info!(
            stage = consumer.context().stage,
            topic = e.topic(),
            partition = e.partition(),
            ?offset,
            "resuming from the committed offset"
        );
    }
    Ok(())
}

/// What [`rewind_to_committed`] does when the broker keeps the group's offsets unstable.
pub struct Settle<'a> {
    /// How long reading must have failed.
    pub after: std::time::Duration,
    /// Commits an offsets-only transaction with the stage's producer; given how long reading
    /// has failed.
    pub run: &'a mut dyn FnMut(std::time::Duration) -> anyhow::Result<()>,
}

/// How long a stage lets the broker keep its group's offsets unstable before it settles them:
/// past the transaction timeout, by when the broker has aborted any transaction still open,
/// plus its check for such transactions (every 10 s by default).
pub fn settle_after(config: &crate::config::KafkaConfig) -> std::time::Duration {
    config.transaction_timeout + std::time::Duration::from_secs(15)
}
