//! The matching round: free capacity of one capability meets the needs that may use it.
//!
//! Invariant kept between events: no waiting need has an eligible offer with free capacity.
//! So only two things can lead to a proposal:
//! 1. new free capacity (`supply`: a new or enlarged offer, units freed by a cancel or a
//!    completion, a window that opened): the waiting needs compete for it, best rank first,
//!    until it is used up;
//! 2. needs whose missing units grew (`fresh`: a new request, or a cancel): they look at
//!    every offer with free capacity, and are announced as unmet for what stays missing.
//!
//! Within a round the plan is optimal (see [`crate::optimal`]): needs join in rank order,
//! which is falling priority weight, and each is served as fully as free capacity allows,
//! moving units planned for better-ranked needs in this round onto other offers where that
//! frees what it can use. Proposals of earlier rounds stand: a nation's desk is already
//! weighing them. The work is proportional to what can change, not to how many needs wait.

use std::collections::BTreeSet;
use std::rc::Rc;

use super::{subject, Fold};
use crate::decision::{AssignmentProposed, AssistanceUnmet, Decision, Rationale, RuleCount};
use crate::event::Capability;
use crate::optimal::Solver;
use crate::rank;
use crate::rules::{self, NeedContext, Rule};
use crate::state::*;
use crate::store::{StoreError, StoreMut};

/// A need taking part in a round.
struct Taker {
    incident: Rc<Incident>,
    /// Shared with the working set until the round changes it.
    request: Rc<Request>,
    idx: usize,
    /// Its index in the solver.
    slot: usize,
    /// Offers that passed every rule, and how many each rule excluded.
    candidates: i32,
    excluded: [i32; Rule::ALL.len()],
}

/// Live offers a round did not consider, for the rationales (see [`Fold::unseen_offers`]).
#[derive(Default)]
struct Unseen {
    full: i32,
    free: Vec<Offer>,
}

/// A need that can take part in a round: its incident, its request, and its index there.
type Joining = (Rc<Incident>, Rc<Request>, usize);

/// Needs are visited a page of the waiting index at a time.
const PAGE: usize = 64;

impl<S: StoreMut> Fold<'_, '_, S> {
    /// Re-matches every capability whose supply or demand changed, in capability order.
    pub(super) fn rematch_dirty(&mut self) -> Result<(), StoreError> {
        loop {
            let next = [self.supply.keys().next(), self.fresh.keys().next()]
                .into_iter()
                .flatten()
                .min()
                .copied();
            let Some(c) = next else { return Ok(()) };
            let supply = self.supply.remove(&c).unwrap_or_default();
            let fresh = self.fresh.remove(&c).unwrap_or_default();
            self.round(c, &supply, &fresh)?;
        }
    }

    fn round(
        &mut self,
        c: Capability,
        supply: &BTreeSet<String>,
        fresh: &BTreeSet<(String, usize)>,
    ) -> Result<(), StoreError> {
        let mut offers = self.round_offers(c, supply, !fresh.is_empty())?;
        offers.sort_by(|a, b| a.offer_id.cmp(&b.offer_id));
        let mut solver = Solver::new(offers.iter().map(|o| o.remaining().max(0)).collect());
        let mut takers = Vec::new();
        let mut visited = BTreeSet::new();
        if !supply.is_empty() {
            self.visit_waiting(c, &offers, &mut solver, &mut takers, &mut visited)?;
        }
        // Fresh needs are all visited, even with nothing left: they may be unmet.
        let mut rest = Vec::new();
        for (request_id, idx) in fresh.iter().filter(|n| !visited.contains(*n)) {
            if let Some(t) = self.load_taker(request_id, *idx)? {
                rest.push((rank::rank_key(&t.0, &t.1), t));
            }
        }
        rest.sort_by(|a, b| (&a.0, &a.1 .1.request_id).cmp(&(&b.0, &b.1 .1.request_id)));
        for (_, (incident, request, idx)) in rest {
            takers.push(self.join(incident, request, idx, &offers, &mut solver));
        }
        let unseen = if takers.is_empty() {
            Unseen::default()
        } else {
            self.unseen_offers(c, &offers, fresh.is_empty())?
        };
        let before: Vec<i32> = offers.iter().map(|o| o.committed).collect();
        for taker in takers {
            self.settle(taker, &mut offers, &solver, &unseen)?;
        }
        self.save_offers(&offers, &before)
    }

    /// The offers a round may hand out: the new supply, or with fresh needs every offer with
    /// free capacity. Offers whose window has closed for good leave the index on the way.
    fn round_offers(
        &mut self,
        c: Capability,
        supply: &BTreeSet<String>,
        all: bool,
    ) -> Result<Vec<Offer>, StoreError> {
        let offers = if all {
            self.st.offers_of(c)?
        } else {
            let mut offers = Vec::new();
            for id in supply {
                offers.extend(self.st.offer(id)?);
            }
            offers
        };
        let now = self.now;
        let (live, closed): (Vec<Offer>, Vec<Offer>) = offers
            .into_iter()
            .filter(|o| o.remaining() > 0)
            .partition(|o| o.closes_at() >= now);
        for o in closed {
            self.st.remove(&offer_index_key(c, &o.offer_id));
        }
        Ok(live)
    }

    /// The live offers of capability `c` that the round did not consider, which rationales
    /// count all the same: the full ones, and in a round of new supply only, the other offers
    /// with free capacity. Full offers are counted, not read (see [`Fold::live_full_offers`]).
    fn unseen_offers(
        &mut self,
        c: Capability,
        considered: &[Offer],
        supply_only: bool,
    ) -> Result<Unseen, StoreError> {
        let mut unseen = Unseen {
            full: self.live_full_offers(c)?,
            ..Unseen::default()
        };
        if supply_only {
            let seen: BTreeSet<&str> = considered.iter().map(|o| o.offer_id.as_str()).collect();
            unseen.free = self
                .st
                .offers_of(c)?
                .into_iter()
                .filter(|o| {
                    !seen.contains(o.offer_id.as_str())
                        && o.remaining() > 0
                        && o.closes_at() >= self.now
                })
                .collect();
        }
        Ok(unseen)
    }

    /// Waiting needs join best rank first, until the free capacity is planned.
    fn visit_waiting(
        &mut self,
        c: Capability,
        offers: &[Offer],
        solver: &mut Solver,
        takers: &mut Vec<Taker>,
        visited: &mut BTreeSet<(String, usize)>,
    ) -> Result<(), StoreError> {
        let prefix = waiting_prefix(c);
        let mut after: Option<Vec<u8>> = None;
        while solver.free() > 0 {
            let page = self.st.store.scan_page(&prefix, after.as_deref(), PAGE)?;
            after = page.last().map(|kv| kv.0.clone());
            for (key, _) in &page {
                if solver.free() == 0 {
                    break;
                }
                let Some((request_id, idx)) = parse_waiting(&key[prefix.len()..]) else {
                    continue;
                };
                if let Some((incident, request, idx)) = self.load_taker(&request_id, idx)? {
                    takers.push(self.join(incident, request, idx, offers, solver));
                }
                visited.insert((request_id, idx));
            }
            if page.len() < PAGE {
                break;
            }
        }
        Ok(())
    }

    /// The need's request and incident, if it is still open and missing units.
    fn load_taker(&self, request_id: &str, idx: usize) -> Result<Option<Joining>, StoreError> {
        let Some(request) = self.st.request(request_id)? else {
            return Ok(None);
        };
        let Some(incident) = self.st.incident(&request.incident_id)? else {
            return Ok(None);
        };
        let open = idx < request.needs.len() && incident.open;
        if !open || request.needs[idx].missing() <= 0 {
            return Ok(None);
        }
        Ok(Some((incident, request, idx)))
    }

    /// Checks every rule against every offer of the round, then lets the solver serve the
    /// need from the eligible ones, preferred first: a team that works the way the requester
    /// wants, then one that knows the incident's sector, then the fastest, then by offer id.
    fn join(
        &self,
        incident: Rc<Incident>,
        request: Rc<Request>,
        idx: usize,
        offers: &[Offer],
        solver: &mut Solver,
    ) -> Taker {
        let need = &request.needs[idx];
        let ctx = NeedContext {
            requester: &request.nation,
            capability: need.capability,
            tlp: incident.tlp,
            refused_offers: &need.excluded_offers,
            stream_time: self.now,
        };
        let mut excluded = [0i32; Rule::ALL.len()];
        let mut eligible = Vec::new();
        for (j, offer) in offers.iter().enumerate() {
            match rules::check(offer, &ctx) {
                Ok(()) => eligible.push(j),
                Err(rule) => excluded[rule as usize] += 1,
            }
        }
        eligible.sort_by_key(|&j| {
            let o = &offers[j];
            (
                !o.delivery.suits(need.delivery),
                !o.sector_expertise.contains(&incident.sector),
                o.response_time_ms,
                j,
            )
        });
        let candidates = eligible.len() as i32;
        let slot = solver.add_need(need.missing(), eligible);
        Taker {
            incident,
            request,
            idx,
            slot,
            candidates,
            excluded,
        }
    }

    /// Proposes what the solver gave the need, and announces what stays missing if that
    /// changed.
    fn settle(
        &mut self,
        mut t: Taker,
        offers: &mut [Offer],
        solver: &Solver,
        unseen: &Unseen,
    ) -> Result<(), StoreError> {
        t.excluded[Rule::Capacity as usize] += unseen.full;
        if !unseen.free.is_empty() {
            let need = &t.request.needs[t.idx];
            let ctx = NeedContext {
                requester: &t.request.nation,
                capability: need.capability,
                tlp: t.incident.tlp,
                refused_offers: &need.excluded_offers,
                stream_time: self.now,
            };
            for o in &unseen.free {
                match rules::check(o, &ctx) {
                    Ok(()) => t.candidates += 1,
                    Err(rule) => t.excluded[rule as usize] += 1,
                }
            }
        }
        // The score ranks the request: the documented weighted sum of its criteria, the same
        // for every proposal and announcement about it, whatever the units.
        let (score, criteria) = rank::score(&t.incident, &t.request);
        let rationale = || Rationale {
            score,
            criteria: criteria.clone(),
            candidates: t.candidates,
            excluded: Rule::ALL
                .into_iter()
                .zip(t.excluded)
                .filter(|(_, n)| *n > 0)
                .map(|(rule, n)| RuleCount {
                    rule: rule.name().into(),
                    excluded: n,
                })
                .collect(),
        };
        let flow = solver.flow(t.slot);
        let mut changed = !flow.is_empty();
        for (j, units) in flow {
            let seq = self.st.next_seq()?;
            let offer = &mut offers[j];
            let asg = Assignment {
                assignment_id: format!("A-{seq:08}"),
                request_id: t.request.request_id.clone(),
                need: t.idx as u8,
                offer_id: offer.offer_id.clone(),
                provider: offer.nation.clone(),
                units,
                status: AssignmentStatus::Proposed,
                respond_by: self.now.saturating_add(self.config.acceptance_timeout_ms),
            };
            offer.committed += units;
            offer.assignments.push(asg.assignment_id.clone());
            let (nation, c) = (offer.nation.clone(), offer.capability);
            self.capacity(&nation, c, 0, units as i64)?;
            let request = Rc::make_mut(&mut t.request);
            request.needs[t.idx].covered += units;
            request.assignments.push(asg.assignment_id.clone());
            self.st.put_assignment(&asg);
            self.st
                .mark(&deadline_key(asg.respond_by, &asg.assignment_id));
            let header = self.header();
            self.emit(Decision::AssignmentProposed(AssignmentProposed {
                header,
                subject: subject(&t.incident, &t.request, t.idx),
                assignment_id: asg.assignment_id,
                offer_id: asg.offer_id,
                provider_nation: asg.provider,
                units,
                respond_by: asg.respond_by,
                rationale: Some(rationale()),
            }));
        }
        let need = &mut Rc::make_mut(&mut t.request).needs[t.idx];
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
                subject: subject(&t.incident, &t.request, t.idx),
                units_requested,
                units_missing: missing,
                rationale: Some(rationale()),
            }));
        }
        if changed {
            self.set_waiting(&t.incident, &t.request, t.idx)?;
            self.st.put_request_shared(t.request);
        }
        Ok(())
    }

    /// Writes offers whose commitment changed; an offer with nothing left leaves the index.
    fn save_offers(&mut self, offers: &[Offer], before: &[i32]) -> Result<(), StoreError> {
        for (offer, before) in offers.iter().zip(before) {
            if offer.committed != *before {
                self.st.put_offer(offer);
                if offer.remaining() <= 0 {
                    self.index_offer(offer)?;
                }
            }
        }
        Ok(())
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
