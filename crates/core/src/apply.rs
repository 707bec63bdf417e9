//! The fold: `apply(store, config, event) -> outputs`. This function performs no I/O beyond the
//! [`Store`] it is handed, reads no clock and iterates no hash map: the same journal gives the
//! same state and the same decisions, byte for byte.
//!
//! Order of work for one journal event:
//! 1. drop a repeated `event_id` (a feed's retry) as a rejection;
//! 2. advance stream time to the event's `reported_at` if later;
//! 3. cancel proposals whose acceptance deadline has passed in stream time;
//! 4. apply the event itself (or reject it: unknown entity, wrong owner, wrong state);
//! 5. re-match every capability whose supply or demand changed;
//! 6. publish the threat-picture figures it changed (at most once per interval per key).
//!
//! # Layout
//! - here: the fold, stream time, deadlines, cancelling, and emitting decisions
//! - [`incidents`], [`offers`], [`answers`]: each input event type's field checks and the rule
//!   that applies it
//! - [`round`]: the matching round that turns free capacity and waiting needs into proposals
//! - [`picture`], [`campaigns`]: the threat picture's tallies and the campaign correlation

mod answers;
mod campaigns;
mod hunt;
mod incidents;
mod offers;
mod picture;
mod round;
mod sightings;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::decision::{
    AssignmentCancelled, CancelReason, Decision, DecisionHeader, IncidentDetails, Subject,
};
use crate::event::*;
use crate::picture::Tallies;
use crate::rank;
use crate::reject::{RejectReason, Rejection};
use crate::state::*;
use crate::store::{for_each_key, StoreError, StoreMut};
use crate::tlp;
use crate::working::Working;

/// Parameters of the fold. Part of what a replay must reproduce: change them and decisions change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// How long, in stream time, a provider has to accept a proposal.
    pub acceptance_timeout_ms: i64,
    pub picture: crate::picture::PictureConfig,
    pub hunt: crate::hunt::HuntConfig,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            acceptance_timeout_ms: 30 * 60 * 1000,
            picture: crate::picture::PictureConfig::default(),
            hunt: crate::hunt::HuntConfig::default(),
        }
    }
}

/// One result of applying an event.
// Decisions are the common output; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Decision(crate::decision::Routed),
    /// The event was not applied; the journal record goes to the dead-letter topic.
    Rejected(Rejection),
    /// A scope-window of the threat picture, or a campaign, for the compacted topic.
    Picture(crate::picture::PictureUpdate),
    /// A campaign's hunt indicator, for every member nation's compacted hunt topic.
    Hunt(crate::hunt::HuntUpdate),
}

/// Applies one journal event to the state in `store` and returns what to publish.
pub fn apply<S: StoreMut>(
    store: &mut S,
    config: &CoreConfig,
    event: &Event,
) -> Result<Vec<Output>, StoreError> {
    let mut working = Working::default();
    let outputs = apply_with(store, &mut working, config, event)?;
    working.flush(store);
    Ok(outputs)
}

/// [`apply`], with the transaction's entities and picture tallies held typed in `working`
/// across events (see [`crate::working`]): the same state and outputs once
/// [`Working::flush`] has written them to `store`, which must happen before anything else
/// reads the store, and only then.
pub fn apply_with<S: StoreMut>(
    store: &mut S,
    working: &mut Working,
    config: &CoreConfig,
    event: &Event,
) -> Result<Vec<Output>, StoreError> {
    let env = event.envelope();
    let mut fold = Fold {
        st: State::new(store, &mut working.entities),
        tallies: &mut working.tallies,
        config,
        cause: &env.event_id,
        cause_nation: &env.nation,
        now: 0,
        decisions: 0,
        outputs: Vec::new(),
        supply: BTreeMap::new(),
        fresh: BTreeMap::new(),
        touched: BTreeSet::new(),
        hunt_touched: BTreeSet::new(),
    };
    let seen = seen_key(&env.event_id);
    if fold.st.contains(&seen)? {
        return Ok(vec![Output::Rejected(Rejection::new(
            RejectReason::DuplicateEventId,
            format!("event {} was applied before", env.event_id),
        ))]);
    }
    fold.st.mark(&seen);
    fold.advance_stream_time(env.reported_at)?;
    fold.expire_deadlines()?;
    fold.hunt_due()?;
    fold.picture_due()?;
    if let Err(rejection) = event.rule(&mut fold)? {
        fold.outputs.push(Output::Rejected(rejection));
    }
    fold.rematch_dirty()?;
    fold.publish_touched()?;
    Ok(fold.outputs)
}

/// An event applied, or the reason it was not; a failed state read stops the fold.
pub(crate) type Handled = Result<Result<(), Rejection>, StoreError>;

fn reject(reason: RejectReason, detail: String) -> Handled {
    Ok(Err(Rejection::new(reason, detail)))
}

pub(crate) struct Fold<'a, 's, S: StoreMut> {
    st: State<'s, S>,
    tallies: &'s mut Tallies,
    config: &'a CoreConfig,
    cause: &'a str,
    /// The nation that sent the event: the only nation that sees its id in decisions.
    cause_nation: &'a str,
    now: i64,
    decisions: u32,
    outputs: Vec<Output>,
    /// Offers that gained free capacity (new, or freed by a cancel), by capability.
    supply: BTreeMap<Capability, BTreeSet<String>>,
    /// Needs whose missing units grew (new, or reopened by a cancel), by capability.
    fresh: BTreeMap<Capability, BTreeSet<(String, usize)>>,
    /// Keys of the picture tallies this event changed: once it ends, each is published or
    /// scheduled.
    touched: BTreeSet<Vec<u8>>,
    /// Indicator values whose reporting incidents changed in this event (reported, updated,
    /// closed): only these, and values new to a campaign's package, are worked out again.
    hunt_touched: BTreeSet<String>,
}

impl<S: StoreMut> Fold<'_, '_, S> {
    fn advance_stream_time(&mut self, reported_at: i64) -> Result<(), StoreError> {
        let current = self.st.stream_time()?;
        self.now = current.max(reported_at);
        if self.now != current {
            self.st.set_stream_time(self.now);
        }
        Ok(())
    }

    /// Cancels proposals whose deadline has passed, and offers whose window has opened far
    /// enough to be proposed join the next round; reads only the times that are due.
    fn expire_deadlines(&mut self) -> Result<(), StoreError> {
        for id in self.due(DEADLINES)? {
            self.cancel(&id, CancelReason::TimedOut)?;
        }
        for id in self.due(OPENINGS)? {
            if let Some(offer) = self.st.offer(&id)? {
                self.st.remove(&opening_key(offer.opens_at(), &id));
                self.mark_supply(offer.capability, &id);
            }
        }
        Ok(())
    }

    /// Ids under a time-ordered prefix whose time is at or before stream time, earliest first.
    fn due(&self, prefix: &[u8]) -> Result<Vec<String>, StoreError> {
        Ok(self
            .due_with_time(prefix)?
            .into_iter()
            .map(|(_, id)| id)
            .collect())
    }

    /// As [`Fold::due`], with each id's time.
    fn due_with_time(&self, prefix: &[u8]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut due = Vec::new();
        let now = self.now;
        for_each_key(&*self.st.store, prefix, |key| {
            match deadline_of(key).filter(|t| *t <= now) {
                Some(t) => {
                    due.push((t, timed_id(key)));
                    Ok(true)
                }
                None => Ok(false),
            }
        })?;
        Ok(due)
    }

    /// Ends an assignment: frees its units on the offer, reopens its need, announces it.
    fn cancel(&mut self, id: &str, reason: CancelReason) -> Result<(), StoreError> {
        let Some(asg) = self.st.assignment(id)? else {
            return Ok(());
        };
        self.st.remove(&assignment_key(id));
        self.st.remove(&deadline_key(asg.respond_by, id));
        if let Some(mut offer) = self.st.offer(&asg.offer_id)? {
            self.capacity(&offer.nation, offer.capability, 0, -(asg.units as i64))?;
            offer.committed -= asg.units;
            offer.assignments.retain(|a| a != id);
            self.mark_supply(offer.capability, &offer.offer_id);
            self.st.put_offer(&offer);
            self.index_offer(&offer)?;
        }
        let subject = self.subject_of(&asg.request_id, asg.need)?;
        if let Some(mut request) = self.st.request(&asg.request_id)?.map(Rc::unwrap_or_clone) {
            let need = &mut request.needs[asg.need as usize];
            need.covered -= asg.units;
            if matches!(reason, CancelReason::Declined | CancelReason::TimedOut) {
                need.excluded_offers.push(asg.offer_id.clone());
            }
            let c = need.capability;
            self.mark_fresh(c, &asg.request_id, asg.need as usize);
            request.assignments.retain(|a| a != id);
            self.st.put_request(&request);
            if let Some(incident) = self.st.incident(&request.incident_id)? {
                self.set_waiting(&incident, &request, asg.need as usize)?;
            }
        }
        if let Some(subject) = subject {
            let header = self.header();
            self.emit(Decision::AssignmentCancelled(AssignmentCancelled {
                header,
                subject,
                assignment_id: asg.assignment_id,
                offer_id: asg.offer_id,
                provider_nation: asg.provider,
                units: asg.units,
                reason,
            }));
        }
        Ok(())
    }

    /// Keeps the waiting index in step with a need: listed while open and missing units.
    /// The picture counts waiting needs as unmet.
    fn set_waiting(
        &mut self,
        incident: &Incident,
        request: &Request,
        idx: usize,
    ) -> Result<(), StoreError> {
        let key = waiting_key_of(incident, request, idx);
        let was = self.st.contains(&key)?;
        let now = incident.open && request.needs[idx].missing() > 0;
        if was != now {
            // Marked again, a listed key would go to the changelog again for nothing.
            if now {
                self.st.mark(&key);
            } else {
                self.st.remove(&key);
            }
            let delta = if now { 1 } else { -1 };
            self.totals(&crate::picture::scopes(incident), |t| {
                t.unmet_needs += delta
            })?;
        }
        Ok(())
    }

    /// Takes a need out of the waiting index, e.g. before its rank changes.
    fn leave_waiting(
        &mut self,
        incident: &Incident,
        request: &Request,
        idx: usize,
    ) -> Result<(), StoreError> {
        let key = waiting_key_of(incident, request, idx);
        if self.st.contains(&key)? {
            self.st.remove(&key);
            self.totals(&crate::picture::scopes(incident), |t| t.unmet_needs -= 1)?;
        }
        Ok(())
    }

    /// Lists an offer among those with free capacity (matched) or among the full ones (only
    /// counted in rationales); returns whether it has free capacity.
    fn index_offer(&mut self, offer: &Offer) -> Result<bool, StoreError> {
        crate::derived::index_offer(&mut *self.st.store, offer)
    }

    /// Lists `offer` among the full offers of its capability, or takes it off.
    fn list_full(&mut self, offer: &Offer, full: bool) -> Result<(), StoreError> {
        crate::derived::list_full(&mut *self.st.store, offer, full)
    }

    /// How many offers of capability `c` are full with their window still open, once those
    /// whose window has closed for good are taken off the list.
    fn live_full_offers(&mut self, c: Capability) -> Result<i32, StoreError> {
        let prefix = full_offers_prefix(c);
        let now = self.now;
        let mut closed = Vec::new();
        for_each_key(&*self.st.store, &prefix, |key| {
            match time_after(key, prefix.len()).filter(|t| *t < now) {
                Some(_) => {
                    closed.push(key.to_vec());
                    Ok(true)
                }
                None => Ok(false),
            }
        })?;
        for key in &closed {
            self.st.remove(key);
        }
        if !closed.is_empty() {
            crate::derived::count_full(&mut *self.st.store, c, -(closed.len() as i64))?;
        }
        Ok(self.st.load::<u32>(&full_count_key(c))?.unwrap_or(0) as i32)
    }

    fn mark_supply(&mut self, c: Capability, offer_id: &str) {
        self.supply
            .entry(c)
            .or_default()
            .insert(offer_id.to_owned());
    }

    fn mark_fresh(&mut self, c: Capability, request_id: &str, idx: usize) {
        self.fresh
            .entry(c)
            .or_default()
            .insert((request_id.to_owned(), idx));
    }

    fn subject_of(&self, request_id: &str, idx: u8) -> Result<Option<Subject>, StoreError> {
        let Some(request) = self.st.request(request_id)? else {
            return Ok(None);
        };
        let Some(incident) = self.st.incident(&request.incident_id)? else {
            return Ok(None);
        };
        Ok(Some(subject(&incident, &request, idx as usize)))
    }

    fn header(&mut self) -> DecisionHeader {
        self.decisions += 1;
        DecisionHeader {
            decision_id: format!("{}.{}", self.cause, self.decisions),
            cause_event_id: self.cause.to_owned(),
            stream_time: self.now,
        }
    }

    fn emit(&mut self, decision: Decision) {
        self.outputs.extend(
            tlp::route(decision, self.cause_nation)
                .into_iter()
                .map(Output::Decision),
        );
    }
}

fn waiting_key_of(incident: &Incident, request: &Request, idx: usize) -> Vec<u8> {
    waiting_key(
        request.needs[idx].capability,
        &rank::rank_key(incident, request),
        &request.request_id,
        idx as u8,
    )
}

fn subject(incident: &Incident, request: &Request, idx: usize) -> Subject {
    Subject {
        request_id: request.request_id.clone(),
        incident_id: incident.incident_id.clone(),
        requester_nation: request.nation.clone(),
        capability: request.needs[idx].capability,
        tlp: incident.tlp,
        sector: Some(incident.sector),
        priority: Some(incident.priority),
        details: Some(IncidentDetails {
            title: incident.title.clone(),
            rsit_class: incident.rsit_class,
            techniques: incident.techniques.clone(),
            essential_entity: incident.essential_entity,
            cross_border: incident.cross_border,
        }),
    }
}
