//! Campaigns: incidents linked by a shared normalized indicator, transitively. A campaign that
//! spans two or more nations is published (`CampaignDetected`, then `CampaignUpdated`).
//!
//! The result depends only on which incidents reported which indicators, never on their
//! order: a value reported by more incidents than the fan-out cap links none of them (so the
//! cap does not pick winners by arrival), and a campaign is named after its smallest incident
//! id. When a value reaches the cap, the campaigns it held together are recomputed and may
//! split.

use std::collections::{BTreeSet, VecDeque};

use super::{Fold, Output};
use crate::event::Indicator;
use crate::indicator;
use crate::picture::{CampaignStatus, PictureUpdate};
use crate::query;
use crate::state::*;
use crate::store::{Store, StoreError};

impl<S: Store> Fold<'_, '_, S> {
    /// Adds an incident's indicators to the correlation and updates the campaigns they touch.
    pub(super) fn correlate(
        &mut self,
        incident_id: &str,
        indicators: &[Indicator],
    ) -> Result<(), StoreError> {
        let keys: BTreeSet<String> = indicators.iter().filter_map(indicator::key).collect();
        let list_key = incident_indicators_key(incident_id);
        let mut mine: Vec<String> = self.st.load(&list_key)?.unwrap_or_default();
        let mut seeds = BTreeSet::from([incident_id.to_owned()]);
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
                }
            }
            self.st.save(&pkey, &posting);
            mine.push(key);
        }
        self.st.save(&list_key, &mine);
        if new_values + newly_capped > 0 {
            self.stats(|s| {
                s.indicator_values += new_values;
                s.capped_values += newly_capped;
            })?;
        }
        self.recompute(seeds)
    }

    /// Recomputes the campaign of each seed incident and publishes what changed. A campaign
    /// that lost members to another is recomputed too.
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
            let keys: Vec<String> = self
                .st
                .load(&incident_indicators_key(&i))?
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

    /// Names the component after its smallest member, retires the campaigns its members were
    /// in before, and publishes the campaign if it spans two or more nations (or no longer
    /// does). Returns the ids of earlier campaigns that lost members and live on elsewhere.
    fn settle_campaign(&mut self, members: BTreeSet<String>) -> Result<Vec<String>, StoreError> {
        let id = members.first().cloned().unwrap_or_default();
        let mut before: BTreeSet<String> = BTreeSet::new();
        for m in &members {
            if let Some(old) = self.st.load::<String>(&membership_key(m))? {
                before.insert(old);
            }
        }
        let mut split = Vec::new();
        for old in before.iter().filter(|old| **old != id) {
            if members.contains(old) {
                self.merge(old, &id)?;
            } else {
                split.push(old.clone());
            }
        }
        let previous: Option<CampaignState> = self.st.load(&campaign_key(&id))?;
        let sorted: Vec<String> = members.iter().cloned().collect();
        if members.len() < 2 {
            self.st.remove(&membership_key(&id));
            if let Some(prev) = previous {
                self.st.remove(&campaign_key(&id));
                if prev.active {
                    self.publish_campaign(&id, &sorted, CampaignStatus::Dissolved, None, false)?;
                }
            }
            return Ok(split);
        }
        let active = self.nations(&sorted)?.len() >= 2;
        let record = query::campaign_record(
            &*self.st.store,
            &id,
            &sorted,
            if active {
                CampaignStatus::Active
            } else {
                CampaignStatus::Dissolved
            },
            None,
            self.now,
        )?;
        let state = CampaignState {
            members: sorted.clone(),
            active,
            indicators: record.indicators.clone(),
        };
        if previous.as_ref() == Some(&state) {
            return Ok(split);
        }
        for m in &members {
            if self.st.load::<String>(&membership_key(m))?.as_deref() != Some(id.as_str()) {
                self.st.save(&membership_key(m), &id);
            }
        }
        let was_active = previous.as_ref().is_some_and(|p| p.active);
        self.st.save(&campaign_key(&id), &state);
        match (was_active, active) {
            (false, true) => self.emit_campaign(record, true)?,
            (true, _) => self.emit_campaign(record, false)?,
            (false, false) => {}
        }
        Ok(split)
    }

    /// Campaign `old` is now part of `into`'s: it is published as merged and forgotten.
    fn merge(&mut self, old: &str, into: &str) -> Result<(), StoreError> {
        let Some(state) = self.st.load::<CampaignState>(&campaign_key(old))? else {
            return Ok(());
        };
        self.st.remove(&campaign_key(old));
        if state.active {
            self.publish_campaign(
                old,
                &state.members,
                CampaignStatus::Merged,
                Some(into),
                false,
            )?;
        }
        Ok(())
    }

    /// Every nation with an incident among `members`.
    fn nations(&self, members: &[String]) -> Result<BTreeSet<String>, StoreError> {
        let mut nations = BTreeSet::new();
        for m in members {
            if let Some(i) = self.st.incident(m)? {
                nations.insert(i.nation);
            }
        }
        Ok(nations)
    }

    fn publish_campaign(
        &mut self,
        id: &str,
        members: &[String],
        status: CampaignStatus,
        merged_into: Option<&str>,
        detected: bool,
    ) -> Result<(), StoreError> {
        let campaign =
            query::campaign_record(&*self.st.store, id, members, status, merged_into, self.now)?;
        self.emit_campaign(campaign, detected)
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
        self.outputs.push(Output::Picture(if detected {
            PictureUpdate::CampaignDetected(campaign)
        } else {
            PictureUpdate::CampaignUpdated(campaign)
        }));
        Ok(())
    }
}
