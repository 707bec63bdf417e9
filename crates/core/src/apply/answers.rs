//! Handlers of the responses topic: the provider accepts, declines or completes an assignment.

use super::{Fold, Handled};
use crate::decision::{AssignmentConfirmed, CancelReason, Decision};
use crate::event::*;
use crate::reject::{RejectReason, Rejection};
use crate::state::*;
use crate::store::{StoreError, StoreMut};
use crate::validate::{Check, Fields};

impl Check for AssignmentAccepted {
    fn check(&self, f: &mut Fields) {
        f.id("assignment_id", &self.assignment_id);
    }
}

impl Check for AssignmentDeclined {
    fn check(&self, f: &mut Fields) {
        f.id("assignment_id", &self.assignment_id);
        f.text("reason", &self.reason, 0, 2000);
    }
}

impl Check for AssignmentCompleted {
    fn check(&self, f: &mut Fields) {
        f.id("assignment_id", &self.assignment_id);
        f.text("summary", &self.summary, 0, 2000);
    }
}

impl<S: StoreMut> Fold<'_, '_, S> {
    pub(crate) fn assignment_accepted(&mut self, e: &AssignmentAccepted) -> Handled {
        let id = &e.assignment_id;
        let mut asg = match self.provider_assignment(&e.envelope, id, AssignmentStatus::Proposed)? {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        };
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

    pub(crate) fn assignment_declined(&mut self, e: &AssignmentDeclined) -> Handled {
        let id = &e.assignment_id;
        if let Err(r) = self.provider_assignment(&e.envelope, id, AssignmentStatus::Proposed)? {
            return Ok(Err(r));
        }
        self.cancel(id, CancelReason::Declined)?;
        Ok(Ok(()))
    }

    /// The work is done: the offer gets its units back, and the need stays covered for good
    /// (the assignment leaves the request, so closing the incident does not cancel it).
    pub(crate) fn assignment_completed(&mut self, e: &AssignmentCompleted) -> Handled {
        let id = &e.assignment_id;
        let asg = match self.provider_assignment(&e.envelope, id, AssignmentStatus::Confirmed)? {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        };
        self.st.remove(&assignment_key(id));
        if let Some(mut request) = self
            .st
            .request(&asg.request_id)?
            .map(std::rc::Rc::unwrap_or_clone)
        {
            request.assignments.retain(|a| a != id);
            self.st.put_request(&request);
        }
        if let Some(mut offer) = self.st.offer(&asg.offer_id)? {
            offer.committed -= asg.units;
            offer.assignments.retain(|a| a != id);
            self.st.put_offer(&offer);
            self.capacity(&offer.nation, offer.capability, 0, -(asg.units as i64))?;
            self.offer_available(&offer)?;
        }
        Ok(Ok(()))
    }

    /// The assignment `id`, if `env`'s nation provides it and it is in state `expected`.
    fn provider_assignment(
        &self,
        env: &Envelope,
        id: &str,
        expected: AssignmentStatus,
    ) -> Result<Result<Assignment, Rejection>, StoreError> {
        Ok(match self.st.assignment(id)? {
            None if self.st.assignment_ended(id)? => Err(Rejection::new(
                RejectReason::WrongState,
                format!("assignment {id} has ended (cancelled, timed out or completed)"),
            )),
            None => Err(Rejection::new(
                RejectReason::UnknownEntity,
                format!("no assignment {id}"),
            )),
            Some(a) if a.provider != env.nation => Err(Rejection::new(
                RejectReason::NotOwner,
                format!("assignment {id} was proposed to {}", a.provider),
            )),
            Some(a) if a.status != expected => Err(Rejection::new(
                RejectReason::WrongState,
                format!("assignment {id} is {:?}, not {expected:?}", a.status),
            )),
            Some(a) => Ok(a),
        })
    }
}
