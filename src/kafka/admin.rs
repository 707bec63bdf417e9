//! `rallypoint topics create`: every topic of the configured nations, idempotently.

use std::time::Duration;

use rallypoint_core::event::Stream;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::Topics;
use crate::config::Config;

/// One topic to create, with its configs.
pub struct Spec {
    pub name: String,
    pub partitions: i32,
    pub configs: Vec<(&'static str, String)>,
}

/// Largest record each kind of topic accepts (its `max.message.bytes`, which the broker
/// compares with a whole record batch), derived from `intake.max_record_bytes` so that the
/// broker and intake agree:
///
/// - an input topic takes records up to twice `intake.max_record_bytes`, plus [`ENVELOPE`]
///   for the key, headers and batch framing: a record over the intake limit (but under this)
///   reaches intake and is dead-lettered as `oversized`, instead of being refused to the feed
///   with no trace; beyond it the broker refuses it;
/// - the journal takes a journal record that carries its feed record whole (see
///   [`super::dead_letter`]): the event re-encoded, the original key, value and headers (the
///   headers as Avro, at most 1.5 times their Kafka size): three input records;
/// - the dead-letter topic takes a dead letter of the largest input record: its key, value and
///   headers as Avro, with the reason, a bounded detail and the source (at least 16 MiB, as
///   before).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLimits {
    pub input: usize,
    pub journal: usize,
    pub dlq: usize,
}

/// Room for what is not the record's value: key, headers, batch framing, a dead letter's
/// reason, detail and source.
pub const ENVELOPE: usize = 64 * 1024;
/// The most librdkafka's `message.max.bytes` allows, below the broker's `int` limit too.
const MOST: usize = 1_000_000_000;

impl RecordLimits {
    pub fn of(config: &Config) -> Self {
        let max = config.intake.max_record_bytes;
        let input = max.saturating_mul(2).saturating_add(ENVELOPE).min(MOST);
        Self {
            input,
            journal: input.saturating_mul(3).saturating_add(ENVELOPE).min(MOST),
            dlq: input
                .saturating_mul(2)
                .saturating_add(ENVELOPE)
                .clamp(16 * 1024 * 1024, MOST),
        }
    }

    /// What a stage's producer must be let send: the largest of its topics' limits.
    pub fn producer(&self) -> usize {
        self.journal.max(self.dlq)
    }
}

/// Every topic the configuration implies.
pub fn specs(config: &Config) -> Vec<Spec> {
    let t = Topics::new(config);
    let inputs = config.topics.input_partitions;
    let outputs = config.topics.output_partitions;
    let limits = RecordLimits::of(config);
    let mut specs = Vec::new();
    for nation in &config.nations {
        for stream in Stream::ALL {
            specs.push(Spec {
                name: t.input(nation, stream),
                partitions: inputs,
                configs: vec![
                    ("retention.ms", "604800000".into()),
                    ("max.message.bytes", limits.input.to_string()),
                ],
            });
        }
        specs.push(Spec {
            name: t.decisions(nation),
            partitions: outputs,
            configs: vec![("retention.ms", "2592000000".into())],
        });
        specs.push(hunt_spec(t.hunt(nation)));
    }
    specs.push(hunt_spec(t.coalition_hunt()));
    specs.push(Spec {
        name: t.coalition_decisions(),
        partitions: outputs,
        configs: vec![("retention.ms", "2592000000".into())],
    });
    specs.push(Spec {
        name: t.threat_picture(),
        partitions: outputs,
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("min.compaction.lag.ms", "60000".into()),
            ("segment.ms", "3600000".into()),
        ],
    });
    // The journal is the event store: one partition for a total order, kept for ever.
    specs.push(Spec {
        name: t.journal(),
        partitions: 1,
        configs: vec![
            ("retention.ms", "-1".into()),
            ("retention.bytes", "-1".into()),
            ("max.message.bytes", limits.journal.to_string()),
        ],
    });
    specs.push(Spec {
        name: t.changelog(),
        partitions: 1,
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("min.compaction.lag.ms", "60000".into()),
            ("segment.ms", "3600000".into()),
        ],
    });
    specs.push(Spec {
        name: t.dlq(),
        partitions: 1,
        configs: vec![
            ("retention.ms", "2592000000".into()),
            ("max.message.bytes", limits.dlq.to_string()),
        ],
    });
    specs
}

/// A member nation's hunt topic. Compacted: the latest record per campaign and indicator is
/// what the nation's SIEM hunts for, and a tombstone removes a retired one. ONE partition,
/// whatever `topics.output_partitions` says: the topic's records keep the order the
/// coordinator made them in, so the retirement of an indicator under one campaign reaches the
/// SIEM before its publication under the campaign it merged into (with two partitions the
/// two keys could land apart and be read the other way round). Tombstones stay readable for
/// 7 days after compaction (`delete.retention.ms`), so that a SIEM offline for a week still
/// sees an indicator go.
fn hunt_spec(name: String) -> Spec {
    Spec {
        name,
        partitions: 1,
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("min.compaction.lag.ms", "60000".into()),
            ("segment.ms", "3600000".into()),
            ("delete.retention.ms", "604800000".into()),
        ],
    }
}

/// Creates what is missing; returns (name, created?) for every topic.
pub async fn create_topics(config: &Config) -> anyhow::Result<Vec<(String, bool)>> {
    let admin: AdminClient<DefaultClientContext> = super::client_config(config).create()?;
    let specs = specs(config);
    let rf = config.topics.replication_factor;
    let new: Vec<NewTopic> = specs
        .iter()
        .map(|s| {
            s.configs.iter().fold(
                NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(rf)),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(new.iter(), &opts).await?;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(name) => out.push((name, true)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => out.push((name, false)),
            Err((name, code)) => anyhow::bail!("creating topic {name} failed: {code}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_record_bytes: usize) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rallypoint.toml");
        std::fs::write(
            &path,
            format!(
                "nations = [\"EST\", \"LVA\"]\n[intake]\nmax_record_bytes = {max_record_bytes}\n"
            ),
        )
        .unwrap();
        Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn max_message_bytes(specs: &[Spec], name: &str) -> Option<usize> {
        let spec = specs.iter().find(|s| s.name == name)?;
        let (_, v) = spec
            .configs
            .iter()
            .find(|(k, _)| *k == "max.message.bytes")?;
        v.parse().ok()
    }

    #[test]
    fn topics_take_an_oversized_input_and_a_carried_original_with_room_to_spare() {
        let c = config(1024 * 1024);
        let limits = RecordLimits::of(&c);
        assert_eq!(
            limits,
            RecordLimits {
                input: 2_162_688,
                journal: 6_553_600,
                dlq: 16_777_216,
            }
        );
        let t = Topics::new(&c);
        let specs = specs(&c);
        for nation in ["EST", "LVA"] {
            for stream in Stream::ALL {
                assert_eq!(
                    max_message_bytes(&specs, &t.input(nation, stream)),
                    Some(limits.input)
                );
            }
        }
        assert_eq!(
            max_message_bytes(&specs, &t.journal()),
            Some(limits.journal)
        );
        assert_eq!(max_message_bytes(&specs, &t.dlq()), Some(limits.dlq));
        assert_eq!(limits.producer(), limits.dlq);

        // A larger limit raises the dead-letter topic's above its 16 MiB floor; a huge one
        // stays within what librdkafka and the broker accept.
        let big = RecordLimits::of(&config(10 * 1024 * 1024));
        assert_eq!(big.input, 21_037_056);
        assert_eq!(big.dlq, 42_139_648);
        assert_eq!(big.producer(), big.journal);
        let huge = RecordLimits::of(&config(1 << 40));
        assert_eq!((huge.input, huge.journal, huge.dlq), (MOST, MOST, MOST));
    }

    #[test]
    fn every_member_and_the_cell_get_a_compacted_hunt_topic_of_one_partition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rallypoint.toml");
        std::fs::write(
            &path,
            "nations = [\"EST\", \"LVA\"]\n[kafka]\nnamespace = \"exercise\"\n[topics]\noutput_partitions = 6\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        let specs = specs(&c);
        let hunts: Vec<&Spec> = specs.iter().filter(|s| s.name.ends_with(".hunt")).collect();
        let names: Vec<&str> = hunts.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "exercise.rrc.out.EST.hunt",
                "exercise.rrc.out.LVA.hunt",
                "exercise.rrc.out.coalition.hunt"
            ]
        );
        for spec in hunts {
            assert_eq!(spec.partitions, 1, "{}", spec.name);
            assert!(spec
                .configs
                .contains(&("cleanup.policy", "compact".to_owned())));
        }
        // The decision topics still take the configured partitions.
        let decisions = specs
            .iter()
            .find(|s| s.name == "exercise.rrc.out.EST.decisions")
            .unwrap();
        assert_eq!(decisions.partitions, 6);
    }
}
