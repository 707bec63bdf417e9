//! Eligibility: may offer O help need N of request R? One named function per rule of
//! `docs/architecture.md` ("Assignment rules", "Eligibility"), checked in a fixed order so
//! that exclusion counts are reproducible.

use crate::event::{Capability, Tlp};
use crate::state::Offer;

/// What one need asks for, as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct NeedContext<'a> {
    pub requester: &'a str,
    pub capability: Capability,
    pub tlp: Tlp,
    pub refused_offers: &'a [String],
    pub stream_time: i64,
}

/// The rule that excluded an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    Capability,
    Capacity,
    Window,
    NotEligible,
    Excluded,
    SelfHelp,
    Tlp,
    Refused,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Capability,
        Rule::Capacity,
        Rule::Window,
        Rule::NotEligible,
        Rule::Excluded,
        Rule::SelfHelp,
        Rule::Tlp,
        Rule::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Capability => "capability_mismatch",
            Rule::Capacity => "no_remaining_capacity",
            Rule::Window => "outside_availability_window",
            Rule::NotEligible => "beneficiary_not_eligible",
            Rule::Excluded => "beneficiary_excluded",
            Rule::SelfHelp => "self_help",
            Rule::Tlp => "tlp_above_team_clearance",
            Rule::Refused => "refused_before",
        }
    }
}

pub fn offers_capability(o: &Offer, n: &NeedContext) -> bool {
    o.capability == n.capability
}

pub fn has_remaining_capacity(o: &Offer) -> bool {
    o.remaining() > 0
}

/// The team can be there in time: stream time plus response time falls inside the window.
pub fn window_covers(o: &Offer, n: &NeedContext) -> bool {
    let ready = n.stream_time.saturating_add(o.response_time_ms);
    o.available_from <= ready && ready <= o.available_until
}

/// An empty eligible list means every member may benefit.
pub fn beneficiary_eligible(o: &Offer, n: &NeedContext) -> bool {
    o.eligible_nations.is_empty() || o.eligible_nations.iter().any(|e| e == n.requester)
}

pub fn beneficiary_not_excluded(o: &Offer, n: &NeedContext) -> bool {
    !o.excluded_nations.iter().any(|e| e == n.requester)
}

pub fn not_self_help(o: &Offer, n: &NeedContext) -> bool {
    o.nation != n.requester
}

pub fn team_cleared_for(o: &Offer, n: &NeedContext) -> bool {
    n.tlp <= o.max_tlp
}

/// An offer that declined or let this need's proposal lapse is not proposed to it again.
pub fn not_refused_before(o: &Offer, n: &NeedContext) -> bool {
    !n.refused_offers.contains(&o.offer_id)
}

/// For an assignment already made: the rules an offer's new terms can break (when its
/// nation updates it). Capacity is settled separately; window and response time bind only new
/// proposals.
pub fn still_allowed(o: &Offer, requester: &str, tlp: Tlp) -> Result<(), Rule> {
    let n = NeedContext {
        requester,
        capability: o.capability,
        tlp,
        refused_offers: &[],
        stream_time: 0,
    };
    let checks: [(bool, Rule); 3] = [
        (beneficiary_eligible(o, &n), Rule::NotEligible),
        (beneficiary_not_excluded(o, &n), Rule::Excluded),
        (team_cleared_for(o, &n), Rule::Tlp),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, rule)) => Err(*rule),
        None => Ok(()),
    }
}

/// The first rule `o` breaks for `n`, or `Ok` when it may help.
pub fn check(o: &Offer, n: &NeedContext) -> Result<(), Rule> {
    let checks: [(bool, Rule); 8] = [
        (offers_capability(o, n), Rule::Capability),
        (has_remaining_capacity(o), Rule::Capacity),
        (window_covers(o, n), Rule::Window),
        (beneficiary_eligible(o, n), Rule::NotEligible),
        (beneficiary_not_excluded(o, n), Rule::Excluded),
        (not_self_help(o, n), Rule::SelfHelp),
        (team_cleared_for(o, n), Rule::Tlp),
        (not_refused_before(o, n), Rule::Refused),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, rule)) => Err(*rule),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            offer_id: "O1".into(),
            nation: "DEU".into(),
            capability: Capability::Forensics,
            capacity: 4,
            committed: 0,
            available_from: 1_000,
            available_until: 10_000,
            response_time_ms: 500,
            eligible_nations: vec![],
            excluded_nations: vec![],
            max_tlp: Tlp::Amber,
            sector_expertise: vec![],
            delivery: crate::event::Delivery::Either,
            assignments: vec![],
        }
    }

    fn need(refused: &[String]) -> NeedContext<'_> {
        NeedContext {
            requester: "EST",
            capability: Capability::Forensics,
            tlp: Tlp::Green,
            refused_offers: refused,
            stream_time: 2_000,
        }
    }

    #[test]
    fn an_offer_that_fits_every_rule_is_eligible() {
        assert_eq!(check(&offer(), &need(&[])), Ok(()));
    }

    #[test]
    fn each_rule_excludes_on_its_own() {
        let n = need(&[]);
        let cases: Vec<(Offer, Rule)> = vec![
            (
                Offer {
                    capability: Capability::IcsOt,
                    ..offer()
                },
                Rule::Capability,
            ),
            (
                Offer {
                    committed: 4,
                    ..offer()
                },
                Rule::Capacity,
            ),
            (
                Offer {
                    available_until: 2_400,
                    ..offer()
                },
                Rule::Window,
            ),
            (
                Offer {
                    available_from: 2_600,
                    ..offer()
                },
                Rule::Window,
            ),
            (
                Offer {
                    eligible_nations: vec!["LVA".into()],
                    ..offer()
                },
                Rule::NotEligible,
            ),
            (
                Offer {
                    excluded_nations: vec!["EST".into()],
                    ..offer()
                },
                Rule::Excluded,
            ),
            (
                Offer {
                    nation: "EST".into(),
                    ..offer()
                },
                Rule::SelfHelp,
            ),
            (
                Offer {
                    max_tlp: Tlp::Clear,
                    ..offer()
                },
                Rule::Tlp,
            ),
        ];
        for (o, rule) in cases {
            assert_eq!(check(&o, &n), Err(rule), "{o:?}");
        }
        let refused = vec!["O1".to_string()];
        assert_eq!(check(&offer(), &need(&refused)), Err(Rule::Refused));
    }

    #[test]
    fn a_team_cleared_for_amber_may_receive_green_and_amber_but_not_red() {
        let o = offer();
        for (tlp, ok) in [(Tlp::Green, true), (Tlp::Amber, true), (Tlp::Red, false)] {
            let n = NeedContext { tlp, ..need(&[]) };
            assert_eq!(team_cleared_for(&o, &n), ok, "{tlp:?}");
        }
    }
}
