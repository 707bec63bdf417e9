//! A commit seal (docs/operations.md, "Hanging transactions") commits even when the group
//! refuses its offsets. A refusal leaves a transaction able only to abort; had the seal already
//! touched the hanging partitions, that abort would throw away records whose offsets the group
//! already holds. The seal sends the offsets first and, refused, seals again without them.

use rallypoint_testkit as common;

use std::time::{Duration, Instant};

use common::Harness;
use rallypoint::config::Config;
use rallypoint::kafka::context::StageContext;
use rallypoint::kafka::txn::{SealOutcome, Transactional, SEAL_KEY};
use rallypoint::stop::Stop;
use rallypoint::telemetry::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// A consumer of the intake's group that has joined it (an assignment in hand).
fn joined(config: &Config, metrics: &Metrics, topic: &str) -> BaseConsumer<StageContext> {
    let consumer: BaseConsumer<StageContext> =
        rallypoint::kafka::consumer_config(config, "rallypoint-intake")
            .create_with_context(StageContext::new("intake", metrics.clone()))
            .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let started = Instant::now();
    while consumer.assignment().unwrap().count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "never joined");
        let _ = consumer.poll(Duration::from_millis(100));
    }
    consumer
}

#[test]
fn a_commit_seal_whose_offsets_the_group_refuses_still_commits() {
    let h = Harness::new("seal", &["EST"], "");
    let config = Config::load(Some(&h.config)).unwrap();
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let input = h.topic("rrc.in.EST.incidents");
    let journal = h.topic("rrc.internal.journal");
    // The same static member joins again: the first one's membership is fenced, and the
    // group refuses offsets sent with its metadata.
    let stale = joined(&config, &metrics, &input);
    let _current = joined(&config, &metrics, &input);

    let stop = Stop::new();
    let mut txn = Transactional::new(
        &config,
        "rallypoint-seal-test",
        h.topic("rrc.internal.changelog"),
        &stop,
    )
    .unwrap();
    let outcome = SealOutcome::Commit {
        offsets: vec![(input.clone(), 0, 0)],
    };
    txn.seal(&[(journal.clone(), 0)], &stale, &outcome)
        .expect("the seal commits without the refused offsets");

    let sealed = h
        .read_all_with_seals("rrc.internal.journal")
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(SEAL_KEY))
        .count();
    assert_eq!(sealed, 1, "the seal's record is committed on {journal}");
    // What the contract tells consumers: skip it. Rallypoint's own readers do.
    assert!(
        h.read_all("rrc.internal.journal").is_empty(),
        "a reader that skips seals sees nothing"
    );
}
