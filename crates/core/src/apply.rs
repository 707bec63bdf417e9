//! The fold: `apply(store, config, event) -> outputs`. This function performs no I/O beyond the
//! [`Store`] it is handed, reads no clock and iterates no hash map: the same journal gives the
//! same state and the same decisions, byte for byte.
//!
//! Order of work for one journal event:
//! 1. drop a repeated `event_id` (a feed's retry) as a rejection;
//! 2. advance stream time to the event's `reported_at` if later;
//! 3. cancel proposals whose acceptance deadline has passed in stream time;
//! 4. apply the event itself (or reject it: unknown entity, wrong owner, wrong state);
//! 5. re-match every capability whose supply or demand changed.

use std::collections::{BTreeMap, BTreeSet};

use crate::decision::{
    AssignmentCancelled, AssignmentConfirmed, AssignmentProposed, AssistanceUnmet, CancelReason,
    Decision, DecisionHeader, IncidentDetails, Rationale, RuleCount, Subject,
};
use crate::event::*;
use crate::matcher::{self, Candidate};
use crate::rank;
use crate::reject::{RejectReason, Rejection};
use crate::rules::NeedContext;
use crate::state::*;
use crate::store::{for_each_key, Store, StoreError};
use crate::tlp;

/// Parameters of the fold. Part of what a replay must reproduce: change them and decisions change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// How long, in stream time, a provider has to accept a proposal.
    pub acceptance_timeout_ms: i64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            acceptance_timeout_ms: 30 * 60 * 1000,
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
}

/// Applies one journal event to the state in `store` and returns what to publish.
pub fn apply<S: Store>(
    store: &mut S,
    config: &CoreConfig,
    event: &Event,
) -> Result<Vec<Output>, StoreError> {
    let env = event.envelope();
    let mut fold = Fold {
        st: State::new(store),
        config,
        cause: &env.event_id,
        now: 0,
        decisions: 0,
        outputs: Vec::new(),
        supply: BTreeMap::new(),
        fresh: BTreeMap::new(),
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
    if let Err(rejection) = fold.handle(event)? {
        fold.outputs.push(Output::Rejected(rejection));
    }
    fold.rematch_dirty()?;
    Ok(fold.outputs)
}

type Handled = Result<Result<(), Rejection>, StoreError>;

fn reject(reason: RejectReason, detail: String) -> Handled {
    Ok(Err(Rejection::new(reason, detail)))
}

struct Fold<'a, 's, S: Store> {
    st: State<'s, S>,
    config: &'a CoreConfig,
    cause: &'a str,
    now: i64,
    decisions: u32,
    outputs: Vec<Output>,
    /// Offers that gained free capacity (new, or freed by a cancel), by capability.
    supply: BTreeMap<Capability, BTreeSet<String>>,
    /// Needs whose missing units grew (new, or reopened by a cancel), by capability.
    fresh: BTreeMap<Capability, BTreeSet<(String, usize)>>,
}

impl<S: Store> Fold<'_, '_, S> {
    fn advance_stream_time(&mut self, reported_at: i64) -> Result<(), StoreError> {
        let current = self.st.stream_time()?;
        self.now = current.max(reported_at);
        if self.now != current {
            self.st.set_stream_time(self.now);
        }
        Ok(())
    }

    fn handle(&mut self, event: &Event) -> Handled {
        match event {
            Event::IncidentReported(e) => self.incident_reported(e),
            Event::AssistanceRequested(e) => self.assistance_requested(e),
            Event::IncidentClosed(e) => self.incident_closed(e),
            Event::AssetOffered(e) => self.asset_offered(e),
            Event::OfferWithdrawn(e) => self.offer_withdrawn(e),
            Event::AssignmentAccepted(e) => {
                self.assignment_answered(&e.envelope, &e.assignment_id, true)
            }
            Event::AssignmentDeclined(e) => {
                self.assignment_answered(&e.envelope, &e.assignment_id, false)
            }
        }
    }

    fn incident_reported(&mut self, e: &IncidentReported) -> Handled {
        if self.st.incident(&e.incident_id)?.is_some() {
            return reject(
                RejectReason::DuplicateEntity,
                format!("incident {} exists", e.incident_id),
            );
        }
        self.st.put_incident(&Incident {
            incident_id: e.incident_id.clone(),
            nation: e.envelope.nation.clone(),
            title: e.title.clone(),
            tlp: e.tlp,
            sector: e.sector,
            rsit_class: e.rsit_class,
            priority: e.priority,
            essential_entity: e.essential_entity,
            cross_border: e.cross_border,
            impact: e.impact.clone(),
            techniques: e.techniques.clone(),
            open: true,
            requests: Vec::new(),
        });
        Ok(Ok(()))
    }

    /// The requester's open incident, or why it cannot be acted on.
    fn owned_open_incident(
        &self,
        id: &str,
        nation: &str,
    ) -> Result<Result<Incident, Rejection>, StoreError> {
        Ok(match self.st.incident(id)? {
            None => Err(Rejection::new(
                RejectReason::UnknownEntity,
                format!("no incident {id}"),
            )),
            Some(i) if i.nation != nation => Err(Rejection::new(
                RejectReason::NotOwner,
                format!("incident {id} belongs to {}, not {nation}", i.nation),
            )),
            Some(i) if !i.open => Err(Rejection::new(
                RejectReason::WrongState,
                format!("incident {id} is closed"),
            )),
            Some(i) => Ok(i),
        })
    }

    fn assistance_requested(&mut self, e: &AssistanceRequested) -> Handled {
        let mut incident = match self.owned_open_incident(&e.incident_id, &e.envelope.nation)? {
            Ok(i) => i,
            Err(r) => return Ok(Err(r)),
        };
        if self.st.request(&e.request_id)?.is_some() {
            return reject(
                RejectReason::DuplicateEntity,
                format!("request {} exists", e.request_id),
            );
        }
        let request = Request {
            request_id: e.request_id.clone(),
            incident_id: e.incident_id.clone(),
            nation: e.envelope.nation.clone(),
            reported_at: e.envelope.reported_at,
            own_measures: e.own_measures,
            needs: e
                .needs
                .iter()
                .map(|n| Need {
                    capability: n.capability,
                    units: n.units,
                    covered: 0,
                    excluded_offers: Vec::new(),
                    unmet_announced: 0,
                })
                .collect(),
            assignments: Vec::new(),
        };
        for idx in 0..request.needs.len() {
            self.set_waiting(&incident, &request, idx);
            let c = request.needs[idx].capability;
            self.mark_fresh(c, &request.request_id, idx);
        }
        self.st.put_request(&request);
        incident.requests.push(request.request_id);
        self.st.put_incident(&incident);
        Ok(Ok(()))
    }

    fn incident_closed(&mut self, e: &IncidentClosed) -> Handled {
        let mut incident = match self.owned_open_incident(&e.incident_id, &e.envelope.nation)? {
            Ok(i) => i,
            Err(r) => return Ok(Err(r)),
        };
        incident.open = false;
        self.st.put_incident(&incident);
        for request_id in &incident.requests {
            let Some(request) = self.st.request(request_id)? else {
                continue;
            };
            for asg in &request.assignments {
                self.cancel(asg, CancelReason::IncidentClosed)?;
            }
            // Reload: cancelling changed the request.
            let Some(request) = self.st.request(request_id)? else {
                continue;
            };
            for idx in 0..request.needs.len() {
                self.set_waiting(&incident, &request, idx);
            }
        }
        Ok(Ok(()))
    }

    fn asset_offered(&mut self, e: &AssetOffered) -> Handled {
        if self.st.offer(&e.offer_id)?.is_some() {
            return reject(
                RejectReason::DuplicateEntity,
                format!("offer {} exists", e.offer_id),
            );
        }
        self.st.put_offer(&Offer {
            offer_id: e.offer_id.clone(),
            nation: e.envelope.nation.clone(),
            capability: e.capability,
            capacity: e.capacity_units,
            committed: 0,
            available_from: e.available_from,
            available_until: e.available_until,
            response_time_ms: e.response_time_minutes as i64 * 60_000,
            eligible_nations: e.eligible_nations.clone(),
            excluded_nations: e.excluded_nations.clone(),
            max_tlp: e.max_tlp,
            assignments: Vec::new(),
        });
        self.st.mark(&offer_index_key(e.capability, &e.offer_id));
        self.mark_supply(e.capability, &e.offer_id);
        Ok(Ok(()))
    }

    fn offer_withdrawn(&mut self, e: &OfferWithdrawn) -> Handled {
        let offer = match self.st.offer(&e.offer_id)? {
            None => {
                return reject(
                    RejectReason::UnknownEntity,
                    format!("no offer {}", e.offer_id),
                )
            }
            Some(o) if o.nation != e.envelope.nation => {
                return reject(
                    RejectReason::NotOwner,
                    format!("offer {} belongs to {}", e.offer_id, o.nation),
                )
            }
            Some(o) => o,
        };
        for asg in &offer.assignments {
            self.cancel(asg, CancelReason::OfferWithdrawn)?;
        }
        self.st.remove(&offer_key(&offer.offer_id));
        self.st
            .remove(&offer_index_key(offer.capability, &offer.offer_id));
        Ok(Ok(()))
    }

    fn assignment_answered(&mut self, env: &Envelope, id: &str, accepted: bool) -> Handled {
        let mut asg = match self.st.assignment(id)? {
            None => {
                return reject(
                    RejectReason::UnknownEntity,
                    format!("no pending assignment {id}"),
                )
            }
            Some(a) if a.provider != env.nation => {
                return reject(
                    RejectReason::NotOwner,
                    format!("assignment {id} was proposed to {}", a.provider),
                )
            }
            Some(a) if a.status != AssignmentStatus::Proposed => {
                return reject(
                    RejectReason::WrongState,
                    format!("assignment {id} is already confirmed"),
                )
            }
            Some(a) => a,
        };
        if !accepted {
            self.cancel(id, CancelReason::Declined)?;
            return Ok(Ok(()));
        }
        asg.status = AssignmentStatus::Confirmed;
        self.st.remove(&deadline_key(asg.respond_by, id));
        self.st.put_assignment(&asg);
        if let Some(subject) = self.subject_of(&asg.request_id, asg.need)? {
            let header = self.header();
            self.emit(Decision::AssignmentConfirmed(AssignmentConfirmed {
                header,
                subject,
                assignment_id: asg.assignment_id,
                offer_id: asg.offer_id,
                provider_nation: asg.provider,
                units: asg.units,
            }));
        }
        Ok(Ok(()))
    }

    /// Cancels proposals whose deadline has passed; reads only the deadlines that are due.
    fn expire_deadlines(&mut self) -> Result<(), StoreError> {
        let mut due = Vec::new();
        let now = self.now;
        for_each_key(&*self.st.store, DEADLINES, |key| {
            let passed = deadline_of(key).is_some_and(|t| t <= now);
            if passed {
                due.push(String::from_utf8_lossy(&key[19..]).into_owned());
            }
            Ok(passed)
        })?;
        for id in due {
            self.cancel(&id, CancelReason::TimedOut)?;
        }
        Ok(())
    }

    /// Ends an assignment: frees its units on the offer, reopens its need, announces it.
    fn cancel(&mut self, id: &str, reason: CancelReason) -> Result<(), StoreError> {
        let Some(asg) = self.st.assignment(id)? else {
            return Ok(());
        };
        self.st.remove(&assignment_key(id));
        self.st.remove(&deadline_key(asg.respond_by, id));
        if let Some(mut offer) = self.st.offer(&asg.offer_id)? {
            offer.committed -= asg.units;
            offer.assignments.retain(|a| a != id);
            self.mark_supply(offer.capability, &offer.offer_id);
            self.st.put_offer(&offer);
            self.st
                .mark(&offer_index_key(offer.capability, &offer.offer_id));
        }
        let subject = self.subject_of(&asg.request_id, asg.need)?;
        if let Some(mut request) = self.st.request(&asg.request_id)? {
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
                self.set_waiting(&incident, &request, asg.need as usize);
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
    fn set_waiting(&mut self, incident: &Incident, request: &Request, idx: usize) {
        let need = &request.needs[idx];
        let key = waiting_key(
            need.capability,
            &rank::rank_key(incident, request),
            &request.request_id,
            idx as u8,
        );
        if incident.open && need.missing() > 0 {
            self.st.mark(&key);
        } else {
            self.st.remove(&key);
        }
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

    /// Re-matches every capability whose supply or demand changed, in capability order.
    fn rematch_dirty(&mut self) -> Result<(), StoreError> {
        loop {
            let next = [self.supply.keys().next(), self.fresh.keys().next()]
                .into_iter()
                .flatten()
                .min()
                .copied();
            let Some(c) = next else { return Ok(()) };
            let supply = self.supply.remove(&c).unwrap_or_default();
            let fresh = self.fresh.remove(&c).unwrap_or_default();
            self.rematch(c, &supply, &fresh)?;
        }
    }

    /// Invariant kept between events: no waiting need has an eligible offer with free
    /// capacity. So only two things can lead to a proposal:
    /// 1. new free capacity (`supply`): it goes to the waiting needs in rank order, stopping
    ///    once it is used up;
    /// 2. needs whose missing units grew (`fresh`): each looks at every offer with free
    ///    capacity, and is announced as unmet for what stays missing.
    ///
    /// The work is proportional to what can change, not to how many needs wait.
    fn rematch(
        &mut self,
        c: Capability,
        supply: &BTreeSet<String>,
        fresh: &BTreeSet<(String, usize)>,
    ) -> Result<(), StoreError> {
        if !supply.is_empty() {
            let mut offers = Vec::new();
            for id in supply {
                if let Some(o) = self.st.offer(id)?.filter(|o| o.remaining() > 0) {
                    offers.push(o);
                }
            }
            self.serve_in_rank_order(c, &mut offers, fresh)?;
        }
        if !fresh.is_empty() {
            let mut offers = self.st.offers_of(c)?;
            sort_offers(&mut offers);
            let before: Vec<i32> = offers.iter().map(|o| o.committed).collect();
            for (request_id, idx) in fresh {
                self.serve_waiting(request_id, *idx, &mut offers)?;
            }
            self.save_offers(c, &offers, &before);
        }
        Ok(())
    }

    /// Offers new capacity to waiting needs, best rank first; fresh needs are left to step 2.
    fn serve_in_rank_order(
        &mut self,
        c: Capability,
        offers: &mut [Offer],
        fresh: &BTreeSet<(String, usize)>,
    ) -> Result<(), StoreError> {
        if offers.is_empty() {
            return Ok(());
        }
        sort_offers(offers);
        let before: Vec<i32> = offers.iter().map(|o| o.committed).collect();
        let prefix = waiting_prefix(c);
        let mut needs = Vec::new();
        let mut free: i64 = offers.iter().map(|o| o.remaining() as i64).sum();
        // Collect a page at a time, then serve: serving rewrites the index being walked.
        let mut after: Option<Vec<u8>> = None;
        'pages: while free > 0 {
            let page = self.st.store.scan_page(&prefix, after.as_deref(), 64)?;
            after = page.last().map(|kv| kv.0.clone());
            let last_page = page.len() < 64;
            needs.clear();
            needs.extend(
                page.iter()
                    .filter_map(|(k, _)| parse_waiting(&k[prefix.len()..])),
            );
            for need in &needs {
                if fresh.contains(need) {
                    continue;
                }
                self.serve_waiting(&need.0, need.1, offers)?;
                free = offers.iter().map(|o| o.remaining() as i64).sum();
                if free == 0 {
                    break 'pages;
                }
            }
            if last_page {
                break;
            }
        }
        self.save_offers(c, offers, &before);
        Ok(())
    }

    /// Writes offers whose commitment changed; an offer with nothing left leaves the index.
    fn save_offers(&mut self, c: Capability, offers: &[Offer], before: &[i32]) {
        for (offer, before) in offers.iter().zip(before) {
            if offer.committed != *before {
                self.st.put_offer(offer);
                if offer.remaining() <= 0 {
                    self.st.remove(&offer_index_key(c, &offer.offer_id));
                }
            }
        }
    }

    /// Serves one need if it is still open and missing units.
    fn serve_waiting(
        &mut self,
        request_id: &str,
        idx: usize,
        offers: &mut [Offer],
    ) -> Result<(), StoreError> {
        let Some(mut request) = self.st.request(request_id)? else {
            return Ok(());
        };
        let Some(incident) = self.st.incident(&request.incident_id)? else {
            return Ok(());
        };
        if idx >= request.needs.len() || !incident.open || request.needs[idx].missing() <= 0 {
            return Ok(());
        }
        if self.serve(&incident, &mut request, idx, offers)? {
            self.set_waiting(&incident, &request, idx);
            self.st.put_request(&request);
        }
        Ok(())
    }

    /// Proposes what the offers can cover of one need; says whether the request changed.
    fn serve(
        &mut self,
        incident: &Incident,
        request: &mut Request,
        idx: usize,
        offers: &mut [Offer],
    ) -> Result<bool, StoreError> {
        let need = &request.needs[idx];
        let ctx = NeedContext {
            requester: &request.nation,
            capability: need.capability,
            tlp: incident.tlp,
            refused_offers: &need.excluded_offers,
            stream_time: self.now,
        };
        let plan = matcher::plan(offers, &ctx, need.missing());
        let (score, criteria) = rank::score(incident, request);
        let rationale = |c: &Candidate| Rationale {
            score: score * c.units as i64,
            criteria: criteria.clone(),
            candidates: plan.candidates,
            excluded: plan
                .excluded
                .iter()
                .map(|(rule, n)| RuleCount {
                    rule: rule.name().into(),
                    excluded: *n,
                })
                .collect(),
        };
        for cand in &plan.chosen {
            let seq = self.st.next_seq()?;
            let offer = &mut offers[cand.offer];
            let asg = Assignment {
                assignment_id: format!("A-{seq:08}"),
                request_id: request.request_id.clone(),
                need: idx as u8,
                offer_id: offer.offer_id.clone(),
                provider: offer.nation.clone(),
                units: cand.units,
                status: AssignmentStatus::Proposed,
                respond_by: self.now.saturating_add(self.config.acceptance_timeout_ms),
            };
            offer.committed += cand.units;
            offer.assignments.push(asg.assignment_id.clone());
            request.needs[idx].covered += cand.units;
            request.assignments.push(asg.assignment_id.clone());
            self.st.put_assignment(&asg);
            self.st
                .mark(&deadline_key(asg.respond_by, &asg.assignment_id));
            let header = self.header();
            self.emit(Decision::AssignmentProposed(AssignmentProposed {
                header,
                subject: subject(incident, request, idx),
                assignment_id: asg.assignment_id,
                offer_id: asg.offer_id,
                provider_nation: asg.provider,
                units: asg.units,
                respond_by: asg.respond_by,
                rationale: Some(rationale(cand)),
            }));
        }
        let mut changed = !plan.chosen.is_empty();
        let need = &mut request.needs[idx];
        let missing = need.missing();
        if missing == 0 {
            need.unmet_announced = 0;
        } else if missing != need.unmet_announced {
            changed = true;
            need.unmet_announced = missing;
            let units_requested = need.units;
            let header = self.header();
            self.emit(Decision::AssistanceUnmet(AssistanceUnmet {
                header,
                subject: subject(incident, request, idx),
                units_requested,
                units_missing: missing,
                rationale: Some(rationale(&Candidate {
                    offer: 0,
                    units: missing,
                })),
            }));
        }
        Ok(changed)
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
        self.outputs
            .extend(tlp::route(decision).into_iter().map(Output::Decision));
    }
}

/// Fastest response first, then offer id: the order the matcher takes offers in.
fn sort_offers(offers: &mut [Offer]) {
    offers
        .sort_by(|a, b| (a.response_time_ms, &a.offer_id).cmp(&(b.response_time_ms, &b.offer_id)));
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

/// `<rank>/<request_id>/<need>` → (request_id, need).
fn parse_waiting(rest: &[u8]) -> Option<(String, usize)> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut parts = text.splitn(3, '/');
    let _rank = parts.next()?;
    let request_id = parts.next()?;
    let idx = parts.next()?.parse().ok()?;
    Some((request_id.to_owned(), idx))
}
