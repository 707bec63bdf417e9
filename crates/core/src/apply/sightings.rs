//! Handler of the sightings topic: a nation's SIEM saw an indicator (docs/architecture.md,
//! "Sightings"). A SIGHTING or TRUE_POSITIVE records the nation under the value's sightings,
//! once per nation and value, and an active campaign that holds the value names the nation
//! among those it was `sighted_in`, when the nation has no incident in it. Every kind also
//! goes to the hunt indicator of the value, if one is published (`hunt_sighted`: a refresh,
//! or false positives that retire it).

use super::{Fold, Handled};
use crate::event::*;
use crate::indicator;
use crate::state::sightings_key;
use crate::store::StoreMut;
use crate::validate::{Check, Fields};

/// STIX's bound on a sighting's count.
pub const MAX_COUNT: i32 = 999_999_999;

impl Check for IndicatorSighted {
    fn check(&self, f: &mut Fields) {
        f.id("sighting_id", &self.sighting_id);
        if let Some(hunt) = &self.hunt_id {
            f.id("hunt_id", hunt);
        }
        f.text("indicator.value", &self.indicator.value, 1, 2048);
        f.indicator_facts("indicator", &self.indicator);
        if indicator::key(&self.indicator).is_none() {
            f.error(format!(
                "indicator.value is not a valid {} value",
                self.indicator.kind.as_str()
            ));
        }
        f.range("count", self.count, 1, MAX_COUNT);
        if self.last_seen < self.first_seen {
            f.error("last_seen must not be before first_seen".into());
        }
        f.text("source", &self.source, 0, 200);
    }
}

impl<S: StoreMut> Fold<'_, '_, S> {
    pub(crate) fn indicator_sighted(&mut self, e: &IndicatorSighted) -> Handled {
        let Some(key) = indicator::key(&e.indicator) else {
            return Ok(Ok(()));
        };
        let nation = &e.envelope.nation;
        // Looked up once: both the hunt indicator and the campaign's sighted_in follow it.
        let campaign = self.campaign_of_value(&key)?;
        if let Some((posting, _, state)) = &campaign {
            self.hunt_sighted(&key, nation, e.kind, (posting, state))?;
        }
        if !e.kind.confirms() {
            return Ok(Ok(()));
        }
        let at = sightings_key(&key);
        let mut nations: Vec<String> = self.st.load(&at)?.unwrap_or_default();
        let Err(i) = nations.binary_search(nation) else {
            return Ok(Ok(())); // this nation's sighting of the value is known
        };
        nations.insert(i, nation.clone());
        self.st.save(&at, &nations);
        if let Some((_, id, state)) = campaign {
            self.confirm_campaign(&key, nation, &id, state)?;
        }
        Ok(Ok(()))
    }
}
