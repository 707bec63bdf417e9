//! The live threat picture: what is being hit, where, how hard, by which techniques, and which
//! attacks on different nations are one campaign.
//!
//! # Scopes and windows
//! Every incident counts in five scopes: the alliance, its nation, its NIS2 sector, its RSIT
//! class and its priority. Each scope has a running total (open incidents and requests, unmet
//! needs, capacity offered and committed) and tumbling windows on *event time* (`occurred_at`)
//! of each configured size: incidents opened and closed, requests, counts by priority and
//! class, techniques and tactics. A window `[start, start + size)` takes events until stream
//! time passes its end plus the allowed lateness; a later event is counted as late in the
//! scope's total, never dropped silently.
//!
//! # Emission
//! A scope-window whose figures change is published at most once per `emit_interval` of
//! stream time, keyed `<scope>/<window>`, to the compacted threat-picture topic: the latest
//! record per key is the current picture. A closed window is published a last time and leaves
//! the state.
//!
//! # RED
//! RED incidents are counted in every figure, but their techniques and indicators never reach
//! the picture or a campaign.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Capability, Priority, RsitClass};
use crate::state::{encode, read, Incident};
use crate::store::{Store, StoreError, StoreMut};

/// Parameters of the picture. Part of what a replay must reproduce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PictureConfig {
    /// Tumbling window sizes in ms, e.g. 1 h and 24 h.
    pub windows_ms: Vec<i64>,
    /// How long after a window's end (in stream time) events may still update it.
    pub allowed_lateness_ms: i64,
    /// At most one publication per key per this much stream time; 0 publishes every change.
    pub emit_interval_ms: i64,
    /// Incidents one indicator value may link; past that the value is capped and links none.
    pub fanout_cap: u32,
    /// How many techniques and tactics a record lists.
    pub top: usize,
}

impl Default for PictureConfig {
    fn default() -> Self {
        Self {
            windows_ms: vec![3_600_000, 86_400_000],
            allowed_lateness_ms: 15 * 60_000,
            emit_interval_ms: 10_000,
            fanout_cap: 50,
            top: 10,
        }
    }
}

/// The scopes an incident counts in, as key segments.
pub fn scopes(i: &Incident) -> [String; 5] {
    [
        "alliance".to_owned(),
        format!("nation:{}", i.nation),
        format!("sector:{}", i.sector.as_str()),
        format!("rsit:{}", i.rsit_class.as_str()),
        format!("priority:{}", i.priority.as_str()),
    ]
}

/// The scope of an offering nation's capacity figures, besides the alliance.
pub fn nation_scope(nation: &str) -> String {
    format!("nation:{nation}")
}

/// Start of the window of `size` that holds event time `t` (floor, also before the epoch).
pub fn window_start(t: i64, size: i64) -> i64 {
    t - t.rem_euclid(size)
}

/// Whether a window ending at `end` still takes events at stream time `now`.
pub fn window_open(end: i64, lateness: i64, now: i64) -> bool {
    now < end.saturating_add(lateness)
}

/// The figures of one scope, in one window or as a running total.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub opened: u32,
    pub closed: u32,
    pub requests: u32,
    /// Events too late for their window (totals only).
    pub late: u32,
    pub by_priority: BTreeMap<Priority, u32>,
    pub by_class: BTreeMap<RsitClass, u32>,
    /// Technique observations of non-RED incidents: (technique code, count), sorted by code
    /// (see [`technique_code`]); compact, as a tally is read and written on every event.
    pub techniques: Vec<(u32, u32)>,
    /// Running totals only.
    pub open_incidents: i64,
    pub open_requests: i64,
    pub unmet_needs: i64,
    /// (offered, committed) units per capability.
    pub capacity: BTreeMap<Capability, (i64, i64)>,
    /// Stream time of the last publication.
    pub last_emitted: Option<i64>,
    /// Stream time of the next publication, when one is due.
    pub scheduled: Option<i64>,
}

/// The tallies a run of events changed, decoded, until [`Tallies::flush`] writes them to the
/// store. Every event changes about ten tallies (five scopes, a running total and windows);
/// a batch of events that shares one cache reads and writes each of them once rather than
/// once per event. [`crate::apply()`] flushes after its one event; the coordinator flushes
/// once per transaction, before it commits the state changes.
///
/// Every entry is a change: a tally (`Some`) or its removal (`None`). Hashed, for the many
/// lookups of a batch; a flush sorts them, so that it writes in the same order every time.
#[derive(Debug, Default)]
pub struct Tallies {
    changed: std::collections::HashMap<Vec<u8>, Option<Tally>>,
}

impl Tallies {
    /// The tally at `key`, a new one if there is none; it will be written back.
    pub fn entry<S: Store + ?Sized>(
        &mut self,
        store: &S,
        key: &[u8],
    ) -> Result<&mut Tally, StoreError> {
        if !self.changed.contains_key(key) {
            let stored = read::<Tally, S>(store, key)?;
            self.changed.insert(key.to_vec(), stored);
        }
        let slot = self.changed.get_mut(key).expect("inserted above");
        Ok(slot.get_or_insert_with(Tally::default))
    }

    /// The tally at `key`, if there is one; it will be written back.
    pub fn existing<S: Store + ?Sized>(
        &mut self,
        store: &S,
        key: &[u8],
    ) -> Result<Option<&mut Tally>, StoreError> {
        if !self.changed.contains_key(key) {
            match read::<Tally, S>(store, key)? {
                Some(t) => self.changed.insert(key.to_vec(), Some(t)),
                None => return Ok(None),
            };
        }
        Ok(self.changed.get_mut(key).and_then(Option::as_mut))
    }

    pub fn contains<S: Store + ?Sized>(&self, store: &S, key: &[u8]) -> Result<bool, StoreError> {
        match self.changed.get(key) {
            Some(t) => Ok(t.is_some()),
            None => Ok(store.get(key)?.is_some()),
        }
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.changed.insert(key.to_vec(), None);
    }

    /// Writes every change to `store` and forgets it.
    pub fn flush<S: StoreMut + ?Sized>(&mut self, store: &mut S) {
        let mut changed: Vec<_> = self.changed.drain().collect();
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, tally) in changed {
            match tally {
                Some(t) => store.put(&key, encode(&t)),
                None => store.delete(&key),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

/// A named count in a published record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub name: String,
    pub count: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityFigure {
    pub capability: Capability,
    pub offered: i64,
    pub committed: i64,
}

/// One published scope-window of the picture (`ThreatPicture` in `schemas/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatPicture {
    /// The Kafka key: `<scope>/total` or `<scope>/<size ms>/<start ms>`.
    pub key: String,
    pub scope: String,
    /// 0 for a running total.
    pub window_ms: i64,
    pub window_start: i64,
    pub stream_time: i64,
    pub incidents_opened: i64,
    pub incidents_closed: i64,
    pub requests_opened: i64,
    pub late_events: i64,
    pub by_priority: Vec<Count>,
    pub by_class: Vec<Count>,
    pub top_techniques: Vec<Count>,
    pub top_tactics: Vec<Count>,
    pub open_incidents: i64,
    pub open_requests: i64,
    pub unmet_needs: i64,
    pub capacity: Vec<CapacityFigure>,
}

/// Why a campaign record was published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignStatus {
    /// It spans two or more nations.
    Active,
    /// Its incidents now belong to the campaign named in `merged_into`.
    Merged,
    /// It no longer spans two nations (a capped indicator no longer links it).
    Dissolved,
}

/// Incidents of several nations linked by shared indicators (`CampaignDetected` and
/// `CampaignUpdated` in `schemas/`). Its id is a public one of its own (`C-<n>`), given when
/// it first spans two nations and kept when it takes others in; which incidents it links does
/// not depend on the order they arrived in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub campaign_id: String,
    pub status: CampaignStatus,
    pub merged_into: Option<String>,
    pub stream_time: i64,
    /// Every nation with an incident in it, RED ones included.
    pub nations: Vec<String>,
    pub incident_count: i64,
    /// Ids of its non-RED incidents.
    pub incidents: Vec<String>,
    pub red_incidents: i64,
    /// Indicator keys that link its non-RED incidents.
    pub indicators: Vec<String>,
    /// Nations that confirmed it by sightings of its values, without an incident in it.
    #[serde(default)]
    pub sighted_in: Vec<String>,
}

/// What the picture publishes, keyed for the compacted topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PictureUpdate {
    Picture(ThreatPicture),
    CampaignDetected(Campaign),
    CampaignUpdated(Campaign),
}

impl PictureUpdate {
    pub fn key(&self) -> String {
        match self {
            PictureUpdate::Picture(p) => p.key.clone(),
            PictureUpdate::CampaignDetected(c) | PictureUpdate::CampaignUpdated(c) => {
                format!("campaign/{}", c.campaign_id)
            }
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            PictureUpdate::Picture(_) => "ThreatPicture",
            PictureUpdate::CampaignDetected(_) => "CampaignDetected",
            PictureUpdate::CampaignUpdated(_) => "CampaignUpdated",
        }
    }
}

/// The published form of a tally: counts sorted, techniques and tactics cut to the top `top`
/// (most seen first, then by name).
pub fn publish(
    key: &str,
    scope: &str,
    window: (i64, i64),
    now: i64,
    t: &Tally,
    top: usize,
) -> ThreatPicture {
    let mut tactics: BTreeMap<String, u32> = BTreeMap::new();
    let mut techniques: BTreeMap<String, u32> = BTreeMap::new();
    for (code, n) in &t.techniques {
        let technique = technique_name(*code);
        for tactic in crate::attack::tactics(&technique) {
            *tactics.entry(tactic.to_owned()).or_default() += n;
        }
        techniques.insert(technique, *n);
    }
    ThreatPicture {
        key: key.to_owned(),
        scope: scope.to_owned(),
        window_ms: window.0,
        window_start: window.1,
        stream_time: now,
        incidents_opened: t.opened as i64,
        incidents_closed: t.closed as i64,
        requests_opened: t.requests as i64,
        late_events: t.late as i64,
        by_priority: counts(
            t.by_priority
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v)),
        ),
        by_class: counts(t.by_class.iter().map(|(k, v)| (k.as_str().to_owned(), *v))),
        top_techniques: top_n(&techniques, top),
        top_tactics: top_n(&tactics, top),
        open_incidents: t.open_incidents,
        open_requests: t.open_requests,
        unmet_needs: t.unmet_needs,
        capacity: t
            .capacity
            .iter()
            .map(|(c, (offered, committed))| CapacityFigure {
                capability: *c,
                offered: *offered,
                committed: *committed,
            })
            .collect(),
    }
}

/// `T1059` → 1_059_000, `T1059.001` → 1_059_001: an ATT&CK id as a number (validation has
/// checked the form).
pub fn technique_code(id: &str) -> Option<u32> {
    let rest = id.strip_prefix('T')?;
    let (base, sub) = rest.split_once('.').unwrap_or((rest, "0"));
    Some(base.parse::<u32>().ok()? * 1_000 + sub.parse::<u32>().ok()?)
}

pub fn technique_name(code: u32) -> String {
    match code % 1_000 {
        0 => format!("T{:04}", code / 1_000),
        sub => format!("T{:04}.{sub:03}", code / 1_000),
    }
}

/// Counts one observation of `technique` in a tally's sorted list.
pub fn count_technique(list: &mut Vec<(u32, u32)>, technique: &str) {
    let Some(code) = technique_code(technique) else {
        return;
    };
    match list.binary_search_by_key(&code, |(c, _)| *c) {
        Ok(at) => list[at].1 += 1,
        Err(at) => list.insert(at, (code, 1)),
    }
}

fn counts(items: impl Iterator<Item = (String, u32)>) -> Vec<Count> {
    items
        .map(|(name, n)| Count {
            name,
            count: n as i64,
        })
        .collect()
}

fn top_n(map: &BTreeMap<String, u32>, n: usize) -> Vec<Count> {
    let mut v: Vec<(&String, &u32)> = map.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(n)
        .map(|(name, c)| Count {
            name: name.clone(),
            count: *c as i64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_half_open_and_floor_before_the_epoch() {
        let h = 3_600_000;
        assert_eq!(window_start(0, h), 0);
        assert_eq!(window_start(h - 1, h), 0);
        assert_eq!(window_start(h, h), h);
        assert_eq!(window_start(-1, h), -h);
        assert_eq!(window_start(5 * h + 7, h), 5 * h);
    }

    #[test]
    fn a_window_takes_events_until_its_end_plus_the_lateness() {
        let (end, lateness) = (10_000, 500);
        assert!(window_open(end, lateness, 10_499));
        assert!(!window_open(end, lateness, 10_500));
        assert!(!window_open(end, 0, end));
    }

    #[test]
    fn technique_ids_round_trip_through_their_codes() {
        for id in ["T1059", "T1059.001", "T0800", "T1486"] {
            assert_eq!(technique_name(technique_code(id).unwrap()), id);
        }
        let mut list = Vec::new();
        for t in ["T1486", "T1059.001", "T1486"] {
            count_technique(&mut list, t);
        }
        assert_eq!(list, vec![(1_059_001, 1), (1_486_000, 2)]);
    }

    #[test]
    fn the_top_list_is_most_seen_first_then_by_name() {
        let m: BTreeMap<String, u32> = [("T2", 3), ("T1", 3), ("T3", 5), ("T4", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let names: Vec<String> = top_n(&m, 3).into_iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["T3", "T1", "T2"]);
    }
}
