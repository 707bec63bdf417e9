//! Handler of the sightings topic: a nation's SIEM saw an indicator (docs/architecture.md,
//! "Sightings"). Every sighting but an EXPIRATION adds to the value's tally (nations by kind,
//! sums of counts: [`SightingTally`]). A SIGHTING or TRUE_POSITIVE from a nation new to the
//! value makes an active campaign that holds the value name the nation among those it was
//! `sighted_in`, when the nation has no incident in it. Every kind also goes to the hunt
//! indicator of the value, if one is published (`hunt_sighted`: a refresh, false positives
//! that retire it, and, when the tally changed notably, a summary for the campaign's nations
//! and the cell's review).

use super::{Fold, Handled};
use crate::event::*;
use crate::hunt::SightingTally;
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
        let at = sightings_key(&key);
        let before: SightingTally = self.st.load(&at)?.unwrap_or_default();
        let tally = tallied(&before, e);
        if tally != before {
            self.st.save(&at, &tally);
        }
        // Looked up once: both the hunt indicator and the campaign's sighted_in follow it.
        let campaign = self.campaign_of_value(&key)?;
        if let Some((posting, _, state)) = &campaign {
            let told = tally.changed_notably(&before);
            self.hunt_sighted(&key, nation, e.kind, (posting, state), (&tally, told))?;
        }
        if tally.sighted_by == before.sighted_by {
            return Ok(Ok(())); // this nation's sighting of the value is known
        }
        if let Some((_, id, state)) = campaign {
            self.confirm_campaign(&key, nation, &id, state)?;
        }
        Ok(Ok(()))
    }
}

/// `before` with the sighting `e` added: its nation in the lists of its kind (and among those
/// that may be named, for a CLEAR or GREEN sighting that is not anonymous), its count in the
/// sums. EXPIRATION adds nothing.
fn tallied(before: &SightingTally, e: &IndicatorSighted) -> SightingTally {
    fn join(list: &mut Vec<String>, nation: &str) {
        if let Err(i) = list.binary_search_by(|n| n.as_str().cmp(nation)) {
            list.insert(i, nation.to_owned());
        }
    }
    let mut t = before.clone();
    let nation = e.envelope.nation.as_str();
    let count = u64::try_from(e.count).unwrap_or(0);
    match e.kind {
        SightingKind::Sighting | SightingKind::TruePositive => {
            join(&mut t.sighted_by, nation);
            t.sightings = t.sightings.saturating_add(count);
            if e.kind == SightingKind::TruePositive {
                join(&mut t.true_positive_by, nation);
                t.true_positives = t.true_positives.saturating_add(count);
            }
        }
        SightingKind::FalsePositive => {
            join(&mut t.false_positive_by, nation);
            t.false_positives = t.false_positives.saturating_add(count);
        }
        SightingKind::Expiration => return t,
    }
    if matches!(e.tlp, Tlp::Clear | Tlp::Green) && !e.anonymous {
        join(&mut t.named, nation);
    }
    t
}
