//! TLP 2.0 on outputs: who may see what of an incident.
//!
//! | TLP          | requester | coordination cell | helping nation             |
//! |--------------|-----------|-------------------|----------------------------|
//! | CLEAR, GREEN | all       | all               | all                        |
//! | AMBER        | all       | all               | all                        |
//! | AMBER_STRICT | all       | all               | ids, capability, sector, priority |
//! | RED          | all       | ids, capability   | ids, capability            |
//!
//! A decision only ever goes to the requester, the helping nation it names and the cell, so no
//! other nation receives anything.

use crate::decision::{Audience, Decision, Routed};
use crate::event::Tlp;

/// How much of an incident an audience may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Visibility {
    /// Ids, capability and the TLP marking only.
    IdsOnly,
    /// Also sector and priority: what a helper needs to act.
    NeedToAct,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Requester,
    Cell,
    Helper,
}

pub fn visibility(tlp: Tlp, role: Role) -> Visibility {
    match (role, tlp) {
        (Role::Requester, _) => Visibility::Full,
        (_, Tlp::Clear | Tlp::Green | Tlp::Amber) => Visibility::Full,
        (Role::Cell, Tlp::AmberStrict) => Visibility::Full,
        (Role::Helper, Tlp::AmberStrict) => Visibility::NeedToAct,
        (_, Tlp::Red) => Visibility::IdsOnly,
    }
}

/// Removes what `visibility` does not allow.
pub fn redact(mut decision: Decision, visibility: Visibility) -> Decision {
    if visibility < Visibility::Full {
        decision.clear_rationale();
        decision.subject_mut().details = None;
    }
    if visibility < Visibility::NeedToAct {
        let subject = decision.subject_mut();
        subject.sector = None;
        subject.priority = None;
    }
    decision
}

/// The decision for each audience entitled to it, each redacted to what it may see, in a fixed
/// order: requester, helper, cell.
pub fn route(decision: Decision) -> Vec<Routed> {
    let tlp = decision.subject().tlp;
    let requester = decision.subject().requester_nation.clone();
    let mut routed = Vec::with_capacity(3);
    if let Some(helper) = decision.provider().map(str::to_owned) {
        routed.push(Routed {
            audience: Audience::Nation(helper),
            decision: redact(decision.clone(), visibility(tlp, Role::Helper)),
        });
    }
    routed.push(Routed {
        audience: Audience::Coalition,
        decision: redact(decision.clone(), visibility(tlp, Role::Cell)),
    });
    routed.insert(
        0,
        Routed {
            audience: Audience::Nation(requester),
            decision,
        },
    );
    routed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requester_always_sees_everything() {
        for tlp in [
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ] {
            assert_eq!(visibility(tlp, Role::Requester), Visibility::Full);
        }
    }

    #[test]
    fn a_helper_sees_only_what_it_needs_under_amber_strict_and_ids_under_red() {
        assert_eq!(visibility(Tlp::Amber, Role::Helper), Visibility::Full);
        assert_eq!(
            visibility(Tlp::AmberStrict, Role::Helper),
            Visibility::NeedToAct
        );
        assert_eq!(visibility(Tlp::Red, Role::Helper), Visibility::IdsOnly);
    }

    #[test]
    fn the_cell_sees_amber_strict_but_not_red() {
        assert_eq!(visibility(Tlp::AmberStrict, Role::Cell), Visibility::Full);
        assert_eq!(visibility(Tlp::Red, Role::Cell), Visibility::IdsOnly);
    }
}
