//! The one replay check: what a journal implies ([`recompute`]), and whether the records on
//! the output topics are exactly that ([`compare`]). `rallypoint replay`, the crash soak, the
//! failover and chaos tests and the golden test all call this pair.
//!
//! [`recompute`] folds the journal's events with the pure core and frames every output with
//! the audience gate ([`crate::gate::record`]), as the coordinator does: the same topic, key
//! and value bytes. [`compare`] then checks each decision topic partition by partition: within
//! a partition Kafka keeps the order the coordinator sent in, so the records of a partition
//! must be exactly the implied records of the keys it holds, in the order the fold made them.
//! That holds for any number of partitions, and for one partition it is the topic's total
//! order. Threat-picture records (a compacted topic) are compared as a multiset. Each member's
//! hunt topic (compacted too, but of one partition, whose order matters) is compared as a
//! decision topic is: its records in the order the fold made them, a tombstone (no value) only
//! where the fold removed a key.

use std::collections::{BTreeMap, BTreeSet};

use rallypoint_core::store::StoreError;
use rallypoint_core::{CoreConfig, Event, Output};

use crate::codec::{Codec, Format};
use crate::kafka::Topics;

/// One way of folding events into state: the in-memory store of the tests, or RocksDB.
pub trait Fold {
    fn fold(&mut self, core: &CoreConfig, event: &Event) -> Result<Vec<Output>, StoreError>;
}

impl Fold for rallypoint_core::MemStore {
    fn fold(&mut self, core: &CoreConfig, event: &Event) -> Result<Vec<Output>, StoreError> {
        rallypoint_core::apply(self, core, event)
    }
}

/// Folds into RocksDB through an overlay, written through every `flush_every` events (1: as
/// the coordinator does per batch; more: faster, for a long journal).
pub struct RocksFold<'a> {
    store: &'a mut crate::store::RocksStore,
    overlay: rallypoint_core::store::Overlay,
    flush_every: usize,
    pending: usize,
}

impl<'a> RocksFold<'a> {
    pub fn new(store: &'a mut crate::store::RocksStore, flush_every: usize) -> Self {
        Self {
            store,
            overlay: Default::default(),
            flush_every: flush_every.max(1),
            pending: 0,
        }
    }

    /// Writes what the overlay holds.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.pending = 0;
        self.store.apply(self.overlay.drain(), 0)
    }
}

impl Fold for RocksFold<'_> {
    fn fold(&mut self, core: &CoreConfig, event: &Event) -> Result<Vec<Output>, StoreError> {
        let outputs = rallypoint_core::apply(&mut self.overlay.over(&*self.store), core, event)?;
        self.pending += 1;
        if self.pending >= self.flush_every {
            self.flush()?;
        }
        Ok(outputs)
    }
}

/// A record the journal implies on an output topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImpliedRecord {
    /// The journal offset of the event that caused it.
    pub cause: i64,
    /// Its place among every record the fold's outputs became (decisions, picture and hunt
    /// records).
    pub seq: u64,
    pub key: Vec<u8>,
    /// `None` for a tombstone (a hunt record removed); decisions and picture records always
    /// have a value.
    pub value: Option<Vec<u8>>,
}

/// What a journal implies.
#[derive(Debug, Default)]
pub struct Implied {
    /// Journal events folded.
    pub events: u64,
    /// Decision records per topic, in the order the fold made them.
    pub decisions: BTreeMap<String, Vec<ImpliedRecord>>,
    /// The threat-picture topic, and its records.
    pub picture_topic: String,
    pub pictures: Vec<ImpliedRecord>,
    /// Every member nation's hunt topic (each one present, empty when the fold made no hunt
    /// record), and its records in the order the fold made them.
    pub hunts: BTreeMap<String, Vec<ImpliedRecord>>,
    /// Events the coordinator rejects: one dead letter each.
    pub rejections: u64,
}

impl Implied {
    pub fn decision_count(&self) -> usize {
        self.decisions.values().map(Vec::len).sum()
    }

    /// Hunt records, over every member's topic.
    pub fn hunt_count(&self) -> usize {
        self.hunts.values().map(Vec::len).sum()
    }
}

/// Recomputes what `journal` (each event with its journal offset) implies, folding it with
/// `fold` and framing decisions in `format`.
pub fn recompute(
    journal: impl IntoIterator<Item = (i64, Event)>,
    fold: &mut impl Fold,
    core: &CoreConfig,
    codec: &Codec,
    format: Format,
    topics: &Topics,
) -> Result<Implied, StoreError> {
    let mut implied = Implied {
        picture_topic: topics.threat_picture(),
        hunts: topics
            .hunts()
            .into_iter()
            .map(|t| (t, Vec::new()))
            .collect(),
        ..Default::default()
    };
    let mut seq = 0;
    for (offset, event) in journal {
        implied.events += 1;
        for output in fold.fold(core, &event)? {
            if let Output::Rejected(_) = output {
                implied.rejections += 1;
                continue;
            }
            for r in crate::gate::record(&output, codec, format, topics, None) {
                seq += 1;
                let record = ImpliedRecord {
                    cause: offset,
                    seq,
                    key: r.key.into_bytes(),
                    value: r.value,
                };
                match output {
                    Output::Decision(_) => {
                        implied.decisions.entry(r.topic).or_default().push(record)
                    }
                    Output::Picture(_) => implied.pictures.push(record),
                    Output::Hunt(_) => implied.hunts.entry(r.topic).or_default().push(record),
                    Output::Rejected(_) => {}
                }
            }
        }
    }
    Ok(implied)
}

/// A record read back from an output topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub partition: i32,
    pub key: Vec<u8>,
    /// `None`: the record had a null value (a tombstone).
    pub value: Option<Vec<u8>>,
}

/// What [`compare`] found equal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Agreed {
    pub decisions: usize,
    pub topics: usize,
    pub pictures: usize,
    /// Hunt records, over the hunt topics compared.
    pub hunts: usize,
    /// Hunt topics compared.
    pub hunt_topics: usize,
}

/// Whether `emitted` (records per topic, each partition's in offset order) is exactly what
/// `implied` says: every decision topic `topics` names, and the threat picture and each
/// member's hunt topic when `emitted` holds them. The error is the first difference found,
/// in journal order.
pub fn compare(
    implied: &Implied,
    topics: &[String],
    emitted: &BTreeMap<String, Vec<Emitted>>,
) -> Result<Agreed, String> {
    let mut first = Earliest::default();
    let mut agreed = Agreed::default();
    let (no_want, no_got) = (Vec::new(), Vec::new());
    for topic in implied.decisions.keys() {
        if !topics.contains(topic) {
            let at = implied.decisions[topic].first().map_or(0, |r| r.cause);
            first.note(at, format!("{topic}: decisions for a topic not checked"));
        }
    }
    for topic in topics {
        let want = implied.decisions.get(topic).unwrap_or(&no_want);
        let got = emitted.get(topic).unwrap_or(&no_got);
        agreed.topics += 1;
        agreed.decisions += want.len();
        compare_topic(topic, "decision", want, got, &mut first);
    }
    if let Some(got) = emitted.get(&implied.picture_topic) {
        let mut want: Vec<Option<&[u8]>> = implied
            .pictures
            .iter()
            .map(|r| r.value.as_deref())
            .collect();
        let mut got: Vec<Option<&[u8]>> = got.iter().map(|r| r.value.as_deref()).collect();
        want.sort();
        got.sort();
        if want != got {
            first.note(
                i64::MAX,
                format!(
                    "{}: {} records, the journal implies {} (or their bytes differ)",
                    implied.picture_topic,
                    got.len(),
                    want.len()
                ),
            );
        }
        agreed.pictures = want.len();
    }
    for (topic, want) in &implied.hunts {
        if let Some(got) = emitted.get(topic) {
            agreed.hunt_topics += 1;
            agreed.hunts += want.len();
            compare_topic(topic, "hunt record", want, got, &mut first);
        }
    }
    match first.0 {
        None => Ok(agreed),
        Some((_, what)) => Err(what),
    }
}

/// The difference caused earliest in the journal, of those noted.
#[derive(Default)]
struct Earliest(Option<(i64, String)>);

impl Earliest {
    fn note(&mut self, at: i64, what: String) {
        if self.0.as_ref().is_none_or(|(first, _)| at < *first) {
            self.0 = Some((at, what));
        }
    }
}

/// One topic whose order matters (a decision or hunt topic; `what` its records are):
/// notes its differences in `first`.
fn compare_topic(
    topic: &str,
    what: &str,
    want: &[ImpliedRecord],
    got: &[Emitted],
    first: &mut Earliest,
) {
    // Where each key was written; a key in two partitions cannot be the coordinator's.
    let mut partition_of: BTreeMap<&[u8], i32> = BTreeMap::new();
    for r in got {
        if let Some(p) = partition_of.insert(&r.key, r.partition) {
            if p != r.partition {
                let key = String::from_utf8_lossy(&r.key);
                let at = r.partition;
                first.note(
                    i64::MAX,
                    format!("{topic} key {key}: in partitions {p} and {at}"),
                );
                return;
            }
        }
    }
    let mut note = |at: i64, what: String| first.note(at, format!("{topic} {what}"));
    // Implied records of keys never written: each one is missing.
    let mut by_partition: BTreeMap<i32, Vec<&ImpliedRecord>> = BTreeMap::new();
    for r in want {
        match partition_of.get(r.key.as_slice()) {
            Some(p) => by_partition.entry(*p).or_default().push(r),
            None => note(
                r.cause,
                format!(
                    "key {}: a {what} is missing (caused at journal offset {})",
                    String::from_utf8_lossy(&r.key),
                    r.cause
                ),
            ),
        }
    }
    let partitions: BTreeSet<i32> = got.iter().map(|r| r.partition).collect();
    for p in partitions {
        let want = by_partition.remove(&p).unwrap_or_default();
        let got: Vec<&Emitted> = got.iter().filter(|r| r.partition == p).collect();
        for (n, w) in want.iter().enumerate() {
            match got.get(n) {
                Some(g) if g.key == w.key && g.value == w.value => {}
                Some(g) => note(
                    w.cause,
                    format!(
                        "partition {p}, record {n} (key {}): differs from the {what} the journal implies there (key {}, caused at journal offset {})",
                        String::from_utf8_lossy(&g.key),
                        String::from_utf8_lossy(&w.key),
                        w.cause
                    ),
                ),
                None => note(
                    w.cause,
                    format!(
                        "partition {p}: {what} {n} (key {}) is missing (caused at journal offset {})",
                        String::from_utf8_lossy(&w.key),
                        w.cause
                    ),
                ),
            }
        }
        if got.len() > want.len() {
            let at = want.last().map_or(i64::MAX, |r| r.cause);
            note(
                at,
                format!(
                    "partition {p}: {} {what}(s) more than the journal implies",
                    got.len() - want.len()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn implied(records: &[(i64, &str, &str)]) -> Implied {
        let mut i = Implied {
            picture_topic: "pic".into(),
            ..Default::default()
        };
        i.decisions.insert(
            "t".into(),
            records
                .iter()
                .map(|(c, k, v)| ImpliedRecord {
                    cause: *c,
                    seq: *c as u64,
                    key: k.as_bytes().to_vec(),
                    value: Some(v.as_bytes().to_vec()),
                })
                .collect(),
        );
        i
    }

    fn emitted(records: &[(i32, &str, &str)]) -> BTreeMap<String, Vec<Emitted>> {
        let mut m = BTreeMap::new();
        m.insert(
            "t".to_string(),
            records
                .iter()
                .map(|(p, k, v)| Emitted {
                    partition: *p,
                    key: k.as_bytes().to_vec(),
                    value: Some(v.as_bytes().to_vec()),
                })
                .collect(),
        );
        m
    }

    const WANT: [(i64, &str, &str); 4] = [
        (0, "a", "a1"),
        (1, "b", "b1"),
        (2, "a", "a2"),
        (3, "c", "c1"),
    ];

    #[test]
    fn records_spread_over_partitions_in_the_fold_order_agree() {
        let topics = ["t".to_string()];
        let got = emitted(&[
            (0, "a", "a1"),
            (1, "b", "b1"),
            (0, "a", "a2"),
            (1, "c", "c1"),
        ]);
        let agreed = compare(&implied(&WANT), &topics, &got).unwrap();
        assert_eq!(agreed.decisions, 4);
        // One partition: the total order is the fold's.
        let got = emitted(&[
            (0, "a", "a1"),
            (0, "b", "b1"),
            (0, "a", "a2"),
            (0, "c", "c1"),
        ]);
        compare(&implied(&WANT), &topics, &got).unwrap();
    }

    #[test]
    fn every_kind_of_difference_is_found_and_the_earliest_reported() {
        let topics = ["t".to_string()];
        type Case<'a> = (&'a [(i32, &'a str, &'a str)], &'a str);
        let cases: [Case; 6] = [
            // One partition, two records swapped.
            (
                &[
                    (0, "b", "b1"),
                    (0, "a", "a1"),
                    (0, "a", "a2"),
                    (0, "c", "c1"),
                ],
                "journal offset 0",
            ),
            // A decision lost.
            (
                &[(0, "a", "a1"), (0, "b", "b1"), (0, "c", "c1")],
                "journal offset 2",
            ),
            // A decision repeated.
            (
                &[
                    (0, "a", "a1"),
                    (0, "b", "b1"),
                    (0, "a", "a2"),
                    (0, "c", "c1"),
                    (0, "c", "c1"),
                ],
                "more than",
            ),
            // Different bytes.
            (
                &[
                    (0, "a", "a1"),
                    (0, "b", "bX"),
                    (0, "a", "a2"),
                    (0, "c", "c1"),
                ],
                "journal offset 1",
            ),
            // A key never written.
            (
                &[(0, "a", "a1"), (0, "a", "a2"), (0, "c", "c1")],
                "key b: a decision is missing",
            ),
            // A key in two partitions.
            (
                &[
                    (0, "a", "a1"),
                    (0, "b", "b1"),
                    (1, "a", "a2"),
                    (0, "c", "c1"),
                ],
                "in partitions 0 and 1",
            ),
        ];
        for (got, says) in cases {
            let e = compare(&implied(&WANT), &topics, &emitted(got)).unwrap_err();
            assert!(e.contains(says), "{got:?}: {e}");
        }
    }

    fn hunt(cause: i64, key: &str, value: Option<&str>) -> ImpliedRecord {
        ImpliedRecord {
            cause,
            seq: cause as u64,
            key: key.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    fn read(key: &str, value: Option<&str>) -> Emitted {
        Emitted {
            partition: 0,
            key: key.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    /// A hunt topic holds the fold's records in its order: a retirement before the
    /// publication under the campaign merged into, and a tombstone (no value, not an empty
    /// one) where the fold removed a key. A topic not read is not compared.
    #[test]
    fn hunt_topics_compare_in_order_with_their_tombstones() {
        let mut i = implied(&[]);
        let want = vec![
            hunt(0, "C-1/x", Some("published")),
            hunt(1, "C-1/x", Some("retired")),
            hunt(1, "C-2/x", Some("published")),
            hunt(2, "C-1/x", None),
        ];
        i.hunts.insert("h.EST".into(), want);
        i.hunts.insert("h.LVA".into(), Vec::new());
        let good = vec![
            read("C-1/x", Some("published")),
            read("C-1/x", Some("retired")),
            read("C-2/x", Some("published")),
            read("C-1/x", None),
        ];
        let mut got = emitted(&[]);
        got.insert("h.EST".into(), good.clone());
        let agreed = compare(&i, &["t".to_string()], &got).unwrap();
        assert_eq!((agreed.hunts, agreed.hunt_topics), (4, 1));

        let mut swapped = good.clone();
        swapped.swap(1, 2);
        let mut empty = good.clone();
        empty[3].value = Some(Vec::new());
        let cases = [
            (swapped, "h.EST partition 0, record 1"),
            (empty, "differs from the hunt record"),
            (good[..3].to_vec(), "hunt record 3 (key C-1/x) is missing"),
        ];
        for (records, says) in cases {
            got.insert("h.EST".into(), records);
            let e = compare(&i, &["t".to_string()], &got).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        // A member's topic with a record the fold never made.
        got.insert("h.EST".into(), good);
        got.insert("h.LVA".into(), vec![read("C-9/y", Some("stray"))]);
        let e = compare(&i, &["t".to_string()], &got).unwrap_err();
        assert!(e.contains("h.LVA") && e.contains("more than"), "{e}");
    }

    #[test]
    fn pictures_compare_as_a_multiset_and_unchecked_topics_are_named() {
        let mut i = implied(&WANT);
        i.pictures = vec![
            ImpliedRecord {
                cause: 0,
                seq: 10,
                key: b"k".to_vec(),
                value: Some(b"p1".to_vec()),
            },
            ImpliedRecord {
                cause: 1,
                seq: 11,
                key: b"k".to_vec(),
                value: Some(b"p2".to_vec()),
            },
        ];
        let mut got = emitted(&[
            (0, "a", "a1"),
            (0, "b", "b1"),
            (0, "a", "a2"),
            (0, "c", "c1"),
        ]);
        got.insert(
            "pic".into(),
            vec![
                Emitted {
                    partition: 1,
                    key: b"k".to_vec(),
                    value: Some(b"p2".to_vec()),
                },
                Emitted {
                    partition: 0,
                    key: b"k".to_vec(),
                    value: Some(b"p1".to_vec()),
                },
            ],
        );
        assert_eq!(compare(&i, &["t".to_string()], &got).unwrap().pictures, 2);
        got.get_mut("pic").unwrap().pop();
        assert!(compare(&i, &["t".to_string()], &got)
            .unwrap_err()
            .contains("pic"));
        assert!(compare(&i, &[], &BTreeMap::new())
            .unwrap_err()
            .contains("not checked"));
    }
}
