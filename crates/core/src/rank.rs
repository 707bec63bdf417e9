//! Ranking of competing requests, after the EU Cyber Solidarity Act, Art. 14(2): severity
//! (priority), whether the entity is essential, the impact, the cross-border spill-over, and the
//! measures the requester has already taken itself. Ties break on when the request was made,
//! then on its id: a stable key, so replays rank alike.

use crate::decision::Criterion;
use crate::state::{Incident, Request};

/// The score of a request and the criteria values behind it.
pub fn score(incident: &Incident, request: &Request) -> (i64, Vec<Criterion>) {
    let impact = impact_mean(incident);
    let criteria = vec![
        criterion("priority_weight", incident.priority.weight() as i64),
        criterion("essential_entity", incident.essential_entity as i64),
        criterion("cross_border", incident.cross_border as i64),
        criterion("impact", impact),
        criterion("own_measures", request.own_measures as i64),
    ];
    let score = incident.priority.weight() as i64 * 1_000
        + incident.essential_entity as i64 * 300
        + incident.cross_border as i64 * 200
        + impact * 2
        + request.own_measures as i64;
    (score, criteria)
}

/// A string whose ascending order is best-first: higher score, then earlier request.
pub fn rank_key(incident: &Incident, request: &Request) -> String {
    let (score, _) = score(incident, request);
    // Scores are far below 10^9; the complement turns "higher is better" into ascending order.
    let inverted = 999_999_999 - score.clamp(0, 999_999_999);
    format!("{inverted:09}{:016x}", request.reported_at.max(0) as u64)
}

fn impact_mean(incident: &Incident) -> i64 {
    let i = &incident.impact;
    (i.functional as i64 + i.information as i64 + i.recoverability as i64) / 3
}

fn criterion(name: &str, value: i64) -> Criterion {
    Criterion {
        name: name.to_owned(),
        value,
    }
}
