//! Handlers of the offers topic: an offer, new terms for it, and its withdrawal.

use super::{reject, Fold, Handled};
use crate::decision::CancelReason;
use crate::event::*;
use crate::reject::{RejectReason, Rejection};
use crate::rules;
use crate::state::*;
use crate::store::{StoreError, StoreMut};
use crate::validate::{Check, Fields, Terms};

impl Check for AssetOffered {
    fn check(&self, f: &mut Fields) {
        f.id("offer_id", &self.offer_id);
        f.text("team", &self.team, 1, 200);
        f.terms(Terms {
            capacity_units: self.capacity_units,
            available_from: self.available_from,
            available_until: self.available_until,
            response_time_minutes: self.response_time_minutes,
            nations: self.eligible_nations.iter().chain(&self.excluded_nations),
        });
    }
}

impl Check for OfferUpdated {
    fn check(&self, f: &mut Fields) {
        f.id("offer_id", &self.offer_id);
        f.terms(Terms {
            capacity_units: self.capacity_units,
            available_from: self.available_from,
            available_until: self.available_until,
            response_time_minutes: self.response_time_minutes,
            nations: self.eligible_nations.iter().chain(&self.excluded_nations),
        });
    }
}

impl Check for OfferWithdrawn {
    fn check(&self, f: &mut Fields) {
        f.id("offer_id", &self.offer_id);
        f.text("reason", &self.reason, 0, 2000);
    }
}

impl<S: StoreMut> Fold<'_, '_, S> {
    pub(crate) fn asset_offered(&mut self, e: &AssetOffered) -> Handled {
        if self.st.offer(&e.offer_id)?.is_some() {
            return reject(
                RejectReason::DuplicateEntity,
                format!("offer {} exists", e.offer_id),
            );
        }
        let offer = Offer {
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
            sector_expertise: e.sector_expertise.clone(),
            delivery: e.delivery,
            assignments: Vec::new(),
        };
        self.st.put_offer(&offer);
        self.capacity(&offer.nation, offer.capability, offer.capacity as i64, 0)?;
        self.offer_available(&offer)?;
        Ok(Ok(()))
    }

    /// New terms apply at once. Assignments they no longer allow are cancelled; when capacity
    /// shrinks below what is committed, the newest proposals go first, then the newest
    /// confirmed assignments. Looser terms or more capacity re-match waiting needs.
    pub(crate) fn offer_updated(&mut self, e: &OfferUpdated) -> Handled {
        let mut offer = match self.owned_offer(&e.offer_id, &e.envelope.nation)? {
            Ok(o) => o,
            Err(r) => return Ok(Err(r)),
        };
        self.st
            .remove(&opening_key(offer.opens_at(), &offer.offer_id));
        // The full list is ordered by the window's end, which the new terms may move.
        self.list_full(&offer, false)?;
        offer.capacity = e.capacity_units;
        offer.available_from = e.available_from;
        offer.available_until = e.available_until;
        offer.response_time_ms = e.response_time_minutes as i64 * 60_000;
        offer.eligible_nations = e.eligible_nations.clone();
        offer.excluded_nations = e.excluded_nations.clone();
        offer.max_tlp = e.max_tlp;
        offer.sector_expertise = e.sector_expertise.clone();
        offer.delivery = e.delivery;
        self.st.put_offer(&offer);
        for id in self.no_longer_covered(&offer)? {
            self.cancel(&id, CancelReason::OfferReduced)?;
        }
        // Reload: cancelling changed the commitment.
        if let Some(offer) = self.st.offer(&e.offer_id)? {
            self.offer_available(&offer)?;
        }
        Ok(Ok(()))
    }

    pub(crate) fn offer_withdrawn(&mut self, e: &OfferWithdrawn) -> Handled {
        let offer = match self.owned_offer(&e.offer_id, &e.envelope.nation)? {
            Ok(o) => o,
            Err(r) => return Ok(Err(r)),
        };
        for asg in &offer.assignments {
            self.cancel(asg, CancelReason::OfferWithdrawn)?;
        }
        // Reload: cancelling released the commitment.
        let left = self.st.offer(&offer.offer_id)?.unwrap_or(offer.clone());
        self.capacity(
            &left.nation,
            left.capability,
            -(left.capacity as i64),
            -(left.committed as i64),
        )?;
        self.st.delete_offer(&offer.offer_id);
        self.st
            .remove(&offer_index_key(offer.capability, &offer.offer_id));
        self.list_full(&left, false)?;
        self.st
            .remove(&opening_key(offer.opens_at(), &offer.offer_id));
        Ok(Ok(()))
    }

    fn owned_offer(&self, id: &str, nation: &str) -> Result<Result<Offer, Rejection>, StoreError> {
        Ok(match self.st.offer(id)? {
            None => Err(Rejection::new(
                RejectReason::UnknownEntity,
                format!("no offer {id}"),
            )),
            Some(o) if o.nation != nation => Err(Rejection::new(
                RejectReason::NotOwner,
                format!("offer {id} belongs to {}", o.nation),
            )),
            Some(o) => Ok(o),
        })
    }

    /// Lists an offer with free capacity for matching: now if its window lets it be proposed
    /// at the current stream time, else from the stream time at which it will.
    pub(super) fn offer_available(&mut self, offer: &Offer) -> Result<(), StoreError> {
        if !self.index_offer(offer)? {
            return Ok(());
        }
        if offer.opens_at() > self.now {
            self.st
                .mark(&opening_key(offer.opens_at(), &offer.offer_id));
        } else {
            self.mark_supply(offer.capability, &offer.offer_id);
        }
        Ok(())
    }

    /// Assignments of `offer` that its terms no longer cover, in the order to cancel them.
    fn no_longer_covered(&self, offer: &Offer) -> Result<Vec<String>, StoreError> {
        let mut cancel = Vec::new();
        let mut kept: Vec<Assignment> = Vec::new();
        for id in &offer.assignments {
            let Some(asg) = self.st.assignment(id)? else {
                continue;
            };
            if self.terms_allow(offer, &asg)? {
                kept.push(asg);
            } else {
                cancel.push(asg.assignment_id);
            }
        }
        let mut over: i32 = kept.iter().map(|a| a.units).sum::<i32>() - offer.capacity;
        // Newest proposals first, then newest confirmed: ids grow with time.
        kept.sort_by(|a, b| {
            let proposed = |x: &Assignment| x.status == AssignmentStatus::Proposed;
            (proposed(b), &b.assignment_id).cmp(&(proposed(a), &a.assignment_id))
        });
        for asg in kept {
            if over <= 0 {
                break;
            }
            over -= asg.units;
            cancel.push(asg.assignment_id);
        }
        Ok(cancel)
    }

    /// Whether the offer's terms still let it help the assignment's requester.
    fn terms_allow(&self, offer: &Offer, asg: &Assignment) -> Result<bool, StoreError> {
        let Some(request) = self.st.request(&asg.request_id)? else {
            return Ok(true);
        };
        let Some(incident) = self.st.incident(&request.incident_id)? else {
            return Ok(true);
        };
        Ok(rules::still_allowed(offer, &request.nation, incident.tlp).is_ok())
    }
}
