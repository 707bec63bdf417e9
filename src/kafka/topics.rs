//! Names of every topic Rallypoint reads or writes.

use crate::config::Config;

/// Names of every topic Rallypoint reads or writes, under the configured namespace.
#[derive(Clone, Debug)]
pub struct Topics {
    prefix: String,
    /// The member nations (`nations`), in the configured order: each has a hunt topic.
    nations: Vec<String>,
}

impl Topics {
    pub fn new(config: &Config) -> Self {
        let ns = &config.kafka.namespace;
        Self {
            prefix: if ns.is_empty() {
                String::new()
            } else {
                format!("{ns}.")
            },
            nations: config.nations.clone(),
        }
    }

    /// The member nations, in the configured order.
    pub fn nations(&self) -> &[String] {
        &self.nations
    }

    pub fn input(&self, nation: &str, stream: rallypoint_core::event::Stream) -> String {
        format!("{}rrc.in.{nation}.{}", self.prefix, stream.suffix())
    }

    /// librdkafka subscription regex for every nation's input topics.
    pub fn input_pattern(&self) -> String {
        let streams: Vec<&str> = rallypoint_core::event::Stream::ALL
            .iter()
            .map(|s| s.suffix())
            .collect();
        format!(
            "^{}rrc\\.in\\.[A-Z]{{3}}\\.({})$",
            self.prefix.replace('.', "\\."),
            streams.join("|")
        )
    }

    /// The topic name without the namespace prefix (what the contract names).
    pub fn strip<'t>(&self, topic: &'t str) -> &'t str {
        topic.strip_prefix(&self.prefix).unwrap_or(topic)
    }

    pub fn journal(&self) -> String {
        format!("{}rrc.internal.journal", self.prefix)
    }

    pub fn changelog(&self) -> String {
        format!("{}rrc.internal.changelog", self.prefix)
    }

    pub fn dlq(&self) -> String {
        format!("{}rrc.dlq", self.prefix)
    }

    pub fn decisions(&self, nation: &str) -> String {
        format!("{}rrc.out.{nation}.decisions", self.prefix)
    }

    pub fn coalition_decisions(&self) -> String {
        format!("{}rrc.out.coalition.decisions", self.prefix)
    }

    /// Compacted: the latest record per scope-window or campaign is the current picture.
    pub fn threat_picture(&self) -> String {
        format!("{}rrc.out.coalition.threat-picture", self.prefix)
    }

    /// A member nation's hunt topic: compacted (the latest record per campaign and indicator
    /// is what its SIEM hunts for) and of one partition, so that its records keep the order
    /// the coordinator made them in: the retirement of an indicator under one campaign
    /// reaches the SIEM before its publication under the campaign it merged into.
    pub fn hunt(&self, nation: &str) -> String {
        format!("{}rrc.out.{nation}.hunt", self.prefix)
    }

    /// The coordination cell's hunt topic: what became of every value of every campaign's
    /// package, and why (compacted, one partition, as the members' are).
    pub fn coalition_hunt(&self) -> String {
        format!("{}rrc.out.coalition.hunt", self.prefix)
    }

    /// Every hunt topic: each member nation's, in the configured order of the nations, then
    /// the coordination cell's.
    pub fn hunts(&self) -> Vec<String> {
        self.nations
            .iter()
            .map(|n| self.hunt(n))
            .chain([self.coalition_hunt()])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Topics;

    #[test]
    fn the_input_pattern_names_every_stream_under_the_namespace() {
        let t = Topics {
            prefix: "exercise.".into(),
            nations: Vec::new(),
        };
        assert_eq!(
            t.input_pattern(),
            r"^exercise\.rrc\.in\.[A-Z]{3}\.(incidents|offers|responses|sightings)$"
        );
    }

    #[test]
    fn every_member_has_a_hunt_topic_under_the_namespace() {
        let t = Topics {
            prefix: "exercise.".into(),
            nations: vec!["LVA".into(), "EST".into()],
        };
        assert_eq!(t.hunt("EST"), "exercise.rrc.out.EST.hunt");
        assert_eq!(
            t.hunts(),
            [
                "exercise.rrc.out.LVA.hunt",
                "exercise.rrc.out.EST.hunt",
                "exercise.rrc.out.coalition.hunt"
            ]
        );
        assert_eq!(t.strip(&t.hunt("LVA")), "rrc.out.LVA.hunt");
    }
}
