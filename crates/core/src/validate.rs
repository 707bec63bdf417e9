//! Intake's gate: field rules, the topic an event must arrive on, and authorization (the event's
//! nation is the topic's nation). Pure: the caller passes the wall-clock time it read, because the
//! only time check ("not from the future") guards the journal, not the fold.

use crate::event::*;
use crate::reject::{RejectReason, Rejection};

/// Where a record came from, parsed from its topic name `rrc.in.<NATION>.<stream>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub nation: String,
    pub stream: Stream,
}

impl Origin {
    /// Parses `rrc.in.<NATION>.<incidents|offers|responses>`.
    pub fn from_topic(topic: &str) -> Option<Origin> {
        let rest = topic.strip_prefix("rrc.in.")?;
        let (nation, suffix) = rest.split_once('.')?;
        if !is_nation(nation) {
            return None;
        }
        Some(Origin {
            nation: nation.to_owned(),
            stream: Stream::from_suffix(suffix)?,
        })
    }
}

/// Limits the gate applies.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How far `reported_at` may be ahead of the intake's clock.
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_future_ms: 5 * 60 * 1000,
        }
    }
}

/// Checks one decoded event that arrived from `origin` at wall-clock time `now_ms`.
pub fn validate(
    event: &Event,
    origin: &Origin,
    now_ms: i64,
    limits: &Limits,
) -> Result<(), Rejection> {
    let env = event.envelope();
    if event.stream() != origin.stream {
        return Err(Rejection::new(
            RejectReason::WrongTopic,
            format!(
                "{} belongs on a {} topic, not {}",
                event.type_name(),
                event.stream().suffix(),
                origin.stream.suffix()
            ),
        ));
    }
    let mut errors = Vec::new();
    check_envelope(env, &mut errors);
    check_body(event, &mut errors);
    if !errors.is_empty() {
        return Err(Rejection::new(
            RejectReason::InvalidField,
            errors.join("; "),
        ));
    }
    if env.nation != origin.nation {
        return Err(Rejection::new(
            RejectReason::SpoofedNation,
            format!(
                "event declares nation {} but arrived on {}'s topic",
                env.nation, origin.nation
            ),
        ));
    }
    if env.reported_at > now_ms.saturating_add(limits.max_future_ms) {
        return Err(Rejection::new(
            RejectReason::FromTheFuture,
            format!(
                "reported_at {} is {} ms ahead of the intake clock",
                env.reported_at,
                env.reported_at - now_ms
            ),
        ));
    }
    Ok(())
}

pub fn is_nation(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Entity ids: 1..=64 of `[A-Za-z0-9._:-]` (no `/`: state keys use it as separator).
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Canonical textual UUID, any version.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// ATT&CK technique id: `T1234` or `T1234.001`.
pub fn is_technique(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..5]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

fn check_envelope(env: &Envelope, errors: &mut Vec<String>) {
    if !is_uuid(&env.event_id) {
        errors.push(format!(
            "envelope.event_id {:?} is not a UUID",
            truncate(&env.event_id)
        ));
    }
    if !is_nation(&env.nation) {
        errors.push(format!(
            "envelope.nation {:?} is not an ISO 3166-1 alpha-3 code",
            truncate(&env.nation)
        ));
    }
    if env.schema_version < 1 {
        errors.push(format!(
            "envelope.schema_version {} must be at least 1",
            env.schema_version
        ));
    }
    if env.occurred_at <= 0 || env.reported_at <= 0 {
        errors.push(
            "envelope.occurred_at and reported_at must be positive epoch milliseconds".into(),
        );
    }
}

fn check_body(event: &Event, errors: &mut Vec<String>) {
    match event {
        Event::IncidentReported(e) => {
            id("incident_id", &e.incident_id, errors);
            text("title", &e.title, 1, 200, errors);
            facts(&e.techniques, &e.indicators, &e.impact, errors);
        }
        Event::IncidentUpdated(e) => {
            id("incident_id", &e.incident_id, errors);
            facts(&e.techniques, &e.indicators, &e.impact, errors);
        }
        Event::AssistanceRequested(e) => {
            id("request_id", &e.request_id, errors);
            id("incident_id", &e.incident_id, errors);
            range("own_measures", e.own_measures, 0, 100, errors);
            if e.needs.is_empty() || e.needs.len() > 16 {
                errors.push(format!("needs: {} given, 1..=16 allowed", e.needs.len()));
            }
            for (i, n) in e.needs.iter().enumerate() {
                range(&format!("needs[{i}].units"), n.units, 1, 1000, errors);
                if e.needs[..i].iter().any(|m| m.capability == n.capability) {
                    errors.push(format!(
                        "needs[{i}]: capability {} named twice",
                        n.capability.as_str()
                    ));
                }
            }
        }
        Event::IncidentClosed(e) => {
            id("incident_id", &e.incident_id, errors);
            text("resolution", &e.resolution, 0, 2000, errors);
        }
        Event::AssetOffered(e) => {
            id("offer_id", &e.offer_id, errors);
            text("team", &e.team, 1, 200, errors);
            terms(
                Terms {
                    capacity_units: e.capacity_units,
                    available_from: e.available_from,
                    available_until: e.available_until,
                    response_time_minutes: e.response_time_minutes,
                    nations: e.eligible_nations.iter().chain(&e.excluded_nations),
                },
                errors,
            );
        }
        Event::OfferUpdated(e) => {
            id("offer_id", &e.offer_id, errors);
            terms(
                Terms {
                    capacity_units: e.capacity_units,
                    available_from: e.available_from,
                    available_until: e.available_until,
                    response_time_minutes: e.response_time_minutes,
                    nations: e.eligible_nations.iter().chain(&e.excluded_nations),
                },
                errors,
            );
        }
        Event::OfferWithdrawn(e) => {
            id("offer_id", &e.offer_id, errors);
            text("reason", &e.reason, 0, 2000, errors);
        }
        Event::AssignmentAccepted(e) => id("assignment_id", &e.assignment_id, errors),
        Event::AssignmentDeclined(e) => {
            id("assignment_id", &e.assignment_id, errors);
            text("reason", &e.reason, 0, 2000, errors);
        }
        Event::AssignmentCompleted(e) => {
            id("assignment_id", &e.assignment_id, errors);
            text("summary", &e.summary, 0, 2000, errors);
        }
    }
}

/// Techniques, indicators and impact, as an incident report or update states them.
fn facts(
    techniques: &[String],
    indicators: &[Indicator],
    impact: &Impact,
    errors: &mut Vec<String>,
) {
    for t in techniques {
        if !is_technique(t) {
            errors.push(format!(
                "techniques: {:?} is not an ATT&CK technique id",
                truncate(t)
            ));
        }
    }
    if techniques.len() > 64 || indicators.len() > 256 {
        errors.push("at most 64 techniques and 256 indicators".into());
    }
    for i in indicators {
        text("indicators.value", &i.value, 1, 2048, errors);
    }
    for (name, v) in [
        ("functional", impact.functional),
        ("information", impact.information),
        ("recoverability", impact.recoverability),
    ] {
        range(&format!("impact.{name}"), v, 0, 100, errors);
    }
}

/// The terms of an offer, as an offer or its update states them.
struct Terms<'a, N: Iterator<Item = &'a String>> {
    capacity_units: i32,
    available_from: i64,
    available_until: i64,
    response_time_minutes: i32,
    /// Eligible and excluded nations.
    nations: N,
}

fn terms<'a>(t: Terms<'a, impl Iterator<Item = &'a String>>, errors: &mut Vec<String>) {
    range("capacity_units", t.capacity_units, 1, 10_000, errors);
    range(
        "response_time_minutes",
        t.response_time_minutes,
        0,
        30 * 24 * 60,
        errors,
    );
    if t.available_until <= t.available_from {
        errors.push("available_until must be after available_from".into());
    }
    for n in t.nations {
        if !is_nation(n) {
            errors.push(format!(
                "{:?} in eligible/excluded nations is not an alpha-3 code",
                truncate(n)
            ));
        }
    }
}

fn id(field: &str, v: &str, errors: &mut Vec<String>) {
    if !is_id(v) {
        errors.push(format!(
            "{field} {:?} must be 1-64 characters of A-Z a-z 0-9 . _ : -",
            truncate(v)
        ));
    }
}

fn text(field: &str, v: &str, min: usize, max: usize, errors: &mut Vec<String>) {
    let n = v.chars().count();
    if n < min || n > max {
        errors.push(format!("{field} has {n} characters, {min}..={max} allowed"));
    }
}

fn range(field: &str, v: i32, min: i32, max: i32, errors: &mut Vec<String>) {
    if v < min || v > max {
        errors.push(format!("{field} = {v} is outside {min}..={max}"));
    }
}

/// Keeps hostile values from flooding a rejection's detail.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_parse_into_nation_and_stream() {
        let o = Origin::from_topic("rrc.in.EST.offers").unwrap();
        assert_eq!((o.nation.as_str(), o.stream), ("EST", Stream::Offers));
        assert_eq!(Origin::from_topic("rrc.in.est.offers"), None);
        assert_eq!(Origin::from_topic("rrc.in.EST.gossip"), None);
        assert_eq!(Origin::from_topic("rrc.out.EST.decisions"), None);
    }

    #[test]
    fn technique_ids_follow_attack_form() {
        assert!(is_technique("T1486"));
        assert!(is_technique("T1059.001"));
        assert!(!is_technique("T14860"));
        assert!(!is_technique("t1486"));
        assert!(!is_technique("T1059.01"));
    }

    #[test]
    fn uuids_are_checked_by_shape() {
        assert!(is_uuid("5b1c8f1e-3a5b-4e0c-9a77-1c2d3e4f5a6b"));
        assert!(!is_uuid("5b1c8f1e3a5b4e0c9a771c2d3e4f5a6b"));
        assert!(!is_uuid("zb1c8f1e-3a5b-4e0c-9a77-1c2d3e4f5a6b"));
    }
}
