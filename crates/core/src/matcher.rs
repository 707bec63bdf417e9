//! Matching one need against the live offers of its capability.
//!
//! Offers arrive sorted (fastest response first, then offer id); the plan takes eligible offers
//! in that order until the need is covered. Exclusion counts per rule go into the rationale.

use crate::rules::{self, NeedContext, Rule};
use crate::state::Offer;

/// Units to take from the offer at index `offer` of the slice given to [`plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub offer: usize,
    pub units: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub chosen: Vec<Candidate>,
    /// Offers that passed every rule.
    pub candidates: i32,
    /// How many offers each rule excluded, in rule order, rules that excluded none left out.
    pub excluded: Vec<(Rule, i32)>,
}

pub fn plan(offers: &[Offer], need: &NeedContext, missing: i32) -> Plan {
    let mut counts = [0i32; Rule::ALL.len()];
    let mut plan = Plan::default();
    let mut left = missing;
    for (i, offer) in offers.iter().enumerate() {
        match rules::check(offer, need) {
            Err(rule) => counts[rule as usize] += 1,
            Ok(()) => {
                plan.candidates += 1;
                if left > 0 {
                    let units = left.min(offer.remaining());
                    left -= units;
                    plan.chosen.push(Candidate { offer: i, units });
                }
            }
        }
    }
    plan.excluded = Rule::ALL
        .into_iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .collect();
    plan
}
