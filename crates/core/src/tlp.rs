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
//!
//! Identifiers follow the same rule. A decision's id names the event that caused it, and that
//! event may be another nation's (a closure of a RED incident frees capacity that a proposal
//! then uses). The cell sees the causing event's id; a nation sees it only for its own events,
//! and otherwise an id derived from the cause and the nation ([`audience_cause_id`]): stable
//! across replays, the same for every decision of one cause, and telling nothing of the event.

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
/// order: requester, helper, cell. `cause_nation` sent the event that caused it.
pub fn route(decision: Decision, cause_nation: &str) -> Vec<Routed> {
    let tlp = decision.subject().tlp;
    let requester = decision.subject().requester_nation.clone();
    let mut routed = Vec::with_capacity(3);
    routed.push(for_nation(
        decision.clone(),
        requester,
        Visibility::Full,
        cause_nation,
    ));
    if let Some(helper) = decision.provider().map(str::to_owned) {
        let seen = visibility(tlp, Role::Helper);
        routed.push(for_nation(decision.clone(), helper, seen, cause_nation));
    }
    routed.push(Routed {
        audience: Audience::Coalition,
        decision: redact(decision, visibility(tlp, Role::Cell)),
    });
    routed
}

/// `decision` as `nation` may see it: redacted, and with the causing event's id replaced
/// unless `nation` sent that event.
fn for_nation(decision: Decision, nation: String, seen: Visibility, cause_nation: &str) -> Routed {
    let mut decision = redact(decision, seen);
    if nation != cause_nation {
        let header = decision.header_mut();
        let cause = audience_cause_id(&nation, &header.cause_event_id);
        let n = header
            .decision_id
            .rsplit_once('.')
            .map_or("1", |(_, n)| n)
            .to_owned();
        header.decision_id = format!("{cause}.{n}");
        header.cause_event_id = cause;
    }
    Routed {
        audience: Audience::Nation(nation),
        decision,
    }
}

/// The id under which `nation` sees the event `cause` that another nation sent: the first 128
/// bits of SHA-256 over a fixed label, the nation and the event id, written as a UUID (version
/// 8). Event ids are UUIDs (intake refuses others), so the digest cannot be turned back into
/// the event id, and two nations see unrelated ids for the same event.
pub fn audience_cause_id(nation: &str, cause: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"rallypoint/decision-cause/v1\0");
    h.update(nation.as_bytes());
    h.update(b"\0");
    h.update(cause.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8: custom
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant

    // Built without `format!`: every decision to another nation computes one.
    crate::hunt::hyphenated(uuid::Uuid::from_bytes(b))
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
