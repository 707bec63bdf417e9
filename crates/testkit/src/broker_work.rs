//! What a broker has written and spent: per topic, the records (offsets, so transaction
//! markers count) and the bytes of its log segments, and the broker process's CPU time. Two
//! readings around a run give the run's broker work ([`BrokerWork::since`]), which the
//! end-to-end benchmark divides by the input events to show the amplification per event.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// A reading of the broker's work so far, or the difference of two.
#[derive(Clone, Debug, Default)]
pub struct BrokerWork {
    /// Per topic: the sum of its partitions' high watermarks.
    pub records: BTreeMap<String, i64>,
    /// Per topic: the bytes of its partitions' `.log` segment files.
    pub bytes: BTreeMap<String, u64>,
    /// The broker process's user and system CPU seconds.
    pub cpu_seconds: f64,
}

impl BrokerWork {
    /// Reads every topic's end offsets from `bootstrap`, the segment sizes from the broker's
    /// `data` folder under `broker_dir` (the `KAFKA_LOCAL_DIR` of `scripts/kafka-local.sh`),
    /// and the CPU time of the process its `broker.pid` names.
    pub fn read(bootstrap: &str, broker_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            records: end_offsets(bootstrap)?,
            bytes: segment_bytes(&broker_dir.join("data"))?,
            cpu_seconds: cpu_seconds(&std::fs::read_to_string(broker_dir.join("broker.pid"))?)?,
        })
    }

    /// The work done between `before` and `self`; topics that did not change are left out.
    pub fn since(&self, before: &Self) -> Self {
        fn diff<V: Copy + Default + PartialEq + std::ops::Sub<Output = V>>(
            now: &BTreeMap<String, V>,
            then: &BTreeMap<String, V>,
        ) -> BTreeMap<String, V> {
            now.iter()
                .map(|(t, v)| (t.clone(), *v - then.get(t).copied().unwrap_or_default()))
                .filter(|(_, v)| *v != V::default())
                .collect()
        }
        Self {
            records: diff(&self.records, &before.records),
            bytes: diff(&self.bytes, &before.bytes),
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
        }
    }

    /// Records and bytes summed over the topics `group` maps to the same name; topics it
    /// maps to `None` are left out.
    pub fn grouped(&self, group: impl Fn(&str) -> Option<String>) -> BTreeMap<String, (i64, u64)> {
        let mut out: BTreeMap<String, (i64, u64)> = BTreeMap::new();
        let topics = self.records.keys().chain(self.bytes.keys());
        for topic in topics.collect::<std::collections::BTreeSet<_>>() {
            if let Some(name) = group(topic) {
                let entry = out.entry(name).or_default();
                entry.0 += self.records.get(topic).copied().unwrap_or_default();
                entry.1 += self.bytes.get(topic).copied().unwrap_or_default();
            }
        }
        out
    }
}

/// How many records of partition 0 of `topic` carry a key of each prefix (the key up to its
/// first `/`, markers and aborted records aside: a `read_uncommitted` reader from the start to
/// the high watermark). For the changelog: which kinds of state key it writes most.
pub fn keys_by_prefix(bootstrap: &str, topic: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    use rdkafka::error::KafkaError;
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rallypoint-broker-work")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_uncommitted")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut out = BTreeMap::new();
    let started = std::time::Instant::now();
    loop {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "reading {topic}: not at its end after 5 minutes"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let key = m.key().unwrap_or_default();
                let prefix = key.split(|b| *b == b'/').next().unwrap_or_default();
                *out.entry(String::from_utf8_lossy(prefix).into_owned())
                    .or_default() += 1;
            }
            // At the end, past the markers too.
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => anyhow::bail!("reading {topic}: {e}"),
            None => {}
        }
    }
    Ok(out)
}

/// Every topic's records so far, internal topics included: the sum of the high watermarks.
fn end_offsets(bootstrap: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(None, timeout)?;
    let mut out = BTreeMap::new();
    for topic in metadata.topics() {
        let mut sum = 0;
        for p in topic.partitions() {
            sum += consumer.fetch_watermarks(topic.name(), p.id(), timeout)?.1;
        }
        out.insert(topic.name().to_owned(), sum);
    }
    Ok(out)
}

/// The bytes of the `.log` files in each `<topic>-<partition>` folder of `data`, per topic.
fn segment_bytes(data: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((topic, partition)) = name.rsplit_once('-') else {
            continue;
        };
        if !entry.file_type()?.is_dir() || partition.parse::<u32>().is_err() {
            continue;
        }
        let mut size = 0;
        for file in std::fs::read_dir(entry.path())? {
            let file = file?;
            if file.path().extension().is_some_and(|e| e == "log") {
                size += file.metadata()?.len();
            }
        }
        *out.entry(topic.to_owned()).or_default() += size;
    }
    Ok(out)
}

/// User and system CPU seconds of process `pid` (fields 14 and 15 of `/proc/<pid>/stat`).
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))?;
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc stat: {stat}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime 15.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .ok_or_else(|| anyhow::anyhow!("short /proc stat: {stat}"))?
            .parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless it says otherwise), asked
/// once per process.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_keeps_only_the_topics_that_changed_and_groups_add_up() {
        let before = BrokerWork {
            records: [("a".into(), 5), ("b".into(), 7)].into(),
            bytes: [("a".into(), 100), ("b".into(), 70)].into(),
            cpu_seconds: 1.0,
        };
        let after = BrokerWork {
            records: [("a".into(), 9), ("b".into(), 7), ("c".into(), 3)].into(),
            bytes: [("a".into(), 180), ("b".into(), 70), ("c".into(), 30)].into(),
            cpu_seconds: 3.5,
        };
        let run = after.since(&before);
        assert_eq!(run.records, [("a".into(), 4), ("c".into(), 3)].into());
        assert_eq!(run.cpu_seconds, 2.5);
        let grouped = run.grouped(|t| (t != "x").then(|| "all".to_owned()));
        assert_eq!(grouped["all"], (7, 110));
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let pid = std::process::id().to_string();
        let start = cpu_seconds(&pid).unwrap();
        let began = std::time::Instant::now();
        let mut spin = 0u64;
        while cpu_seconds(&pid).unwrap() <= start && began.elapsed() < Duration::from_secs(10) {
            spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_seconds(&pid).unwrap() > start, "no CPU time counted");
        assert!(cpu_seconds("no-such-pid").is_err());
    }
}
