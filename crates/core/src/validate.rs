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
    let mut fields = Fields::default();
    check_envelope(env, &mut fields.errors);
    event.check(&mut fields);
    let errors = fields.errors;
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

/// The field rules of one event type, next to the rule that applies it (`apply/`); the
/// [`events!`](crate::event) table dispatches to them.
pub(crate) trait Check {
    fn check(&self, f: &mut Fields);
}

/// Collects what is wrong with an event's fields, every error at once.
#[derive(Default)]
pub(crate) struct Fields {
    errors: Vec<String>,
}

impl Fields {
    /// Anything else wrong, said in full.
    pub fn error(&mut self, e: String) {
        self.errors.push(e);
    }

    /// Techniques, indicators and impact, as an incident report or update states them.
    pub fn facts(&mut self, techniques: &[String], indicators: &[Indicator], impact: &Impact) {
        for t in techniques {
            if !is_technique(t) {
                self.error(format!(
                    "techniques: {:?} is not an ATT&CK technique id",
                    truncate(t)
                ));
            }
        }
        if techniques.len() > 64 || indicators.len() > 256 {
            self.error("at most 64 techniques and 256 indicators".into());
        }
        for (n, i) in indicators.iter().enumerate() {
            self.text("indicators.value", &i.value, 1, 2048);
            self.indicator_facts(&format!("indicators[{n}]"), i);
        }
        for (name, v) in [
            ("functional", impact.functional),
            ("information", impact.information),
            ("recoverability", impact.recoverability),
        ] {
            self.range(&format!("impact.{name}"), v, 0, 100);
        }
    }

    /// An indicator's optional confidence (0..=100) and the order of its first and last seen.
    pub fn indicator_facts(&mut self, field: &str, i: &Indicator) {
        if let Some(c) = i.confidence {
            self.range(&format!("{field}.confidence"), c, 0, 100);
        }
        if let (Some(first), Some(last)) = (i.first_seen, i.last_seen) {
            if last < first {
                self.error(format!("{field}: last_seen must not be before first_seen"));
            }
        }
    }

    /// The terms of an offer, as an offer or its update states them.
    pub fn terms<'a>(&mut self, t: Terms<'a, impl Iterator<Item = &'a String>>) {
        self.range("capacity_units", t.capacity_units, 1, 10_000);
        self.range(
            "response_time_minutes",
            t.response_time_minutes,
            0,
            30 * 24 * 60,
        );
        if t.available_until <= t.available_from {
            self.error("available_until must be after available_from".into());
        }
        for n in t.nations {
            if !is_nation(n) {
                self.error(format!(
                    "{:?} in eligible/excluded nations is not an alpha-3 code",
                    truncate(n)
                ));
            }
        }
    }

    pub fn id(&mut self, field: &str, v: &str) {
        if !is_id(v) {
            self.error(format!(
                "{field} {:?} must be 1-64 characters of A-Z a-z 0-9 . _ : -",
                truncate(v)
            ));
        }
    }

    pub fn text(&mut self, field: &str, v: &str, min: usize, max: usize) {
        let n = v.chars().count();
        if n < min || n > max {
            self.error(format!("{field} has {n} characters, {min}..={max} allowed"));
        }
    }

    pub fn range(&mut self, field: &str, v: i32, min: i32, max: i32) {
        if v < min || v > max {
            self.error(format!("{field} = {v} is outside {min}..={max}"));
        }
    }
}

/// The terms of an offer, as an offer or its update states them.
pub(crate) struct Terms<'a, N: Iterator<Item = &'a String>> {
    pub capacity_units: i32,
    pub available_from: i64,
    pub available_until: i64,
    pub response_time_minutes: i32,
    /// Eligible and excluded nations.
    pub nations: N,
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

    /// An indicator's confidence is 0..=100 and it cannot be last seen before it was first seen;
    /// every broken bound is named, and a sound record passes.
    #[test]
    fn an_indicators_confidence_and_times_are_checked() {
        use crate::event::{Event, Indicator, IndicatorKind, Tlp};
        use crate::sample;
        let origin = Origin::from_topic("rrc.in.EST.incidents").unwrap();
        let mut clock = sample::Clock::new(1_800_000_000_000, 1000);
        let with = |clock: &mut sample::Clock, i: Indicator| {
            sample::incident_with(
                clock.envelope("EST"),
                "I-1",
                Tlp::Green,
                crate::event::Priority::High,
                |r| {
                    r.indicators = vec![i];
                },
            )
        };
        let check = |e: &Event| validate(e, &origin, 1_800_000_000_000, &Limits::default());
        let mut sound = Indicator::new(IndicatorKind::Domain, "c2.example.net".into());
        sound.confidence = Some(100);
        sound.first_seen = Some(1_799_000_000_000);
        sound.last_seen = Some(1_799_000_000_000);
        assert_eq!(check(&with(&mut clock, sound.clone())), Ok(()));
        let mut broken = sound;
        broken.confidence = Some(101);
        broken.last_seen = Some(1_798_000_000_000);
        let err = check(&with(&mut clock, broken)).unwrap_err();
        assert_eq!(err.reason, RejectReason::InvalidField);
        assert!(
            err.detail.contains("indicators[0].confidence = 101"),
            "{}",
            err.detail
        );
        assert!(
            err.detail
                .contains("indicators[0]: last_seen must not be before first_seen"),
            "{}",
            err.detail
        );
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
