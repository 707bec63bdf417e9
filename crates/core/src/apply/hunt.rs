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
use crate::hunt::{self, decay, HuntIndicator, HuntUpdate, Outcome, Release, RetireReason};
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
}

/// How well the releasing reports corroborate a value, 0–100: 50 for one nation, 15 more for
/// each further nation, at most 95.
pub fn confidence(nations: usize) -> u8 {
    (50 + 15 * nations.saturating_sub(1)).min(95) as u8
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
            let outcome = match candidate.outcome {
                Outcome::Publish {
                    pattern, id, tlp, ..
                } => {
                    if was_held {
                        self.st.remove(&hunt_held_key(public, key));
                    }
                    self.hunt_publish(public, key, entry, basis, pattern, id, tlp)?;
                    continue;
                }
                Outcome::Withheld { .. } => Some(RetireReason::ReleaseWithdrawn),
                Outcome::Blocked { .. } => Some(RetireReason::Warninglisted),
                // Past the cap: worked out again at the next change, a place may be free.
                Outcome::Truncated => None,
                Outcome::NotHunted => Some(RetireReason::ReleaseWithdrawn),
            };
            match (entry, outcome) {
                (Some(e), Some(reason)) => self.hunt_retire(public, key, Some(e), reason)?,
                (Some(_), None) => {} // a published value is never truncated: it comes first
                (None, Some(_)) if !was_held => self.st.mark(&hunt_held_key(public, key)),
                (None, _) => {}
            }
        }
        // Values the campaign no longer holds.
        for (key, entry) in entries {
            if !state.counts.contains_key(&key) {
                self.hunt_retire(public, &key, Some(entry), RetireReason::CampaignDissolved)?;
            }
        }
        for key in held {
            if !state.counts.contains_key(&key) {
                self.st.remove(&hunt_held_key(public, &key));
            }
        }
        Ok(())
    }

    /// Retires every published indicator of the campaign published as `public`: it was merged
    /// into another or dissolved.
    pub(super) fn hunt_withdraw(&mut self, public: &str) -> Result<(), StoreError> {
        let (entries, held) = self.hunt_entries(public)?;
        for (key, entry) in entries {
            self.hunt_retire(public, &key, Some(entry), RetireReason::CampaignDissolved)?;
        }
        for key in held {
            self.st.remove(&hunt_held_key(public, &key));
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
    /// campaign that holds it (`state`, through the value's `posting`), if it is active. A
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
    ) -> Result<(), StoreError> {
        use crate::event::SightingKind;
        let Some(public) = state.public.as_deref().filter(|_| state.active) else {
            return Ok(());
        };
        let at = hunt_key(public, key);
        let Some(mut entry) = self.st.load::<HuntEntry>(&at)? else {
            return Ok(());
        };
        if entry.retired.is_some() {
            return Ok(());
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
                let sighted = self
                    .st
                    .load::<Vec<String>>(&sightings_key(key))?
                    .unwrap_or_default()
                    .len();
                let retires = decay::false_positive_retires(
                    by_reporter,
                    entry.false_positives.len(),
                    sighted,
                );
                if retires {
                    self.hunt_retire(public, key, Some(entry), RetireReason::FalsePositive)?;
                } else {
                    self.st.save(&at, &entry);
                }
            }
            SightingKind::Expiration => {}
        }
        Ok(())
    }

    /// Hunt indicators whose time has come: a retired one's record is removed (a tombstone);
    /// a published one past `valid_until` retires as EXPIRED, one whose score reached a lower
    /// multiple of 10 is published again with it.
    pub(super) fn hunt_due(&mut self) -> Result<(), StoreError> {
        for (at, id) in self.due_with_time(HUNT_DUE)? {
            self.st.remove(&timed(HUNT_DUE, at, &id));
            let Some((public, key)) = id.split_once('/') else {
                continue;
            };
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
                self.hunt_retire(public, key, Some(entry), RetireReason::Expired)?;
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
                for t in &incident.techniques {
                    basis.phases.extend(crate::attack::tactics(t));
                }
            }
        }
        basis.phases.remove("unknown");
        Ok(basis)
    }

    /// Publishes `key` of campaign `public` when it is new, retired before (but not as a false
    /// positive), refreshed, or changed.
    #[allow(clippy::too_many_arguments)]
    fn hunt_publish(
        &mut self,
        public: &str,
        key: &str,
        entry: Option<HuntEntry>,
        basis: &Basis,
        pattern: String,
        indicator_id: String,
        tlp: Tlp,
    ) -> Result<(), StoreError> {
        if let Some(e) = entry
            .as_ref()
            .filter(|e| e.retired == Some(RetireReason::FalsePositive))
        {
            // Never published again for this campaign.
            self.st.save(&hunt_key(public, key), e);
            return Ok(());
        }
        let Some((kind, _)) = hunt::split_key(key) else {
            return Ok(());
        };
        let model = decay::Model::for_kind(kind);
        let live = entry.as_ref().filter(|e| e.retired.is_none());
        let base = confidence(basis.nations.len());
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
        let mut entry = match entry {
            Some(e) if unchanged => {
                if e.basis == basis.releasing && e.due != 0 {
                    return Ok(()); // nothing to write
                }
                e
            }
            _ => {
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
        Ok(())
    }

    /// Retires a published `entry` with `reason`, and schedules its tombstone; leaves one that
    /// was retired before as it is.
    fn hunt_retire(
        &mut self,
        public: &str,
        key: &str,
        entry: Option<HuntEntry>,
        reason: RetireReason,
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

fn due_id(public: &str, key: &str) -> String {
    let mut id = String::with_capacity(public.len() + key.len() + 1);
    id.push_str(public);
    id.push('/');
    id.push_str(key);
    id
}
