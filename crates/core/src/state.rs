//! Typed state over a [`Store`]: the entities the coordinator keeps, their keys and encoding.
//!
//! # Key layout (ASCII, `/`-separated; ids never contain `/`, validation sees to it)
//! - `m/stream_time`, `m/seq`: stream time and the assignment counter
//! - `e/<event_id>`: seen event ids (deduplication)
//! - `i/<incident_id>`, `r/<request_id>`, `o/<offer_id>`, `a/<assignment_id>`: entities
//! - `w/<capability>/<rank>/<request_id>/<need>`: needs still missing units, best rank first
//! - `c/<capability>/<offer_id>`: offers with free capacity, by capability
//! - `f/<capability>/<closes_at hex>/<offer_id>`: offers with none left, by the time their window
//!   closes for good; `m/full/<capability>`: how many
//! - `d/<deadline hex>/<assignment_id>`: acceptance deadlines in stream-time order
//! - `t/<time hex>/<offer_id>`: offers whose window opens later, by the stream time from which
//!   they can be proposed (window start minus response time)
//! - `p/<scope>/t`, `p/<scope>/w/<size hex>/<start hex>`: threat-picture tallies
//! - `q/<time hex>/<tally>`: tallies whose next publication is due then
//! - `z/<time hex>/<tally>`: windows that close then (end plus allowed lateness)
//! - `x/<indicator key>`: incidents one normalized indicator links (capped)
//! - `g/<incident_id>`: an incident's campaign
//! - `k/<campaign_id>`: a campaign's members
//! - `n/<request_id>`: requests whose incident is open
//! - `s/<indicator key>`: nations that sighted a value
//! - `h/<campaign public id>/<indicator key>`: a campaign's hunt indicators, published or
//!   retired ([`HuntEntry`]); `h/<campaign public id>/~/<indicator key>`: values worked out
//!   that have none
//! - `y/<time hex>/<campaign public id>/<indicator key>`: when a hunt indicator is due next
//!   (its next score step, its expiry, or the tombstone after its retirement)
//!
//! Values are postcard-encoded, prefixed by a format byte so that a later layout can be told
//! apart from this one.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::{
    Capability, Delivery, HuntRelease, Impact, Pap, Priority, RsitClass, Sector, Tlp,
};
use crate::store::{Store, StoreError, StoreMut};

/// 2: needs carry a delivery preference, offers their sector expertise and delivery.
/// 3: campaigns carry the public id they are published under.
/// 4: full offers are listed by the end of their window, and counted (`m/full/`).
/// 5: an incident holds its indicator keys (no `v/<incident_id>` key of their own).
/// 6: an incident holds whether its indicators may be released to hunts.
/// 7: an incident holds its PAP; campaigns' hunt indicators (`h/`, `y/`).
const FORMAT: u8 = 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: String,
    pub nation: String,
    pub title: String,
    pub tlp: Tlp,
    pub sector: Sector,
    pub rsit_class: RsitClass,
    pub priority: Priority,
    pub essential_entity: bool,
    pub cross_border: bool,
    pub impact: Impact,
    pub techniques: Vec<String>,
    pub open: bool,
    pub requests: Vec<String>,
    /// The normalized indicator values it reported that link (see [`crate::indicator`]), in
    /// the order they were first reported: its part of the correlation.
    pub indicator_keys: Vec<String>,
    /// Whether its indicators may go to every member's hunt (see [`crate::hunt::release`]).
    pub hunt_release: HuntRelease,
    /// What recipients may do with its indicators (see [`crate::hunt::most_restrictive`]).
    pub pap: Pap,
    /// The confidence (0–100) it stated for some of its linking values, the highest where it
    /// reported a value more than once, sorted by value.
    pub stated_confidence: Vec<(String, u8)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub capability: Capability,
    pub units: i32,
    /// Units held by proposed or confirmed assignments.
    pub covered: i32,
    /// Offers this need must not use again (declined or timed out).
    pub excluded_offers: Vec<String>,
    /// Missing units last announced by `AssistanceUnmet`, so it is said again only on change.
    pub unmet_announced: i32,
    pub delivery: Delivery,
}

impl Need {
    pub fn missing(&self) -> i32 {
        self.units - self.covered
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub request_id: String,
    pub incident_id: String,
    pub nation: String,
    pub reported_at: i64,
    pub own_measures: i32,
    pub needs: Vec<Need>,
    pub assignments: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub offer_id: String,
    pub nation: String,
    pub capability: Capability,
    pub capacity: i32,
    /// Units held by proposed or confirmed assignments.
    pub committed: i32,
    pub available_from: i64,
    pub available_until: i64,
    pub response_time_ms: i64,
    pub eligible_nations: Vec<String>,
    pub excluded_nations: Vec<String>,
    pub max_tlp: Tlp,
    pub sector_expertise: Vec<Sector>,
    pub delivery: Delivery,
    /// Proposed and confirmed assignments, oldest first.
    pub assignments: Vec<String>,
}

impl Offer {
    pub fn remaining(&self) -> i32 {
        self.capacity - self.committed
    }

    /// The stream time from which the team can be there within its window.
    pub fn opens_at(&self) -> i64 {
        self.available_from.saturating_sub(self.response_time_ms)
    }

    /// The stream time after which the team can no longer be there within its window.
    pub fn closes_at(&self) -> i64 {
        self.available_until.saturating_sub(self.response_time_ms)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssignmentStatus {
    Proposed,
    Confirmed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub assignment_id: String,
    pub request_id: String,
    pub need: u8,
    pub offer_id: String,
    pub provider: String,
    pub units: i32,
    pub status: AssignmentStatus,
    pub respond_by: i64,
}

/// `parts` one after the other. Keys are built many times per event: this costs a fraction of
/// `format!`.
fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `v` as 16 lowercase hex digits, as `format!("{v:016x}")`.
fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

pub const INCIDENTS: &[u8] = b"i/";
pub const REQUESTS: &[u8] = b"r/";

pub fn incident_key(id: &str) -> Vec<u8> {
    key(&[INCIDENTS, id.as_bytes()])
}

pub fn request_key(id: &str) -> Vec<u8> {
    key(&[REQUESTS, id.as_bytes()])
}

pub const OFFERS: &[u8] = b"o/";
pub const ASSIGNMENTS: &[u8] = b"a/";
pub const CAMPAIGNS: &[u8] = b"k/";
/// The keyspaces derived from one entity each (see [`crate::derived`]).
pub const FREE_OFFERS: &[u8] = b"c/";
pub const FULL_OFFERS: &[u8] = b"f/";
pub const FULL_COUNTS: &[u8] = b"m/full/";
pub const MEMBERSHIPS: &[u8] = b"g/";

pub fn offer_key(id: &str) -> Vec<u8> {
    key(&[OFFERS, id.as_bytes()])
}

pub fn assignment_key(id: &str) -> Vec<u8> {
    key(&[ASSIGNMENTS, id.as_bytes()])
}

/// The ids of the events applied: `e/<event id>`, marked once and never removed.
pub const SEEN: &[u8] = b"e/";

pub fn seen_key(event_id: &str) -> Vec<u8> {
    key(&[SEEN, event_id.as_bytes()])
}

pub fn offers_prefix(c: Capability) -> Vec<u8> {
    key(&[FREE_OFFERS, c.as_str().as_bytes(), b"/"])
}

pub fn offer_index_key(c: Capability, offer_id: &str) -> Vec<u8> {
    key(&[
        FREE_OFFERS,
        c.as_str().as_bytes(),
        b"/",
        offer_id.as_bytes(),
    ])
}

pub fn full_offers_prefix(c: Capability) -> Vec<u8> {
    key(&[FULL_OFFERS, c.as_str().as_bytes(), b"/"])
}

/// An offer with no free capacity left: not matched, but counted in rationales as excluded by
/// `no_remaining_capacity` until its window closes for good (`closes_at`, which orders them).
pub fn full_offer_key(c: Capability, closes_at: i64, offer_id: &str) -> Vec<u8> {
    let prefix = full_offers_prefix(c);
    timed_key(&prefix, closes_at, offer_id)
}

/// How many offers of capability `c` are listed as full: `u32`, kept with the `f/` index so
/// that rationales count them without reading them.
pub fn full_count_key(c: Capability) -> Vec<u8> {
    key(&[FULL_COUNTS, c.as_str().as_bytes()])
}

/// Needs still missing units, by capability and rank (derived from a request and its incident).
pub const WAITING: &[u8] = b"w/";

pub fn waiting_prefix(c: Capability) -> Vec<u8> {
    key(&[WAITING, c.as_str().as_bytes(), b"/"])
}

/// Waiting-need key: ascending order is best rank first (see [`crate::rank`]).
pub fn waiting_key(c: Capability, rank: &str, request_id: &str, need: u8) -> Vec<u8> {
    let need = [b'0' + need / 100, b'0' + need / 10 % 10, b'0' + need % 10];
    key(&[
        WAITING,
        c.as_str().as_bytes(),
        b"/",
        rank.as_bytes(),
        b"/",
        request_id.as_bytes(),
        b"/",
        &need,
    ])
}

pub const DEADLINES: &[u8] = b"d/";

/// The index keyspaces: small (their size follows the open work — waiting needs, offers with
/// free capacity, pending proposals — not the history) and scanned on every event. A store
/// may keep them in memory; the entities and the seen event ids stay on disk.
pub const INDEX_PREFIXES: [&[u8]; 7] = [
    FREE_OFFERS,
    FULL_OFFERS,
    WAITING,
    DEADLINES,
    OPENINGS,
    PUBLISH,
    CLOSING,
];

pub const OPENINGS: &[u8] = b"t/";
pub const PUBLISH: &[u8] = b"q/";
pub const CLOSING: &[u8] = b"z/";
pub const TALLIES: &[u8] = b"p/";

/// `<prefix><time hex>/<id>`, for the time-ordered indexes (`d/`, `t/`, `q/`, `z/`).
pub fn timed(prefix: &[u8], at: i64, id: &str) -> Vec<u8> {
    timed_key(prefix, at, id)
}

pub fn total_key(scope: &str) -> Vec<u8> {
    key(&[b"p/", scope.as_bytes(), b"/t"])
}

pub fn window_key(scope: &str, size: i64, start: i64) -> Vec<u8> {
    let (size, start) = (hex16(size.max(0) as u64), hex16(start.max(0) as u64));
    key(&[b"p/", scope.as_bytes(), b"/w/", &size, b"/", &start])
}

/// (scope, window size, window start) of a tally key; size 0 for a running total.
pub fn parse_tally_key(key: &[u8]) -> Option<(String, i64, i64)> {
    let text = std::str::from_utf8(key.strip_prefix(TALLIES)?).ok()?;
    let (scope, rest) = text.split_once('/')?;
    if rest == "t" {
        return Some((scope.to_owned(), 0, 0));
    }
    let mut parts = rest.strip_prefix("w/")?.split('/');
    let size = i64::from_str_radix(parts.next()?, 16).ok()?;
    let start = i64::from_str_radix(parts.next()?, 16).ok()?;
    Some((scope.to_owned(), size, start))
}

pub fn posting_key(indicator: &str) -> Vec<u8> {
    key(&[b"x/", indicator.as_bytes()])
}

/// What the sightings of a normalized indicator value add up to, alliance-wide:
/// [`crate::hunt::SightingTally`].
pub fn sightings_key(indicator: &str) -> Vec<u8> {
    key(&[b"s/", indicator.as_bytes()])
}

/// The nations that confirmed a campaign by sightings rather than incidents: those that
/// sighted one of its values below the cap (RED members' values are not its own), without an
/// incident in it. Sorted.
pub fn sighted_in<S: Store + ?Sized>(
    store: &S,
    campaign: &CampaignState,
) -> Result<Vec<String>, StoreError> {
    let mut out = std::collections::BTreeSet::new();
    for value in campaign.counts.keys() {
        if let Some(tally) = read::<crate::hunt::SightingTally, S>(store, &sightings_key(value))? {
            out.extend(
                tally
                    .sighted_by
                    .into_iter()
                    .filter(|n| !campaign.nations.contains_key(n)),
            );
        }
    }
    Ok(out.into_iter().collect())
}

pub const HUNTS: &[u8] = b"h/";
pub const HUNT_DUE: &[u8] = b"y/";

/// Where a campaign's hunt indicators are kept: `h/<public id>/`.
pub fn hunt_prefix(campaign: &str) -> Vec<u8> {
    key(&[HUNTS, campaign.as_bytes(), b"/"])
}

pub fn hunt_key(campaign: &str, indicator: &str) -> Vec<u8> {
    key(&[HUNTS, campaign.as_bytes(), b"/", indicator.as_bytes()])
}

/// Under a campaign's hunt prefix, before a value: the value was worked out and has no entry
/// (not released, blocked, or expired and removed). Indicator keys start with their kind, never
/// with `~`.
pub const HUNT_HELD: &[u8] = b"~/";

pub fn hunt_held_key(campaign: &str, indicator: &str) -> Vec<u8> {
    key(&[
        HUNTS,
        campaign.as_bytes(),
        b"/",
        HUNT_HELD,
        indicator.as_bytes(),
    ])
}

/// The coordination cell's review of a value of a campaign, as last told
/// ([`crate::hunt::HuntReview`]): `v/<public id>/<value>`.
pub fn review_key(campaign: &str, indicator: &str) -> Vec<u8> {
    key(&[b"v/", campaign.as_bytes(), b"/", indicator.as_bytes()])
}

pub fn review_prefix(campaign: &str) -> Vec<u8> {
    key(&[b"v/", campaign.as_bytes(), b"/"])
}

/// A campaign's hunt indicator as last published or retired, and what its next change depends
/// on (docs/architecture.md, "Hunt packages").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuntEntry {
    /// As last published, or retired.
    pub indicator: crate::hunt::HuntIndicator,
    /// The score at the last refresh, from which it decays.
    pub base: u8,
    /// Stream time of the last refresh: the score and `valid_until` count from it.
    pub refreshed_at: i64,
    /// The open incidents that released it at the last refresh, sorted: one more refreshes it.
    pub basis: Vec<String>,
    /// Why it was retired; `None` while it is published.
    pub retired: Option<crate::hunt::RetireReason>,
    /// Its record was removed from the topics (only a false positive's entry is kept then, so
    /// that the value is never published again for the campaign).
    pub removed: bool,
    /// The stream time of its `y/` key; 0 for none.
    pub due: i64,
    /// Nations that reported it as a false positive, sorted.
    pub false_positives: Vec<String>,
}

pub fn membership_key(incident: &str) -> Vec<u8> {
    key(&[MEMBERSHIPS, incident.as_bytes()])
}

pub fn campaign_key(id: &str) -> Vec<u8> {
    key(&[CAMPAIGNS, id.as_bytes()])
}

/// The incidents one indicator value links. Past the fan-out cap the list is dropped and the
/// value links nothing: a value seen everywhere (a public resolver, a CDN) says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// Sorted incident ids, at most the cap.
    pub incidents: Vec<String>,
    pub capped: bool,
    /// Incidents that reported the value, capped or not.
    pub seen: u64,
}

/// A campaign as the correlation keeps it: enough to publish it and to merge it with
/// another without reading its members again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignState {
    /// Sorted incident ids; one of them is the campaign's internal id (its state key), which
    /// never leaves the coordinator.
    pub members: Vec<String>,
    /// Whether it was last published as active (spanning two or more nations).
    pub active: bool,
    /// The linking indicators it was last published with.
    pub indicators: Vec<String>,
    /// Members per nation, RED ones included.
    pub nations: std::collections::BTreeMap<String, u32>,
    /// Sorted ids of its RED members.
    pub red: Vec<String>,
    /// Non-RED members reporting each indicator value below the cap.
    pub counts: std::collections::BTreeMap<String, u32>,
    /// The id it is published under (`C-000001`, …), given when it is first published: a
    /// number in order of detection, so it reveals nothing of its incidents.
    pub public: Option<String>,
}

/// Running counts of the correlation and the picture, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PictureStats {
    pub indicator_values: u64,
    pub capped_values: u64,
    pub active_campaigns: i64,
    pub late_events: u64,
    /// Hunt indicators published and not retired, over every campaign.
    pub hunt_indicators: i64,
    /// Incidents whose ALLIANCE release their AMBER_STRICT or RED marking overrode.
    pub hunt_overridden: u64,
    /// The start of the publish rate's current hour, in stream time, and how many indicators
    /// were newly published in it.
    pub hunt_window: i64,
    pub hunt_window_new: u32,
    /// Indicators deferred by the publish rate, over time.
    pub hunt_deferred: u64,
}

pub const PICTURE_STATS: &[u8] = b"m/picture";

pub const OPEN_REQUESTS: &[u8] = b"n/";

pub fn open_request_key(request_id: &str) -> Vec<u8> {
    [OPEN_REQUESTS, request_id.as_bytes()].concat()
}

pub fn deadline_key(respond_by: i64, assignment_id: &str) -> Vec<u8> {
    timed_key(DEADLINES, respond_by, assignment_id)
}

pub fn opening_key(at: i64, offer_id: &str) -> Vec<u8> {
    timed_key(OPENINGS, at, offer_id)
}

fn timed_key(prefix: &[u8], at: i64, id: &str) -> Vec<u8> {
    // Stream times are validated positive, so hex of the u64 sorts numerically.
    key(&[prefix, &hex16(at.max(0) as u64), b"/", id.as_bytes()])
}

/// Parses the time out of a `d/` or `t/` key.
pub fn deadline_of(key: &[u8]) -> Option<i64> {
    time_after(key, 2)
}

/// Parses the 16 hex digits of time at `at` in a key.
pub fn time_after(key: &[u8], at: usize) -> Option<i64> {
    let hex = key.get(at..at + 16)?;
    i64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// The id after the time in a `d/` or `t/` key.
pub fn timed_id(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(19..).unwrap_or_default()).into_owned()
}

const STREAM_TIME: &[u8] = b"m/stream_time";
const SEQ: &[u8] = b"m/seq";
const CAMPAIGN_SEQ: &[u8] = b"m/campaign_seq";

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // Serializing plain owned data into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("postcard encodes owned data"));
    out
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail,
    };
    match bytes.split_first() {
        Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|e| corrupt(e.to_string())),
        Some((other, _)) if *other < FORMAT => Err(corrupt(format!(
            "unknown format byte {other}: written by an older Rallypoint (state format {other}, \
             this version reads {FORMAT}); start this version on a new kafka.namespace and \
             state.dir, or remove the old topics and state"
        ))),
        Some((other, _)) => Err(corrupt(format!("unknown format byte {other}"))),
        None => Err(corrupt("empty value".into())),
    }
}

/// The typed value under `key`, for readers that hold the store only to read it.
pub fn read<T: DeserializeOwned, S: Store + ?Sized>(
    store: &S,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match store.get(key)? {
        Some(bytes) => decode(key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Stream time as the fold last set it (0 before the first event).
pub fn stream_time<S: Store + ?Sized>(store: &S) -> Result<i64, StoreError> {
    Ok(read(store, STREAM_TIME)?.unwrap_or(0))
}

/// Typed access to the coordinator's state: the entities through the transaction's working
/// set ([`crate::working`]), everything else on the store.
pub struct State<'s, S: StoreMut> {
    pub store: &'s mut S,
    entities: &'s mut crate::working::EntitySet,
}

impl<'s, S: StoreMut> State<'s, S> {
    pub(crate) fn new(store: &'s mut S, entities: &'s mut crate::working::EntitySet) -> Self {
        Self { store, entities }
    }

    pub fn load<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        read(&*self.store, key)
    }

    pub fn save<T: Serialize>(&mut self, key: &[u8], value: &T) {
        self.store.put(key, encode(value));
    }

    pub fn mark(&mut self, key: &[u8]) {
        self.store.put(key, Vec::new());
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.store.delete(key);
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.store.get(key)?.is_some())
    }

    pub fn stream_time(&self) -> Result<i64, StoreError> {
        stream_time(&*self.store)
    }

    pub fn set_stream_time(&mut self, t: i64) {
        self.save(STREAM_TIME, &t);
    }

    /// Next value of the assignment counter.
    pub fn next_seq(&mut self) -> Result<u64, StoreError> {
        let next = self.load::<u64>(SEQ)?.unwrap_or(0) + 1;
        self.save(SEQ, &next);
        Ok(next)
    }

    /// Whether `id` names an assignment that was made and has ended: assignment ids are
    /// `A-<seq>` from [`State::next_seq`], and an ended one leaves the state.
    pub fn assignment_ended(&self, id: &str) -> Result<bool, StoreError> {
        let Some(n) = id
            .strip_prefix("A-")
            .filter(|n| n.len() >= 8 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return Ok(false);
        };
        let issued = self.load::<u64>(SEQ)?.unwrap_or(0);
        Ok(n >= 1 && n <= issued && !self.contains(&assignment_key(id))?)
    }

    /// The next public campaign id: `C-000001`, `C-000002`, … in order of first publication.
    pub fn next_campaign_id(&mut self) -> Result<String, StoreError> {
        let next = self.load::<u64>(CAMPAIGN_SEQ)?.unwrap_or(0) + 1;
        self.save(CAMPAIGN_SEQ, &next);
        Ok(format!("C-{next:06}"))
    }

    pub fn incident(&self, id: &str) -> Result<Option<std::rc::Rc<Incident>>, StoreError> {
        self.entities.incident(&*self.store, id)
    }

    pub fn request(&self, id: &str) -> Result<Option<std::rc::Rc<Request>>, StoreError> {
        self.entities.request(&*self.store, id)
    }

    /// An offer, owned: the fold changes the offers it reads (rounds commit their units).
    pub fn offer(&self, id: &str) -> Result<Option<Offer>, StoreError> {
        Ok(self
            .entities
            .offer(&*self.store, id)?
            .map(std::rc::Rc::unwrap_or_clone))
    }

    pub fn assignment(&self, id: &str) -> Result<Option<Assignment>, StoreError> {
        self.load(&assignment_key(id))
    }

    pub fn put_incident(&mut self, v: &Incident) {
        self.entities.put_incident(v);
    }

    pub fn put_request(&mut self, v: &Request) {
        self.entities.put_request(v);
    }

    /// [`State::put_request`] of a request the caller holds shared: no copy.
    pub fn put_request_shared(&mut self, v: std::rc::Rc<Request>) {
        self.entities.put_request_shared(v);
    }

    pub fn put_offer(&mut self, v: &Offer) {
        self.entities.put_offer(v);
    }

    pub fn delete_offer(&mut self, id: &str) {
        self.entities.delete_offer(id);
    }

    pub fn put_assignment(&mut self, v: &Assignment) {
        self.save(&assignment_key(&v.assignment_id), v);
    }

    /// Live offers of one capability, in offer-id order.
    pub fn offers_of(&self, c: Capability) -> Result<Vec<Offer>, StoreError> {
        let mut offers = Vec::new();
        for (key, _) in self.store.scan_prefix(&offers_prefix(c))? {
            let id = std::str::from_utf8(&key[offers_prefix(c).len()..]).unwrap_or_default();
            if let Some(o) = self.offer(id)? {
                offers.push(o);
            }
        }
        Ok(offers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_keys_sort_by_time_and_parse_back() {
        let early = deadline_key(1_700_000_000_000, "A-9");
        let late = deadline_key(1_700_000_000_001, "A-1");
        assert!(early < late);
        assert_eq!(deadline_of(&early), Some(1_700_000_000_000));
    }

    /// The keys of states written by earlier versions: built without `format!` now, the same
    /// bytes.
    #[test]
    fn keys_are_the_bytes_earlier_versions_wrote() {
        for (t, id) in [
            (0i64, "A"),
            (1_800_000_000_123, "A-1/x"),
            (-5, ""),
            (i64::MAX, "é"),
        ] {
            let hex = format!("{:016x}", t.max(0) as u64);
            assert_eq!(deadline_key(t, id), format!("d/{hex}/{id}").into_bytes());
            assert_eq!(opening_key(t, id), format!("t/{hex}/{id}").into_bytes());
            assert_eq!(
                window_key(id, t, t / 2),
                format!("p/{id}/w/{hex}/{:016x}", (t / 2).max(0)).into_bytes()
            );
        }
        for need in [0u8, 7, 42, 255] {
            assert_eq!(
                waiting_key(Capability::IcsOt, "1:2", "R-1", need),
                format!("w/{}/1:2/R-1/{need:03}", Capability::IcsOt.as_str()).into_bytes()
            );
        }
        assert_eq!(total_key("nation/EST"), b"p/nation/EST/t".to_vec());
        assert_eq!(seen_key("e1"), b"e/e1".to_vec());
        assert_eq!(
            offer_index_key(Capability::Forensics, "O-1"),
            format!("c/{}/O-1", Capability::Forensics.as_str()).into_bytes()
        );
    }

    #[test]
    fn a_value_with_an_unknown_format_byte_is_reported_as_corrupt() {
        let err = decode::<u64>(b"m/seq", &[9, 1]).unwrap_err();
        assert!(err.to_string().contains("unknown format byte 9"), "{err}");
    }
}
