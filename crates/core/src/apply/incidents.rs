//! Handlers of the incidents topic: a report, its updates, requests for help, and closure.

use super::{reject, Fold, Handled};
use crate::event::*;
use crate::picture;
use crate::reject::{RejectReason, Rejection};
use crate::state::*;
use crate::store::{StoreError, StoreMut};
use crate::validate::{Check, Fields};

impl Check for IncidentReported {
    fn check(&self, f: &mut Fields) {
        f.id("incident_id", &self.incident_id);
        f.text("title", &self.title, 1, 200);
        f.facts(&self.techniques, &self.indicators, &self.impact);
    }
}

impl Check for IncidentUpdated {
    fn check(&self, f: &mut Fields) {
        f.id("incident_id", &self.incident_id);
        f.facts(&self.techniques, &self.indicators, &self.impact);
    }
}

impl Check for AssistanceRequested {
    fn check(&self, f: &mut Fields) {
        f.id("request_id", &self.request_id);
        f.id("incident_id", &self.incident_id);
        f.range("own_measures", self.own_measures, 0, 100);
        if self.needs.is_empty() || self.needs.len() > 16 {
            f.error(format!("needs: {} given, 1..=16 allowed", self.needs.len()));
        }
        for (i, n) in self.needs.iter().enumerate() {
            f.range(&format!("needs[{i}].units"), n.units, 1, 1000);
            if self.needs[..i].iter().any(|m| m.capability == n.capability) {
                f.error(format!(
                    "needs[{i}]: capability {} named twice",
                    n.capability.as_str()
                ));
            }
        }
    }
}

impl Check for IncidentClosed {
    fn check(&self, f: &mut Fields) {
        f.id("incident_id", &self.incident_id);
        f.text("resolution", &self.resolution, 0, 2000);
    }
}

impl<S: StoreMut> Fold<'_, '_, S> {
    pub(crate) fn incident_reported(&mut self, e: &IncidentReported) -> Handled {
        if self.st.incident(&e.incident_id)?.is_some() {
            return reject(
                RejectReason::DuplicateEntity,
                format!("incident {} exists", e.incident_id),
            );
        }
        let mut incident = Incident {
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
            indicator_keys: Vec::new(),
            hunt_release: e.hunt_release,
            pap: e.pap,
            stated_confidence: Vec::new(),
        };
        self.st.put_incident(&incident);
        let scopes = picture::scopes(&incident);
        self.totals(&scopes, |t| t.open_incidents += 1)?;
        let techniques: &[String] = if e.tlp == Tlp::Red {
            &[]
        } else {
            &e.techniques
        };
        self.windows(&scopes, e.envelope.occurred_at, |t| {
            t.opened += 1;
            *t.by_priority.entry(e.priority).or_default() += 1;
            *t.by_class.entry(e.rsit_class).or_default() += 1;
            for technique in techniques {
                picture::count_technique(&mut t.techniques, technique);
            }
        })?;
        if crate::hunt::release(e.tlp, e.hunt_release) == crate::hunt::Release::Overridden {
            self.stats(|s| s.hunt_overridden += 1)?;
        }
        self.correlate(&mut incident, &e.indicators)?;
        Ok(Ok(()))
    }

    /// New severity and impact re-rank the incident's waiting needs; nothing is re-matched,
    /// because a waiting need has no eligible free capacity whatever its rank.
    pub(crate) fn incident_updated(&mut self, e: &IncidentUpdated) -> Handled {
        let mut incident = match self.owned_open_incident(&e.incident_id, &e.envelope.nation)? {
            Ok(i) => i,
            Err(r) => return Ok(Err(r)),
        };
        let mut requests = Vec::new();
        for id in &incident.requests {
            if let Some(request) = self.st.request(id)? {
                for idx in 0..request.needs.len() {
                    self.leave_waiting(&incident, &request, idx)?;
                }
                requests.push(request);
            }
        }
        let old_scopes = picture::scopes(&incident);
        incident.priority = e.priority;
        incident.essential_entity = e.essential_entity;
        incident.cross_border = e.cross_border;
        incident.impact = e.impact.clone();
        let mut new_techniques = Vec::new();
        for t in &e.techniques {
            if !incident.techniques.contains(t) {
                incident.techniques.push(t.clone());
                new_techniques.push(t.clone());
            }
        }
        let scopes = picture::scopes(&incident);
        if scopes != old_scopes {
            // The open incident and its requests move to their new priority's totals.
            let requests = incident.requests.len() as i64;
            let moved = |sign: i64| {
                move |t: &mut crate::picture::Tally| {
                    t.open_incidents += sign;
                    t.open_requests += sign * requests;
                }
            };
            self.totals(&old_scopes[4..], moved(-1))?;
            self.totals(&scopes[4..], moved(1))?;
        }
        if incident.tlp != Tlp::Red && !new_techniques.is_empty() {
            self.windows(&scopes, e.envelope.occurred_at, |t| {
                for technique in &new_techniques {
                    picture::count_technique(&mut t.techniques, technique);
                }
            })?;
        }
        self.correlate(&mut incident, &e.indicators)?;
        for request in &requests {
            for idx in 0..request.needs.len() {
                self.set_waiting(&incident, request, idx)?;
            }
        }
        self.st.put_incident(&incident);
        Ok(Ok(()))
    }

    /// The requester's open incident, or why it cannot be acted on.
    pub(super) fn owned_open_incident(
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
            Some(i) => Ok(std::rc::Rc::unwrap_or_clone(i)),
        })
    }

    pub(crate) fn assistance_requested(&mut self, e: &AssistanceRequested) -> Handled {
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
                    delivery: n.delivery,
                })
                .collect(),
            assignments: Vec::new(),
        };
        for idx in 0..request.needs.len() {
            self.set_waiting(&incident, &request, idx)?;
            let c = request.needs[idx].capability;
            self.mark_fresh(c, &request.request_id, idx);
        }
        self.st.put_request(&request);
        self.st.mark(&open_request_key(&request.request_id));
        incident.requests.push(request.request_id);
        self.st.put_incident(&incident);
        let scopes = picture::scopes(&incident);
        self.totals(&scopes, |t| t.open_requests += 1)?;
        self.windows(&scopes, e.envelope.occurred_at, |t| t.requests += 1)?;
        Ok(Ok(()))
    }

    /// Cancels every assignment of the incident's requests, which frees their capacity.
    pub(crate) fn incident_closed(&mut self, e: &IncidentClosed) -> Handled {
        let mut incident = match self.owned_open_incident(&e.incident_id, &e.envelope.nation)? {
            Ok(i) => i,
            Err(r) => return Ok(Err(r)),
        };
        incident.open = false;
        self.st.put_incident(&incident);
        // A closed incident releases nothing to hunts any more.
        self.hunt_touched
            .extend(incident.indicator_keys.iter().cloned());
        self.hunt_incident_campaign(&incident.incident_id)?;
        let scopes = picture::scopes(&incident);
        let requests = incident.requests.len() as i64;
        self.totals(&scopes, |t| {
            t.open_incidents -= 1;
            t.open_requests -= requests;
        })?;
        self.windows(&scopes, e.envelope.occurred_at, |t| t.closed += 1)?;
        for request_id in &incident.requests {
            self.st.remove(&open_request_key(request_id));
            let Some(request) = self.st.request(request_id)? else {
                continue;
            };
            for asg in &request.assignments {
                self.cancel(asg, crate::decision::CancelReason::IncidentClosed)?;
            }
            // Reload: cancelling changed the request.
            let Some(request) = self.st.request(request_id)? else {
                continue;
            };
            for idx in 0..request.needs.len() {
                self.set_waiting(&incident, &request, idx)?;
            }
        }
        Ok(Ok(()))
    }
}
