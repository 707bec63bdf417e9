//! A transactional producer with a timeout on every call, and librdkafka's error classes
//! turned into what the loop must do: retry, abort and rewind, or stop.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};

use super::context::ProducerState;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// The transaction was aborted; re-read its input and try again.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The producer cannot go on (fenced by a newer instance, or a fatal error).
    #[error("producer failed fatally: {0}")]
    Fatal(String),
}

pub struct Transactional {
    producer: BaseProducer<ProducerState>,
    timeout: Duration,
    open: bool,
}

impl Transactional {
    /// Creates the producer and initialises transactions, fencing any older instance with the
    /// same transactional id (and completing or aborting what it left open).
    pub fn new(
        config: &Config,
        transactional_id: &str,
        changelog_topic: String,
    ) -> Result<Self, TxnError> {
        let timeout = config.kafka.transaction_timeout;
        let mut c: ClientConfig = super::client_config(config);
        c.set("transactional.id", config.name(transactional_id))
            .set("transaction.timeout.ms", timeout.as_millis().to_string())
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "500000")
            .set("message.max.bytes", "16777216");
        let producer: BaseProducer<ProducerState> = c
            .create_with_context(ProducerState::new(changelog_topic))
            .map_err(|e| TxnError::Fatal(e.to_string()))?;
        let started = Instant::now();
        loop {
            match producer.init_transactions(timeout) {
                Ok(()) => break,
                // The broker may still be starting or loading its transaction log.
                Err(e) if started.elapsed() < Duration::from_secs(120) && !is_fatal(&e) => {
                    tracing::info!(error = %e, "init_transactions not ready yet, retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(TxnError::Fatal(e.to_string())),
            }
        }
        Ok(Self {
            producer,
            timeout,
            open: false,
        })
    }

    pub fn state(&self) -> &ProducerState {
        self.producer.context()
    }

    /// Queues one record in the current transaction, beginning it if needed.
    pub fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), TxnError> {
        if !self.open {
            self.producer
                .begin_transaction()
                .map_err(|e| classify(&e))?;
            self.state()
                .last_changelog_offset
                .store(-1, Ordering::SeqCst);
            self.state().failed.store(0, Ordering::SeqCst);
            self.open = true;
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        record.key = key;
        record.payload = payload;
        record.headers = headers;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(classify(&e)),
            }
        }
    }

    /// Serves delivery reports; call now and then while sending.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Adds the consumed offsets (next to read) and commits. On an abortable error the
    /// transaction is aborted before returning [`TxnError::Aborted`].
    pub fn commit(
        &mut self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TxnError> {
        let result = self
            .drain()
            .and_then(|()| {
                self.producer
                    .send_offsets_to_transaction(offsets, group, self.timeout)
            })
            .and_then(|()| self.producer.commit_transaction(self.timeout));
        let result = match result {
            Ok(()) if self.state().failed.load(Ordering::SeqCst) > 0 => {
                Err(TxnError::Aborted("a record was not delivered".into()))
            }
            Ok(()) => Ok(()),
            Err(e) => Err(classify(&e)),
        };
        match result {
            Ok(()) => {
                self.open = false;
                Ok(())
            }
            Err(TxnError::Aborted(why)) => {
                self.abort()?;
                Err(TxnError::Aborted(why))
            }
            Err(fatal) => Err(fatal),
        }
    }

    /// Waits until every queued record is acknowledged and its report served.
    ///
    /// `commit_transaction` flushes by itself, but rust-rdkafka's flush polls in steps of up to
    /// 100 ms that always run to their end, which put a floor of 100 ms under every commit.
    fn drain(&self) -> rdkafka::error::KafkaResult<()> {
        let deadline = Instant::now() + self.timeout;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        Ok(())
    }

    pub fn abort(&mut self) -> Result<(), TxnError> {
        if !self.open {
            return Ok(());
        }
        self.producer
            .abort_transaction(self.timeout)
            .map_err(|e| match classify(&e) {
                TxnError::Aborted(why) => TxnError::Fatal(format!("abort failed: {why}")),
                fatal => fatal,
            })?;
        self.open = false;
        Ok(())
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

/// librdkafka's documented classes: fatal → stop; requires abort or retriable → abort and redo.
fn classify(e: &KafkaError) -> TxnError {
    match e {
        KafkaError::Transaction(t) if t.is_fatal() => TxnError::Fatal(e.to_string()),
        _ => TxnError::Aborted(e.to_string()),
    }
}
