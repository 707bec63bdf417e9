//! librdkafka settings: what every client shares, and what a stage's consumer adds.

use rdkafka::ClientConfig;

use crate::config::Config;

/// Settings every client shares; only validated values from our config reach librdkafka.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set(
            "client.id",
            format!("rallypoint-{}", config.kafka.instance_id),
        )
        .set("broker.address.family", "v4")
        .set("reconnect.backoff.max.ms", "2000");
    let s = &config.kafka.security;
    c.set("security.protocol", &s.protocol);
    if s.protocol.starts_with("sasl") {
        c.set("sasl.mechanisms", &s.sasl_mechanism)
            .set("sasl.username", &s.sasl_username)
            .set("sasl.password", &s.sasl_password.0);
    }
    for (key, path) in [
        ("ssl.ca.location", &s.ssl_ca_location),
        ("ssl.certificate.location", &s.ssl_certificate_location),
        ("ssl.key.location", &s.ssl_key_location),
    ] {
        if !path.is_empty() {
            c.set(key, path);
        }
    }
    c
}

/// Settings of a stage's consumer: manual, transactional offsets; committed input only.
///
/// Membership is static (`group.instance.id` from `kafka.instance_id`): a restarted instance
/// rejoins under its old identity and gets its partitions back at once, instead of waiting
/// for its previous session to expire. The cooperative-sticky assignor leaves partitions where
/// they are when an instance joins, so a standing-by coordinator does not take the journal
/// from an active one. `kafka.session_timeout` bounds how long a crashed instance's
/// partitions wait before another instance takes them.
pub fn consumer_config(config: &Config, group: &str) -> ClientConfig {
    let mut c = client_config(config);
    let session = config.kafka.session_timeout;
    let heartbeat = (session / 3).min(std::time::Duration::from_secs(1));
    c.set("group.id", config.name(group))
        .set("group.instance.id", &config.kafka.instance_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("session.timeout.ms", session.as_millis().to_string())
        .set("heartbeat.interval.ms", heartbeat.as_millis().to_string())
        .set("max.poll.interval.ms", "60000")
        // A read_committed fetch that found only uncommitted records waits this long before the
        // broker answers again, even when the transaction commits meanwhile: keep it short.
        .set("fetch.wait.max.ms", "10")
        // What librdkafka fetches ahead into the consumer's queue (64 MiB by default):
        // bounded, so that a backlog in the input costs little memory.
        .set("queued.max.messages.kbytes", "4096");
    c
}
