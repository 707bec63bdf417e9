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
    pub configs: Vec<(&'static str, &'static str)>,
}

/// Every topic the configuration implies.
pub fn specs(config: &Config) -> Vec<Spec> {
    let t = Topics::new(config);
    let inputs = config.topics.input_partitions;
    let outputs = config.topics.output_partitions;
    let mut specs = Vec::new();
    for nation in &config.nations {
        for stream in Stream::ALL {
            specs.push(Spec {
                name: t.input(nation, stream),
                partitions: inputs,
                configs: vec![("retention.ms", "604800000")],
            });
        }
        specs.push(Spec {
            name: t.decisions(nation),
            partitions: outputs,
            configs: vec![("retention.ms", "2592000000")],
        });
    }
    specs.push(Spec {
        name: t.coalition_decisions(),
        partitions: outputs,
        configs: vec![("retention.ms", "2592000000")],
    });
    specs.push(Spec {
        name: t.threat_picture(),
        partitions: outputs,
        configs: vec![
            ("cleanup.policy", "compact"),
            ("min.compaction.lag.ms", "60000"),
            ("segment.ms", "3600000"),
        ],
    });
    // The journal is the event store: one partition for a total order, kept for ever.
    specs.push(Spec {
        name: t.journal(),
        partitions: 1,
        configs: vec![("retention.ms", "-1"), ("retention.bytes", "-1")],
    });
    specs.push(Spec {
        name: t.changelog(),
        partitions: 1,
        configs: vec![
            ("cleanup.policy", "compact"),
            ("min.compaction.lag.ms", "60000"),
            ("segment.ms", "3600000"),
        ],
    });
    specs.push(Spec {
        name: t.dlq(),
        partitions: 1,
        configs: vec![
            ("retention.ms", "2592000000"),
            ("max.message.bytes", "16777216"),
        ],
    });
    specs
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
