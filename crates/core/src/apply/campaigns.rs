//! Campaigns: incidents linked by a shared normalized indicator, transitively. A campaign that
//! spans two or more nations is published (`CampaignDetected`, then `CampaignUpdated`).
//!
//! Observables link (addresses, domains, URLs, hashes, e-mail addresses); CVE ids do not
//! (see [`indicator::links`]). The result depends only on which incidents reported which
//! indicators, never on their
//! order: a value reported by more incidents than the fan-out cap links none of them (so the
//! cap does not pick winners by arrival). Internally a campaign is kept under one of its
//! members' ids, the key of the largest campaign it took in; it is published under a public
//! id of its own.
//!
//! Two paths keep the work small. The usual one: a new incident (or new values of one) joins
//! the campaigns of the incidents it now shares a value with, and their kept figures (members,
//! nations, indicator counts) are merged, the smaller into the larger; nothing is re-read per
//! member. The rare one: a value reaches the cap, so the campaigns it held together are
//! recomputed from their members' indicators and may split.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Fold, Output};
use crate::event::{Indicator, Tlp};
use crate::indicator;
use crate::picture::{CampaignStatus, PictureUpdate};
use crate::query;
use crate::state::*;
use crate::store::{StoreError, StoreMut};

impl<S: StoreMut> Fold<'_, '_, S> {
    /// Adds an incident's indicators to the correlation and updates the campaigns they touch;
    /// writes `incident` with its new indicator keys before the campaigns read them.
    pub(super) fn correlate(
        &mut self,
        incident: &mut Incident,
        indicators: &[Indicator],
    ) -> Result<(), StoreError> {
        let incident_id = incident.incident_id.clone();
        let incident_id = incident_id.as_str();
        let keys: BTreeSet<String> = indicators
            .iter()
            .filter(|i| indicator::links(i.kind))
            .filter_map(indicator::key)
            .collect();
        for i in indicators.iter().filter(|i| indicator::links(i.kind)) {
            let (Some(key), Some(stated)) = (indicator::key(i), i.confidence) else {
                continue;
            };
            let stated = stated.clamp(0, 100) as u8;
            let list = &mut incident.stated_confidence;
            match list.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(at) => list[at].1 = list[at].1.max(stated),
                Err(at) => list.insert(at, (key, stated)),
            }
        }
        let mine = &mut incident.indicator_keys;
        let mut seeds = BTreeSet::from([incident_id.to_owned()]);
        let mut linked = BTreeSet::new();
        let mut live_keys = Vec::new();
        let cap = self.config.picture.fanout_cap as usize;
        let (mut new_values, mut newly_capped) = (0u64, 0u64);
        for key in keys {
            if mine.contains(&key) {
                continue;
            }
            let pkey = posting_key(&key);
            let existing: Option<Posting> = self.st.load(&pkey)?;
            new_values += existing.is_none() as u64;
            let mut posting = existing.unwrap_or_default();
            posting.seen += 1;
            if !posting.capped {
                if let Err(at) = posting.incidents.binary_search(&incident_id.to_owned()) {
                    posting.incidents.insert(at, incident_id.to_owned());
                }
                if posting.incidents.len() > cap {
                    // Every incident it linked may now belong elsewhere.
                    seeds.extend(std::mem::take(&mut posting.incidents));
                    posting.capped = true;
                    newly_capped += 1;
                } else {
                    linked.extend(posting.incidents.iter().cloned());
                    live_keys.push(key.clone());
                }
            }
            self.st.save(&pkey, &posting);
            mine.push(key);
        }
        self.st.put_incident(incident);
        // Its values' releasing sources may have changed (a new incident, new techniques).
        self.hunt_touched
            .extend(incident.indicator_keys.iter().cloned());
        if new_values + newly_capped > 0 {
            self.stats(|s| {
                s.indicator_values += new_values;
                s.capped_values += newly_capped;
            })?;
        }
        if newly_capped > 0 {
            return self.recompute(seeds);
        }
        linked.remove(incident_id);
        self.join_campaigns(incident_id, &linked, &live_keys)
    }

    /// The usual path: `incident` joins the campaigns of `linked`, and its `new_keys` (below the
    /// cap) count among the campaign's indicators.
    fn join_campaigns(
        &mut self,
        incident: &str,
        linked: &BTreeSet<String>,
        new_keys: &[String],
    ) -> Result<(), StoreError> {
        let own = self.st.load::<String>(&membership_key(incident))?;
        if linked.is_empty() && own.is_none() {
            return Ok(()); // shares nothing yet: no campaign
        }
        let mut parts: BTreeMap<String, CampaignState> = BTreeMap::new();
        let mut loose = Vec::new();
        for x in linked.iter().map(String::as_str).chain([incident]) {
            match self.st.load::<String>(&membership_key(x))? {
                Some(id) => {
                    if let std::collections::btree_map::Entry::Vacant(e) = parts.entry(id) {
                        let state = self.st.load(&campaign_key(e.key()))?.unwrap_or_default();
                        e.insert(state);
                    }
                }
                None => loose.push(x.to_owned()),
            }
        }
        // It is published under the oldest public id of its parts (none: a new one once it
        // spans two nations), so joining never renames what the cell already knows.
        let public = oldest_public(parts.values());
        let public_was_active = held_active(parts.values(), &public);
        // The largest campaign takes the others in, under its key: its figures are not
        // copied, and only the members of the smaller parts are pointed elsewhere. Internally
        // a campaign is keyed by one of its members; that key never leaves the coordinator.
        let base_id = parts
            .iter()
            .max_by(|a, b| (a.1.members.len(), b.0).cmp(&(b.1.members.len(), a.0)))
            .map(|(id, _)| id.clone());
        let base = base_id.as_ref().and_then(|b| parts.remove(b));
        let id = base_id
            .or_else(|| loose.iter().min().cloned())
            .unwrap_or_default();
        // Active parts published under another id than the joined one's are merged into it.
        let merged_records: Vec<_> = base
            .iter()
            .chain(parts.values())
            .filter(|p| p.active && p.public != public)
            .map(|p| {
                query::campaign_from_state(
                    &*self.st.store,
                    p,
                    CampaignStatus::Merged,
                    public.as_deref(),
                    self.now,
                )
            })
            .collect::<Result<_, _>>()?;
        let mut retired = Vec::new();
        let mut state = base.unwrap_or_default();
        let merged = !parts.is_empty();
        for (old_id, other) in parts {
            merge_into(&mut state, &other);
            retired.push((old_id, other));
        }
        state.public = public;
        for x in &loose {
            self.add_member(&mut state, x)?;
        }
        let counted =
            own.is_some() && !new_keys.is_empty() && !state.red.contains(&incident.to_owned());
        if counted {
            for k in new_keys {
                *state.counts.entry(k.clone()).or_default() += 1;
            }
        }
        if !merged && loose.is_empty() && !counted {
            return Ok(()); // nothing new: the campaign stands as it is
        }
        // Members whose campaign key changed point to the new one.
        let mut moved: Vec<&String> = loose.iter().collect();
        for (_, old) in &retired {
            moved.extend(old.members.iter());
        }
        for m in moved {
            self.st.save(&membership_key(m), &id);
        }
        for (old_id, _) in &retired {
            self.st.remove(&campaign_key(old_id));
        }
        for record in merged_records {
            self.emit_campaign(record, false)?;
        }
        let record = self.settle_figures(&mut state)?;
        self.save_and_publish(&id, state, record, public_was_active)
    }

    /// Adds an incident that had no campaign: its nation, and its indicators below the cap.
    fn add_member(&self, state: &mut CampaignState, id: &str) -> Result<(), StoreError> {
        if let Err(at) = state.members.binary_search(&id.to_owned()) {
            state.members.insert(at, id.to_owned());
        }
        let Some(incident) = self.st.incident(id)? else {
            return Ok(());
        };
        *state.nations.entry(incident.nation.clone()).or_default() += 1;
        if incident.tlp == Tlp::Red {
            if let Err(at) = state.red.binary_search(&id.to_owned()) {
                state.red.insert(at, id.to_owned());
            }
            return Ok(());
        }
        for k in incident.indicator_keys.iter().cloned() {
            let capped = self
                .st
                .load::<Posting>(&posting_key(&k))?
                .is_some_and(|p| p.capped);
            if !capped {
                *state.counts.entry(k).or_default() += 1;
            }
        }
        Ok(())
    }

    /// The figures `state` publishes: whether it is active, and its linking indicators. A
    /// campaign that spans two nations for the first time gets its public id here.
    fn settle_figures(
        &mut self,
        state: &mut CampaignState,
    ) -> Result<crate::picture::Campaign, StoreError> {
        state.active = state.nations.len() >= 2;
        if state.active && state.public.is_none() {
            state.public = Some(self.st.next_campaign_id()?);
        }
        let status = if state.active {
            CampaignStatus::Active
        } else {
            CampaignStatus::Dissolved
        };
        let record = query::campaign_from_state(&*self.st.store, state, status, None, self.now)?;
        state.indicators = record.indicators.clone();
        Ok(record)
    }

    /// Publishes the active campaigns of `olds` as merged into `into`, all but the one that
    /// goes on under that id.
    fn publish_merged(
        &mut self,
        olds: &[CampaignState],
        into: &Option<String>,
    ) -> Result<(), StoreError> {
        for old in olds.iter().filter(|o| o.active && o.public != *into) {
            let record = query::campaign_from_state(
                &*self.st.store,
                old,
                CampaignStatus::Merged,
                into.as_deref(),
                self.now,
            )?;
            self.emit_campaign(record, false)?;
        }
        Ok(())
    }

    /// Saves a changed campaign's state under `id` and publishes its `record`: detected when
    /// it becomes active, updated while it was (`was_active`).
    fn save_and_publish(
        &mut self,
        id: &str,
        state: CampaignState,
        record: crate::picture::Campaign,
        was_active: bool,
    ) -> Result<(), StoreError> {
        let active = state.active;
        self.st.save(&campaign_key(id), &state);
        match (was_active, active) {
            (false, true) => self.emit_campaign(record, true)?,
            (true, _) => self.emit_campaign(record, false)?,
            (false, false) => {}
        }
        self.hunt_campaign(&state)
    }

    /// The rare path: recomputes the campaign of each seed incident from its members'
    /// indicators and publishes what changed. A campaign that lost members to another is
    /// recomputed too.
    fn recompute(&mut self, seeds: BTreeSet<String>) -> Result<(), StoreError> {
        let mut done = BTreeSet::new();
        let mut queue: VecDeque<String> = seeds.into_iter().collect();
        while let Some(seed) = queue.pop_front() {
            if done.contains(&seed) {
                continue;
            }
            let members = self.component(&seed)?;
            done.extend(members.iter().cloned());
            queue.extend(self.settle_campaign(members)?);
        }
        Ok(())
    }

    /// The incidents linked to `seed`, transitively, through values below the cap.
    fn component(&self, seed: &str) -> Result<BTreeSet<String>, StoreError> {
        let mut members = BTreeSet::from([seed.to_owned()]);
        let mut queue = VecDeque::from([seed.to_owned()]);
        let mut values_seen = BTreeSet::new();
        while let Some(i) = queue.pop_front() {
            let keys = self
                .st
                .incident(&i)?
                .map(|i| i.indicator_keys.clone())
                .unwrap_or_default();
            for key in keys {
                if !values_seen.insert(key.clone()) {
                    continue;
                }
                let Some(posting) = self.st.load::<Posting>(&posting_key(&key))? else {
                    continue;
                };
                for other in posting.incidents {
                    if members.insert(other.clone()) {
                        queue.push_back(other);
                    }
                }
            }
        }
        Ok(members)
    }

    /// Keys a recomputed component by the key of the largest campaign it takes in (its
    /// smallest member when it takes in none), publishes it under the oldest public id of
    /// those campaigns, and retires the others. Returns the keys of earlier campaigns that
    /// lost members and live on elsewhere.
    fn settle_campaign(&mut self, members: BTreeSet<String>) -> Result<Vec<String>, StoreError> {
        let mut before: BTreeSet<String> = BTreeSet::new();
        for m in &members {
            if let Some(old) = self.st.load::<String>(&membership_key(m))? {
                before.insert(old);
            }
        }
        // Campaigns keyed by a member of this component continue in it; the others keep
        // their key (that member is elsewhere) and are recomputed after.
        let mut split = Vec::new();
        let mut kept = Vec::new();
        for old in before {
            if !members.contains(&old) {
                split.push(old);
            } else if let Some(state) = self.st.load::<CampaignState>(&campaign_key(&old))? {
                kept.push((old, state));
            }
        }
        let id = kept
            .iter()
            .max_by(|a, b| (a.1.members.len(), &b.0).cmp(&(b.1.members.len(), &a.0)))
            .map(|(id, _)| id.clone())
            .or_else(|| members.first().cloned())
            .unwrap_or_default();
        let mut previous = None;
        let mut olds = Vec::new();
        for (old, state) in kept {
            if old == id {
                previous = Some(state);
            } else {
                self.st.remove(&campaign_key(&old));
                olds.push(state);
            }
        }
        olds.extend(previous.clone());
        let public = oldest_public(&olds);
        let public_was_active = held_active(&olds, &public);
        if members.len() < 2 {
            self.st.remove(&membership_key(&id));
            if let Some(prev) = previous {
                self.st.remove(&campaign_key(&id));
                if prev.active {
                    let record = query::campaign_from_state(
                        &*self.st.store,
                        &prev,
                        CampaignStatus::Dissolved,
                        None,
                        self.now,
                    )?;
                    self.emit_campaign(record, false)?;
                }
            }
            return Ok(split);
        }
        self.publish_merged(&olds, &public)?;
        let mut state = CampaignState {
            public,
            ..CampaignState::default()
        };
        for m in &members {
            self.add_member(&mut state, m)?;
            if self.st.load::<String>(&membership_key(m))?.as_deref() != Some(id.as_str()) {
                self.st.save(&membership_key(m), &id);
            }
        }
        let record = self.settle_figures(&mut state)?;
        if previous.as_ref() == Some(&state) {
            return Ok(split);
        }
        self.save_and_publish(&id, state, record, public_was_active)?;
        Ok(split)
    }

    /// The campaign that holds the normalized value `key` through it (a value below the cap):
    /// the value's posting, the campaign's internal id and its state.
    pub(super) fn campaign_of_value(
        &self,
        key: &str,
    ) -> Result<Option<(Posting, String, CampaignState)>, StoreError> {
        let Some(posting) = self.st.load::<Posting>(&posting_key(key))? else {
            return Ok(None);
        };
        let Some(member) = posting.incidents.first().filter(|_| !posting.capped) else {
            return Ok(None);
        };
        let Some(id) = self.st.load::<String>(&membership_key(member))? else {
            return Ok(None);
        };
        let Some(state) = self.st.load::<CampaignState>(&campaign_key(&id))? else {
            return Ok(None);
        };
        Ok(Some((posting, id, state)))
    }

    /// `nation` sighted the normalized value `key` (already recorded under its sightings): the
    /// active campaign that holds the value (`id`, `state`), if any, is published again with
    /// the nation among those it was sighted in, unless the nation has an incident in it.
    pub(super) fn confirm_campaign(
        &mut self,
        key: &str,
        nation: &str,
        id: &str,
        mut state: CampaignState,
    ) -> Result<(), StoreError> {
        if !state.active || !state.counts.contains_key(key) || state.nations.contains_key(nation) {
            return Ok(());
        }
        let record = self.settle_figures(&mut state)?;
        self.save_and_publish(id, state, record, true)
    }

    /// Publishes a campaign record and keeps the count of active campaigns.
    fn emit_campaign(
        &mut self,
        campaign: crate::picture::Campaign,
        detected: bool,
    ) -> Result<(), StoreError> {
        let delta = match (detected, campaign.status) {
            (true, _) => 1,
            (false, CampaignStatus::Merged | CampaignStatus::Dissolved) => -1,
            _ => 0,
        };
        if delta != 0 {
            self.stats(|s| s.active_campaigns += delta)?;
        }
        if delta < 0 {
            // Merged or dissolved: its hunt indicators go with it.
            self.hunt_withdraw(&campaign.campaign_id)?;
        }
        self.outputs.push(Output::Picture(if detected {
            PictureUpdate::CampaignDetected(campaign)
        } else {
            PictureUpdate::CampaignUpdated(campaign)
        }));
        Ok(())
    }
}

/// The oldest public id among `parts`: numbers of one width grow in order.
fn oldest_public<'a>(parts: impl IntoIterator<Item = &'a CampaignState>) -> Option<String> {
    parts
        .into_iter()
        .filter_map(|p| p.public.as_ref())
        .min_by(|a, b| (a.len(), a).cmp(&(b.len(), b)))
        .cloned()
}

/// Whether the campaign published under `public` was active among `parts`.
fn held_active<'a>(
    parts: impl IntoIterator<Item = &'a CampaignState>,
    public: &Option<String>,
) -> bool {
    public.is_some() && parts.into_iter().any(|p| p.active && p.public == *public)
}

/// Adds campaign `other`'s figures to `state` (their members are disjoint).
fn merge_into(state: &mut CampaignState, other: &CampaignState) {
    state.members = merge_sorted(&state.members, &other.members);
    state.red = merge_sorted(&state.red, &other.red);
    for (n, c) in &other.nations {
        *state.nations.entry(n.clone()).or_default() += c;
    }
    for (k, c) in &other.counts {
        *state.counts.entry(k.clone()).or_default() += c;
    }
}

fn merge_sorted(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = a.iter().chain(b).cloned().collect();
    out.sort();
    out.dedup();
    out
}
