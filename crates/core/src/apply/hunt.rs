//! Hunt packages on stream time (docs/architecture.md, "Hunt packages"): an active campaign's
//! values become indicators on every member's hunt topic, and leave it again.
//!
//! - [`Fold::hunt_campaign`] runs whenever an active campaign is saved, and when one of its
//!   incidents closes: it works out the package (`crate::hunt::package`: release, warninglists,
//!   cap) from the campaign's values and the open incidents that reported each, publishes what
//!   is new or changed and retires what no longer goes (RELEASE_WITHDRAWN, WARNINGLISTED, or
//!   CAMPAIGN_DISSOLVED for a value the campaign no longer holds).
//! - [`Fold::hunt_withdraw`] retires every indicator of a campaign that was merged or
//!   dissolved (CAMPAIGN_DISSOLVED); the campaign it went into publishes them under its id.
//! - [`Fold::hunt_due`], on every event: indicators whose next score step, expiry, or tombstone
//!   has come in stream time.
//!
//! An indicator is refreshed (its score back to its base, `valid_until` a lifetime ahead) when
//! an open incident releases it that did not at the last refresh.

use std::collections::{BTreeMap, BTreeSet};

use super::{Fold, Output};
use crate::event::Pap;
use crate::event::{Sector, Tlp};
use crate::hunt::{
    self, decay, Disposition, HuntIndicator, HuntReview, HuntUpdate, Outcome, Release,
    RetireReason, SightingSummary, SightingTally,
};
use crate::state::*;
use crate::store::{StoreError, StoreMut};

/// What the open incidents that reported one value say about it.
#[derive(Default)]
struct Basis {
    releases: Vec<Release>,
    /// Ids of the incidents that release it, sorted.
    releasing: Vec<String>,
    nations: BTreeSet<String>,
    sectors: BTreeSet<Sector>,
    phases: BTreeSet<&'static str>,
    paps: Vec<Pap>,
    /// The highest confidence a releasing incident stated for the value, if any did.
    stated: Option<u8>,
}

/// How sure the releasing reports make a value, 0–100: the highest confidence one of them
/// stated for it (50 when none did), 15 more for each further nation that reported it, at most
/// 95.
pub fn confidence(nations: usize, stated: Option<u8>) -> u8 {
    (usize::from(stated.unwrap_or(50).min(100)) + 15 * nations.saturating_sub(1)).min(95) as u8
}

impl<S: StoreMut> Fold<'_, '_, S> {
    /// Brings the hunt package of the active campaign `state` up to date: works out again the
    /// values new to its package and those whose reporting incidents changed in this event
    /// (`hunt_touched`); every other value's outcome stands.
    pub(super) fn hunt_campaign(&mut self, state: &CampaignState) -> Result<(), StoreError> {
        let Some(public) = state.public.as_deref().filter(|_| state.active) else {
            return Ok(());
        };
        let (mut entries, mut held) = self.hunt_entries(public)?;
        let due = |k: &String| {
            (!entries.contains_key(k) && !held.contains(k)) || self.hunt_touched.contains(k)
        };
        // Published values not worked out again keep their places under the cap.
        let standing = entries
            .iter()
            .filter(|(k, e)| e.retired.is_none() && !due(k) && state.counts.contains_key(*k))
            .count();
        // Values published before come first, so that the cap never pushes one out for a
        // newcomer; then the most reported.
        let mut order: Vec<(bool, u32, &String)> = state
            .counts
            .iter()
            .filter(|(k, _)| due(k))
            .map(|(k, c)| (entries.get(k).is_some_and(|e| e.retired.is_none()), *c, k))
            .collect();
        order.sort_by(|a, b| (b.0, b.1, a.2).cmp(&(a.0, a.1, b.2)));
        let mut bases = BTreeMap::new();
        for (_, _, key) in &order {
            bases.insert((*key).clone(), self.hunt_basis(key)?);
        }
        let package = hunt::package(
            order
                .iter()
                .map(|(_, _, k)| (k.as_str(), bases[*k].releases.clone())),
            &self.config.hunt.lists,
            self.config.hunt.max_indicators.saturating_sub(standing),
        );
        for candidate in package {
            let key = candidate.key.as_str();
            let entry = entries.remove(key);
            let was_held = held.remove(key);
            let basis = &bases[key];
            let (outcome, held_as) = match candidate.outcome {
                Outcome::Publish {
                    pattern,
                    id,
                    tlp,
                    inform,
                } => {
                    // Not published now (new, or back after a retirement): it counts toward
                    // the hour's publish rate, or waits for the next hour.
                    let fresh = entry.as_ref().is_none_or(|e| {
                        e.retired.is_some() && e.retired != Some(RetireReason::FalsePositive)
                    });
                    if fresh {
                        if let Some(until) = self.hunt_rate_spent(state)? {
                            if let Some(e) = entry {
                                entries.insert(key.to_owned(), e);
                            }
                            if !was_held {
                                self.st.mark(&hunt_held_key(public, key));
                            }
                            self.hunt_review(public, key, Disposition::Deferred { until })?;
                            continue;
                        }
                    }
                    if was_held {
                        self.st.remove(&hunt_held_key(public, key));
                    }
                    let (disposition, new) =
                        self.hunt_publish(public, key, entry, basis, (pattern, id, tlp, inform))?;
                    if let Some(indicator) = new {
                        self.hunt_tell(state, key, &indicator, None)?;
                    }
                    self.hunt_review(public, key, disposition)?;
                    continue;
                }
                Outcome::Withheld { overridden } => (
                    Some(RetireReason::ReleaseWithdrawn),
                    Disposition::Withheld { overridden },
                ),
                Outcome::Blocked { list } => (
                    Some(RetireReason::Warninglisted),
                    Disposition::Blocked { list },
                ),
                // Past the cap: worked out again at the next change, a place may be free.
                Outcome::Truncated => (None, Disposition::Truncated),
                Outcome::NotHunted => {
                    (Some(RetireReason::ReleaseWithdrawn), Disposition::NotHunted)
                }
            };
            let disposition = match (entry, outcome) {
                (Some(e), Some(reason)) => {
                    let disposition = Disposition::Retired {
                        indicator_id: e.indicator.indicator_id.clone(),
                        reason: e.retired.unwrap_or(reason),
                    };
                    self.hunt_retire(public, key, Some(e), reason, false)?;
                    disposition
                }
                // A published value is never truncated (it comes first); a retired one stays so.
                (Some(e), None) => disposition_of(&e),
                (None, _) => {
                    if !was_held {
                        self.st.mark(&hunt_held_key(public, key));
                    }
                    held_as
                }
            };
            self.hunt_review(public, key, disposition)?;
        }
        // Values the campaign no longer holds.
        self.hunt_drop(public, entries, held, |k| state.counts.contains_key(k))
    }

    /// Retires every published indicator of the campaign published as `public`: it was merged
    /// into another or dissolved.
    pub(super) fn hunt_withdraw(&mut self, public: &str) -> Result<(), StoreError> {
        let (entries, held) = self.hunt_entries(public)?;
        self.hunt_drop(public, entries, held, |_| false)
    }

    /// Of campaign `public`'s values with an entry or a held marker, those it does not `keep`
    /// leave it: a published one retires (CAMPAIGN_DISSOLVED), and the cell's review goes
    /// (every reviewed value has one or the other).
    fn hunt_drop(
        &mut self,
        public: &str,
        entries: BTreeMap<String, HuntEntry>,
        held: BTreeSet<String>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(), StoreError> {
        for (key, entry) in entries {
            if !keep(&key) {
                let reason = RetireReason::CampaignDissolved;
                self.hunt_retire(public, &key, Some(entry), reason, false)?;
                self.hunt_unreview(public, &key)?;
            }
        }
        for key in held {
            if !keep(&key) {
                self.st.remove(&hunt_held_key(public, &key));
                self.hunt_unreview(public, &key)?;
            }
        }
        Ok(())
    }

    /// Re-runs the package of the active campaign `incident` belongs to, if any: after the
    /// incident closed, it no longer releases its values.
    pub(super) fn hunt_incident_campaign(&mut self, incident: &str) -> Result<(), StoreError> {
        let Some(id) = self.st.load::<String>(&membership_key(incident))? else {
            return Ok(());
        };
        let Some(state) = self.st.load::<CampaignState>(&campaign_key(&id))? else {
            return Ok(());
        };
        self.hunt_campaign(&state)
    }

    /// A nation's sighting of the normalized value `key`, for the hunt indicator of the
    /// campaign that holds it (`state`, through the value's `posting`), if it is active;
    /// `tally` is the value's sightings with this one, `told` whether they changed notably
    /// ([`SightingTally::changed_notably`]): then the campaign's nations and the cell hear of
    /// them (a summary of a published indicator, and the value's review). A
    /// SIGHTING or TRUE_POSITIVE refreshes it once its score has fallen a step since the last
    /// refresh (so that sightings, the most frequent input, publish at most once a step); a FALSE_POSITIVE retires it at once when the nation
    /// reported the value itself, otherwise once at least max(2, half of the nations that
    /// sighted it) have. EXPIRATION is recorded on the journal only.
    pub(super) fn hunt_sighted(
        &mut self,
        key: &str,
        nation: &str,
        kind: crate::event::SightingKind,
        (posting, state): (&Posting, &CampaignState),
        (tally, told): (&SightingTally, bool),
    ) -> Result<(), StoreError> {
        use crate::event::SightingKind;
        let Some(public) = state.public.as_deref().filter(|_| state.active) else {
            return Ok(());
        };
        if told {
            self.hunt_review_tally(public, key, tally)?;
        }
        let at = hunt_key(public, key);
        let Some(mut entry) = self.st.load::<HuntEntry>(&at)? else {
            return Ok(());
        };
        if entry.retired.is_some() {
            return Ok(());
        }
        if told {
            self.hunt_tell(state, key, &entry.indicator, Some(tally))?;
        }
        match kind {
            SightingKind::Sighting | SightingKind::TruePositive => {
                if entry.indicator.score >= entry.base {
                    return Ok(());
                }
                self.hunt_unschedule(public, key, &entry);
                let model = decay::Model::for_kind(entry.indicator.kind);
                entry.refreshed_at = self.now;
                entry.indicator.score = entry.base;
                entry.indicator.valid_until = model.valid_until(self.now);
                entry.indicator.stream_time = self.now;
                self.outputs
                    .push(Output::Hunt(HuntUpdate::Published(entry.indicator.clone())));
                self.hunt_schedule(public, key, &mut entry);
                self.st.save(&at, &entry);
            }
            SightingKind::FalsePositive => {
                let Err(i) = entry.false_positives.binary_search(&nation.to_owned()) else {
                    return Ok(());
                };
                entry.false_positives.insert(i, nation.to_owned());
                let mut by_reporter = false;
                for incident in &posting.incidents {
                    by_reporter |= self
                        .st
                        .incident(incident)?
                        .is_some_and(|i| i.nation == nation);
                }
                let retires = decay::false_positive_retires(
                    by_reporter,
                    entry.false_positives.len(),
                    tally.sighted_by.len(),
                );
                if retires {
                    self.hunt_retire(public, key, Some(entry), RetireReason::FalsePositive, true)?;
                } else {
                    self.st.save(&at, &entry);
                }
            }
            SightingKind::Expiration => {}
        }
        Ok(())
    }

    /// Counts one more new publication toward the hour's publish rate; when the rate is
    /// spent, counts nothing and returns the next hour's start, at which the campaign `state`
    /// is worked out again.
    fn hunt_rate_spent(&mut self, state: &CampaignState) -> Result<Option<i64>, StoreError> {
        let window = self.now - self.now.rem_euclid(hunt::RATE_WINDOW_MS);
        let cap = self.config.hunt.max_new_per_hour;
        let mut spent = false;
        self.stats(|s| {
            if s.hunt_window != window {
                (s.hunt_window, s.hunt_window_new) = (window, 0);
            }
            if s.hunt_window_new >= cap {
                s.hunt_deferred += 1;
                spent = true;
            } else {
                s.hunt_window_new += 1;
            }
        })?;
        if !spent {
            return Ok(None);
        }
        let until = window + hunt::RATE_WINDOW_MS;
        if let (Some(public), Some(incident)) = (&state.public, state.members.first()) {
            // Any member's id finds the campaign (`membership_key`).
            let id = format!("{public}/{REWORK}{incident}");
            self.st.mark(&timed(HUNT_DUE, until, &id));
        }
        Ok(Some(until))
    }

    /// The campaign published as `public`, whose member `incident` is, if it is still active
    /// under that id: its held values (those deferred among them) are worked out again.
    fn hunt_rework(&mut self, public: &str, incident: &str) -> Result<(), StoreError> {
        let Some(id) = self.st.load::<String>(&membership_key(incident))? else {
            return Ok(());
        };
        let Some(state) = self.st.load::<CampaignState>(&campaign_key(&id))? else {
            return Ok(());
        };
        if state.public.as_deref() != Some(public) || !state.active {
            return Ok(());
        }
        let (_, held) = self.hunt_entries(public)?;
        self.hunt_touched.extend(held);
        self.hunt_campaign(&state)
    }

    /// Hunt indicators whose time has come: a retired one's record is removed (a tombstone);
    /// a published one past `valid_until` retires as EXPIRED, one whose score reached a lower
    /// multiple of 10 is published again with it. And campaigns whose deferred values' hour
    /// has come.
    pub(super) fn hunt_due(&mut self) -> Result<(), StoreError> {
        for (at, id) in self.due_with_time(HUNT_DUE)? {
            self.st.remove(&timed(HUNT_DUE, at, &id));
            let Some((public, key)) = id.split_once('/') else {
                continue;
            };
            if let Some(incident) = key.strip_prefix(REWORK) {
                self.hunt_rework(public, incident)?;
                continue;
            }
            let Some(mut entry) = self.st.load::<HuntEntry>(&hunt_key(public, key))? else {
                continue;
            };
            if entry.due != at {
                continue; // rescheduled since; its current key is elsewhere
            }
            entry.due = 0;
            if entry.retired.is_some() {
                self.outputs.push(Output::Hunt(HuntUpdate::Removed {
                    key: entry.indicator.key(),
                }));
                let tally = self.st.load::<SightingTally>(&sightings_key(key))?;
                if tally.is_some_and(|t| t != SightingTally::default()) {
                    // Its summary, if one was told, goes with it.
                    self.outputs
                        .push(Output::Hunt(HuntUpdate::SightingsRemoved {
                            key: hunt::summary_key(public, &entry.indicator.indicator_id),
                        }));
                }
                if entry.retired == Some(RetireReason::FalsePositive) {
                    entry.removed = true;
                    self.st.save(&hunt_key(public, key), &entry);
                } else {
                    // Worked out again only when its reporting incidents change, so that an
                    // expired value does not come back without new evidence.
                    self.st.remove(&hunt_key(public, key));
                    self.st.mark(&hunt_held_key(public, key));
                }
            } else if self.now >= entry.indicator.valid_until {
                self.hunt_retire(public, key, Some(entry), RetireReason::Expired, true)?;
            } else {
                let model = decay::Model::for_kind(entry.indicator.kind);
                let score = model.score(entry.base, self.now - entry.refreshed_at);
                if score < entry.indicator.score {
                    entry.indicator.score = score;
                    entry.indicator.stream_time = self.now;
                    self.outputs
                        .push(Output::Hunt(HuntUpdate::Published(entry.indicator.clone())));
                }
                self.hunt_schedule(public, key, &mut entry);
                self.st.save(&hunt_key(public, key), &entry);
            }
        }
        Ok(())
    }

    /// The campaign's hunt entries by value (removed ones included), and the values worked
    /// out before that have no entry (not released, blocked, or expired and removed).
    #[allow(clippy::type_complexity)]
    fn hunt_entries(
        &self,
        public: &str,
    ) -> Result<(BTreeMap<String, HuntEntry>, BTreeSet<String>), StoreError> {
        let prefix = hunt_prefix(public);
        let mut entries = BTreeMap::new();
        let mut held = BTreeSet::new();
        for (k, v) in self.st.store.scan_prefix(&prefix)? {
            let rest = &k[prefix.len()..];
            match rest.strip_prefix(HUNT_HELD) {
                Some(key) => {
                    held.insert(String::from_utf8_lossy(key).into_owned());
                }
                None => {
                    let key = String::from_utf8_lossy(rest).into_owned();
                    entries.insert(key, decode::<HuntEntry>(&k, &v)?);
                }
            }
        }
        Ok((entries, held))
    }

    /// What the open incidents that reported `key` say about it.
    fn hunt_basis(&self, key: &str) -> Result<Basis, StoreError> {
        let mut basis = Basis::default();
        let Some(posting) = self.st.load::<Posting>(&posting_key(key))? else {
            return Ok(basis);
        };
        for id in &posting.incidents {
            let Some(incident) = self.st.incident(id)? else {
                continue;
            };
            if !incident.open {
                continue;
            }
            let release = hunt::release(incident.tlp, incident.hunt_release);
            basis.releases.push(release);
            if let Release::Shared(_) = release {
                basis.releasing.push(id.clone());
                basis.nations.insert(incident.nation.clone());
                basis.sectors.insert(incident.sector);
                basis.paps.push(incident.pap);
                if let Ok(at) = incident
                    .stated_confidence
                    .binary_search_by(|(k, _)| k.as_str().cmp(key))
                {
                    let stated = incident.stated_confidence[at].1;
                    basis.stated = Some(basis.stated.map_or(stated, |s| s.max(stated)));
                }
                for t in &incident.techniques {
                    basis.phases.extend(crate::attack::tactics(t));
                }
            }
        }
        basis.phases.remove("unknown");
        Ok(basis)
    }

    /// Publishes `key` of campaign `public` when it is new, retired before (but not as a false
    /// positive), refreshed, or changed. Returns what became of it, and the indicator when it
    /// was not published before (new, or back after a retirement).
    fn hunt_publish(
        &mut self,
        public: &str,
        key: &str,
        entry: Option<HuntEntry>,
        basis: &Basis,
        (pattern, indicator_id, tlp, inform): (String, String, Tlp, Option<String>),
    ) -> Result<(Disposition, Option<HuntIndicator>), StoreError> {
        if let Some(e) = entry
            .as_ref()
            .filter(|e| e.retired == Some(RetireReason::FalsePositive))
        {
            // Never published again for this campaign.
            self.st.save(&hunt_key(public, key), e);
            return Ok((disposition_of(e), None));
        }
        let Some((kind, _)) = hunt::split_key(key) else {
            return Ok((Disposition::NotHunted, None));
        };
        let published = Disposition::Published {
            indicator_id: indicator_id.clone(),
            tlp,
            inform,
        };
        let model = decay::Model::for_kind(kind);
        let live = entry.as_ref().filter(|e| e.retired.is_none());
        let base = confidence(basis.nations.len(), basis.stated);
        let refreshed = match live {
            Some(e) => basis
                .releasing
                .iter()
                .any(|i| e.basis.binary_search(i).is_err()),
            None => true,
        };
        let refreshed_at = match live {
            Some(e) if !refreshed => e.refreshed_at,
            _ => self.now,
        };
        let base = match live {
            Some(e) if !refreshed => e.base,
            _ => base,
        };
        let indicator = HuntIndicator {
            campaign_id: public.to_owned(),
            indicator_id,
            kind,
            pattern,
            valid_from: live.map_or(self.now, |e| e.indicator.valid_from),
            valid_until: model.valid_until(refreshed_at),
            // Published on a refresh and at its steps (`hunt_due`), not continuously.
            score: match live {
                Some(e) if !refreshed => e.indicator.score,
                _ => base,
            },
            confidence: base,
            kill_chain_phases: basis.phases.iter().map(|p| (*p).to_owned()).collect(),
            tlp,
            pap: hunt::most_restrictive(basis.paps.iter().copied()).unwrap_or(Pap::Red),
            nation_count: basis.nations.len() as u32,
            sectors: basis.sectors.iter().copied().collect(),
            stream_time: self.now,
        };
        let unchanged = live.is_some_and(|e| {
            HuntIndicator {
                stream_time: self.now,
                ..e.indicator.clone()
            } == indicator
        });
        let mut new = None;
        let mut entry = match entry {
            Some(e) if unchanged => {
                if e.basis == basis.releasing && e.due != 0 {
                    return Ok((published, None)); // nothing to write
                }
                e
            }
            _ => {
                if live.is_none() {
                    new = Some(indicator.clone());
                }
                if live.is_none() {
                    self.stats(|s| s.hunt_indicators += 1)?;
                }
                let false_positives = match entry {
                    Some(old) => {
                        self.hunt_unschedule(public, key, &old);
                        old.false_positives
                    }
                    None => Vec::new(),
                };
                self.outputs
                    .push(Output::Hunt(HuntUpdate::Published(indicator.clone())));
                HuntEntry {
                    indicator,
                    base,
                    refreshed_at,
                    basis: Vec::new(),
                    retired: None,
                    removed: false,
                    due: 0,
                    false_positives,
                }
            }
        };
        entry.basis = basis.releasing.clone();
        if entry.due == 0 {
            self.hunt_schedule(public, key, &mut entry);
        }
        self.st.save(&hunt_key(public, key), &entry);
        Ok((published, new))
    }

    /// Tells the campaign `state`'s nations the sightings of its published `indicator` of the
    /// value `key`: `tally`, or the value's as stored (told only if there are any).
    fn hunt_tell(
        &mut self,
        state: &CampaignState,
        key: &str,
        indicator: &HuntIndicator,
        tally: Option<&SightingTally>,
    ) -> Result<(), StoreError> {
        let stored;
        let tally = match tally {
            Some(t) => t,
            None => {
                stored = self.st.load::<SightingTally>(&sightings_key(key))?;
                match &stored {
                    Some(t) if *t != SightingTally::default() => t,
                    _ => return Ok(()),
                }
            }
        };
        self.outputs.push(Output::Hunt(HuntUpdate::Sightings {
            to: state.nations.keys().cloned().collect(),
            summary: SightingSummary::new(indicator, tally, self.now),
        }));
        Ok(())
    }

    /// Tells the cell what became of `key` in campaign `public`, when that changed.
    fn hunt_review(
        &mut self,
        public: &str,
        key: &str,
        disposition: Disposition,
    ) -> Result<(), StoreError> {
        let at = review_key(public, key);
        let tally = match self.st.load::<HuntReview>(&at)? {
            Some(r) if r.disposition == disposition => return Ok(()),
            Some(r) => r.tally,
            None => self
                .st
                .load::<SightingTally>(&sightings_key(key))?
                .unwrap_or_default(),
        };
        let review = HuntReview {
            campaign_id: public.to_owned(),
            value: key.to_owned(),
            disposition,
            tally,
            stream_time: self.now,
        };
        self.st.save(&at, &review);
        self.outputs
            .push(Output::Hunt(HuntUpdate::Reviewed(review)));
        Ok(())
    }

    /// Tells the cell the new sightings `tally` of `key` in campaign `public`, once the value
    /// was worked out.
    fn hunt_review_tally(
        &mut self,
        public: &str,
        key: &str,
        tally: &SightingTally,
    ) -> Result<(), StoreError> {
        let at = review_key(public, key);
        let Some(mut review) = self.st.load::<HuntReview>(&at)? else {
            return Ok(());
        };
        if review.tally == *tally {
            return Ok(());
        }
        review.tally = tally.clone();
        review.stream_time = self.now;
        self.st.save(&at, &review);
        self.outputs
            .push(Output::Hunt(HuntUpdate::Reviewed(review)));
        Ok(())
    }

    /// Removes the cell's review of `key` in campaign `public`: the campaign no longer holds it.
    fn hunt_unreview(&mut self, public: &str, key: &str) -> Result<(), StoreError> {
        let at = review_key(public, key);
        if self.st.load::<HuntReview>(&at)?.is_some() {
            self.st.remove(&at);
            self.outputs.push(Output::Hunt(HuntUpdate::ReviewRemoved {
                key: hunt::review_key(public, key),
            }));
        }
        Ok(())
    }

    /// Retires a published `entry` with `reason`, and schedules its tombstone; leaves one that
    /// was retired before as it is. With `review`, the cell's review of it says so.
    fn hunt_retire(
        &mut self,
        public: &str,
        key: &str,
        entry: Option<HuntEntry>,
        reason: RetireReason,
        review: bool,
    ) -> Result<(), StoreError> {
        let Some(mut entry) = entry else {
            return Ok(());
        };
        if entry.retired.is_some() {
            return Ok(()); // retired before: as it is
        }
        self.hunt_unschedule(public, key, &entry);
        self.stats(|s| s.hunt_indicators -= 1)?;
        entry.retired = Some(reason);
        entry.indicator.stream_time = self.now;
        self.outputs.push(Output::Hunt(HuntUpdate::Retired {
            indicator: entry.indicator.clone(),
            reason,
        }));
        let at = self.now.saturating_add(self.config.hunt.tombstone_after_ms);
        entry.due = at;
        self.st.mark(&timed(HUNT_DUE, at, &due_id(public, key)));
        self.st.save(&hunt_key(public, key), &entry);
        if review {
            self.hunt_review(public, key, disposition_of(&entry))?;
        }
        Ok(())
    }

    /// Sets a published entry's next due time: its next score step, or its expiry.
    fn hunt_schedule(&mut self, public: &str, key: &str, entry: &mut HuntEntry) {
        let model = decay::Model::for_kind(entry.indicator.kind);
        let expiry = entry.indicator.valid_until;
        let at = model
            .next_step(entry.base, entry.refreshed_at, entry.indicator.score)
            .map_or(expiry, |step| step.min(expiry))
            .max(self.now + 1);
        entry.due = at;
        self.st.mark(&timed(HUNT_DUE, at, &due_id(public, key)));
    }

    fn hunt_unschedule(&mut self, public: &str, key: &str, entry: &HuntEntry) {
        if entry.due != 0 {
            self.st
                .remove(&timed(HUNT_DUE, entry.due, &due_id(public, key)));
        }
    }
}

/// Before an incident id in a `y/` entry's id: the campaign is to be worked out again (its
/// deferred values), not one of its indicators. Indicator keys start with their kind.
const REWORK: &str = "~";

/// What became of a value that has an entry: published, or retired and why.
fn disposition_of(e: &HuntEntry) -> Disposition {
    match e.retired {
        Some(reason) => Disposition::Retired {
            indicator_id: e.indicator.indicator_id.clone(),
            reason,
        },
        None => Disposition::Published {
            indicator_id: e.indicator.indicator_id.clone(),
            tlp: e.indicator.tlp,
            inform: None,
        },
    }
}

fn due_id(public: &str, key: &str) -> String {
    let mut id = String::with_capacity(public.len() + key.len() + 1);
    id.push_str(public);
    id.push('/');
    id.push_str(key);
    id
}
