//! What a nation's SIEM loads to hunt with: a linking indicator of a campaign as a STIX 2.1
//! pattern, under an id every importer computes the same way (docs/architecture.md, "Hunt
//! packages").
//!
//! - [`pattern`]: the STIX 2.1 pattern of a normalized indicator ([`crate::indicator::key`]),
//!   `[ipv4-addr:value = '203.0.113.7']`, string literals escaped as the grammar requires, and
//!   its inverse [`pattern_value`], which reads the kind and value back (a SIEM's, the
//!   simulator's);
//! - [`indicator_id`]: `indicator--<UUIDv5>` over the canonical JSON of the pattern, the recipe
//!   OpenCTI uses for an indicator's standard id, so that importing a package twice updates the
//!   indicator instead of duplicating it;
//! - [`warninglist`]: values that must never be pushed to a hunt (public resolvers, private
//!   ranges, the empty file's hashes, top domains), in MISP's warninglist format;
//! - [`decay`]: how long an indicator is valid without a refresh, its score as it ages, and
//!   when false-positive reports retire it.
//!
//! Plain functions of their inputs: the same campaign gives the same patterns and ids on every
//! replay.

pub mod decay;
pub mod warninglist;

use serde::{Deserialize, Serialize};

use crate::event::{HuntRelease, IndicatorKind, Pap, Sector, Tlp};

/// How a campaign's hunt packages are made (docs/architecture.md, "Hunt packages").
#[derive(Clone, Debug)]
pub struct HuntConfig {
    /// At most this many indicators per campaign are published; the rest are truncated.
    pub max_indicators: usize,
    /// Values never pushed (blocking lists) or pushed with a note to the cell (informing).
    pub lists: std::sync::Arc<warninglist::Warninglists>,
    /// How long, in stream time, a retired indicator's record stays on the compacted hunt
    /// topics before a tombstone removes it.
    pub tombstone_after_ms: i64,
    /// At most this many indicators are newly published per hour of stream time (each goes
    /// to every member's hunt topic, so this bounds what each nation's SIEM must take in);
    /// the rest are deferred to the next hour.
    pub max_new_per_hour: u32,
}

/// The publish rate's window: an hour of stream time.
pub const RATE_WINDOW_MS: i64 = 60 * 60 * 1000;

/// Two configurations decide alike when their bounds and their lists (by name, version and
/// action) are the same.
impl PartialEq for HuntConfig {
    fn eq(&self, other: &Self) -> bool {
        let lists = |c: &Self| -> Vec<(String, String, warninglist::Action)> {
            c.lists
                .lists()
                .iter()
                .map(|l| (l.name.clone(), l.version.clone(), l.action))
                .collect()
        };
        self.max_indicators == other.max_indicators
            && self.tombstone_after_ms == other.tombstone_after_ms
            && self.max_new_per_hour == other.max_new_per_hour
            && (std::sync::Arc::ptr_eq(&self.lists, &other.lists) || lists(self) == lists(other))
    }
}

impl Eq for HuntConfig {}

impl Default for HuntConfig {
    fn default() -> Self {
        Self {
            max_indicators: 500,
            lists: warninglist::builtin(),
            tombstone_after_ms: 7 * 24 * 60 * 60 * 1000,
            max_new_per_hour: 2_000,
        }
    }
}

/// What a recipient's SIEM may do with an indicator under `pap`, in order of intrusiveness:
/// PAP:RED only passive searches of its own logs, PAP:AMBER also alerts, PAP:GREEN and
/// PAP:CLEAR also blocking.
pub fn actions(pap: Pap) -> &'static [HuntAction] {
    match pap {
        Pap::Clear | Pap::Green => &[HuntAction::SearchLogs, HuntAction::Alert, HuntAction::Block],
        Pap::Amber => &[HuntAction::SearchLogs, HuntAction::Alert],
        Pap::Red => &[HuntAction::SearchLogs],
    }
}

/// The most restrictive of `paps`: an action one source rules out on a value would affect its
/// own operation whoever else reported the value. `None` for none.
pub fn most_restrictive(paps: impl IntoIterator<Item = Pap>) -> Option<Pap> {
    let rank = |p: &Pap| match p {
        Pap::Clear => 0,
        Pap::Green => 1,
        Pap::Amber => 2,
        Pap::Red => 3,
    };
    paps.into_iter().max_by_key(rank)
}

/// One thing a recipient may do with a hunt indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HuntAction {
    /// Search its own logs for past matches.
    SearchLogs,
    /// Raise an alert on a match.
    Alert,
    /// Block traffic to or from the value.
    Block,
}

impl HuntAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HuntAction::SearchLogs => "SEARCH_LOGS",
            HuntAction::Alert => "ALERT",
            HuntAction::Block => "BLOCK",
        }
    }
}

/// Why a hunt indicator was retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetireReason {
    /// Its `valid_until` passed without a refresh.
    Expired,
    /// Nations reported it as a false positive (see [`decay::false_positive_retires`]).
    FalsePositive,
    /// A blocking warninglist holds it.
    Warninglisted,
    /// Its campaign no longer spans two nations, was merged into another, or no longer holds
    /// the value.
    CampaignDissolved,
    /// No open incident that reported it releases it any more.
    ReleaseWithdrawn,
}

impl RetireReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RetireReason::Expired => "EXPIRED",
            RetireReason::FalsePositive => "FALSE_POSITIVE",
            RetireReason::Warninglisted => "WARNINGLISTED",
            RetireReason::CampaignDissolved => "CAMPAIGN_DISSOLVED",
            RetireReason::ReleaseWithdrawn => "RELEASE_WITHDRAWN",
        }
    }
}

/// One indicator of a campaign's hunt package, as every member's SIEM receives it. It names no
/// nation: only how many nations' releasing incidents reported the value, and their sectors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuntIndicator {
    /// The public id of the campaign it belongs to (`C-000001`).
    pub campaign_id: String,
    /// `indicator--<uuid>` ([`indicator_id`]).
    pub indicator_id: String,
    pub kind: IndicatorKind,
    /// The STIX 2.1 pattern ([`pattern`]); its pattern type is `stix`.
    pub pattern: String,
    /// Stream time of its first publication in this campaign.
    pub valid_from: i64,
    /// Stream time at which it retires as EXPIRED unless refreshed.
    pub valid_until: i64,
    /// 0–100, falling with age ([`decay::Model::score`]).
    pub score: u8,
    /// 0–100: how well the releasing reports corroborate it.
    pub confidence: u8,
    /// ATT&CK tactics of the releasing incidents' techniques, sorted.
    pub kill_chain_phases: Vec<String>,
    /// The TLP it is released under ([`released_under`]).
    pub tlp: Tlp,
    /// The most restrictive PAP of the releasing incidents ([`most_restrictive`]); what it
    /// allows is [`actions`].
    pub pap: Pap,
    /// How many nations' releasing incidents reported it.
    pub nation_count: u32,
    /// The sectors of those incidents, sorted.
    pub sectors: Vec<Sector>,
    /// Stream time of this record.
    pub stream_time: i64,
}

impl HuntIndicator {
    /// The record key on the compacted hunt topics: one per campaign and indicator.
    pub fn key(&self) -> String {
        format!("{}/{}", self.campaign_id, self.indicator_id)
    }
}

/// What the hunt topics receive: an indicator's publication, retirement and removal go to
/// every member's topic alike; a sighting summary to the campaign's nations only; a review to
/// the coordination cell's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HuntUpdate {
    /// New, or changed (a refresh, a new score step, a wider spread, another TLP).
    Published(HuntIndicator),
    /// No longer to be hunted; the full indicator again, for importers that need it.
    Retired {
        indicator: HuntIndicator,
        reason: RetireReason,
    },
    /// The grace period after a retirement has passed: the key's record is removed from the
    /// compacted topics (a tombstone: the key with no value).
    Removed { key: String },
    /// The sightings of a published indicator, for the nations of its campaign (`to`, sorted).
    Sightings {
        to: Vec<String>,
        summary: SightingSummary,
    },
    /// A sighting summary's record is removed from every member's topic (with its indicator's).
    SightingsRemoved { key: String },
    /// What became of a value, on the coordination cell's hunt topic.
    Reviewed(HuntReview),
    /// The campaign no longer holds the value: its review is removed from the cell's topic.
    ReviewRemoved { key: String },
}

impl HuntUpdate {
    pub fn key(&self) -> String {
        match self {
            HuntUpdate::Published(i) | HuntUpdate::Retired { indicator: i, .. } => i.key(),
            HuntUpdate::Removed { key }
            | HuntUpdate::SightingsRemoved { key }
            | HuntUpdate::ReviewRemoved { key } => key.clone(),
            HuntUpdate::Sightings { summary, .. } => summary.key(),
            HuntUpdate::Reviewed(r) => r.key(),
        }
    }

    /// The `rp.type` header; `None` for a tombstone, which has no value.
    pub fn type_name(&self) -> Option<&'static str> {
        match self {
            HuntUpdate::Published(_) => Some("HuntIndicatorPublished"),
            HuntUpdate::Retired { .. } => Some("HuntIndicatorRetired"),
            HuntUpdate::Sightings { .. } => Some("HuntSightingsSummarized"),
            HuntUpdate::Reviewed(_) => Some("HuntValueReviewed"),
            HuntUpdate::Removed { .. }
            | HuntUpdate::SightingsRemoved { .. }
            | HuntUpdate::ReviewRemoved { .. } => None,
        }
    }
}

/// What a value's sightings add up to, alliance-wide (`s/<value>` in the state): which nations
/// sighted it, and the sums of the sightings' counts by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SightingTally {
    /// Nations that sighted it (a SIGHTING or TRUE_POSITIVE), sorted.
    pub sighted_by: Vec<String>,
    /// Nations that reported it as a TRUE_POSITIVE, sorted.
    pub true_positive_by: Vec<String>,
    /// Nations that reported it as a FALSE_POSITIVE, sorted.
    pub false_positive_by: Vec<String>,
    /// Nations that may be named to other nations: one of their sightings of it was CLEAR or
    /// GREEN and not anonymous. Sorted.
    pub named: Vec<String>,
    /// Sums of the counts of SIGHTING and TRUE_POSITIVE reports, of TRUE_POSITIVE reports
    /// alone, and of FALSE_POSITIVE reports.
    pub sightings: u64,
    pub true_positives: u64,
    pub false_positives: u64,
}

impl SightingTally {
    /// Whether `self` (after a sighting) differs from `before` enough to be told again: a
    /// nation joined one of its lists, or one of its sums reached a higher power of two. So a
    /// value is told about at most a few times per nation and about 30 times per sum, however
    /// many sightings come.
    pub fn changed_notably(&self, before: &SightingTally) -> bool {
        fn order(n: u64) -> u32 {
            64 - n.leading_zeros()
        }
        self.sighted_by != before.sighted_by
            || self.true_positive_by != before.true_positive_by
            || self.false_positive_by != before.false_positive_by
            || self.named != before.named
            || order(self.sightings) != order(before.sightings)
            || order(self.true_positives) != order(before.true_positives)
            || order(self.false_positives) != order(before.false_positives)
    }
}

/// What a campaign's nations hear about the sightings of one of its published indicators: sums
/// and numbers of nations, and the names only of nations whose sighting was CLEAR or GREEN and
/// not anonymous.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SightingSummary {
    pub campaign_id: String,
    pub indicator_id: String,
    pub pattern: String,
    pub sightings: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    /// How many nations sighted it (SIGHTING or TRUE_POSITIVE).
    pub nations_sighting: u32,
    /// How many nations reported it as a false positive.
    pub nations_false_positive: u32,
    /// The nations that may be named, sorted.
    pub named_nations: Vec<String>,
    pub stream_time: i64,
}

impl SightingSummary {
    pub fn new(indicator: &HuntIndicator, tally: &SightingTally, stream_time: i64) -> Self {
        SightingSummary {
            campaign_id: indicator.campaign_id.clone(),
            indicator_id: indicator.indicator_id.clone(),
            pattern: indicator.pattern.clone(),
            sightings: tally.sightings,
            true_positives: tally.true_positives,
            false_positives: tally.false_positives,
            nations_sighting: tally.sighted_by.len() as u32,
            nations_false_positive: tally.false_positive_by.len() as u32,
            named_nations: tally.named.clone(),
            stream_time,
        }
    }

    /// Its key on the hunt topics: the indicator's, with `/sightings`.
    pub fn key(&self) -> String {
        summary_key(&self.campaign_id, &self.indicator_id)
    }
}

/// The hunt-topic key of the sighting summary of indicator `indicator_id` of `campaign_id`.
pub fn summary_key(campaign_id: &str, indicator_id: &str) -> String {
    format!("{campaign_id}/{indicator_id}/sightings")
}

/// What became of one value of a campaign's package, for the coordination cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    /// On every member's hunt topic under `tlp`; `inform` names an informing warninglist that
    /// holds it.
    Published {
        indicator_id: String,
        tlp: Tlp,
        inform: Option<String>,
    },
    /// Published before, retired since.
    Retired {
        indicator_id: String,
        reason: RetireReason,
    },
    /// No open incident that reported it releases it; `overridden` counts ALLIANCE flags that
    /// AMBER_STRICT or RED could not honour.
    Withheld { overridden: u32 },
    /// A blocking warninglist holds it.
    Blocked { list: String },
    /// Releasable, but past the package's cap.
    Truncated,
    /// Releasable, but the hour's publish rate (`max_new_per_hour`) is spent: worked out again
    /// at `until`, the next hour's start in stream time.
    Deferred { until: i64 },
    /// Not a hunted kind (a CVE), or not a valid value of its kind.
    NotHunted,
}

impl Disposition {
    pub fn as_str(&self) -> &'static str {
        match self {
            Disposition::Published { .. } => "PUBLISHED",
            Disposition::Retired { .. } => "RETIRED",
            Disposition::Withheld { .. } => "WITHHELD",
            Disposition::Blocked { .. } => "BLOCKED",
            Disposition::Truncated => "TRUNCATED",
            Disposition::Deferred { .. } => "DEFERRED",
            Disposition::NotHunted => "NOT_HUNTED",
        }
    }
}

/// The coordination cell's view of one value of a campaign's hunt package: what became of it
/// and why, and its sightings by name. Kept per campaign and value on the coalition hunt topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuntReview {
    pub campaign_id: String,
    /// The value's correlation key, `<kind>:<normalized value>`.
    pub value: String,
    pub disposition: Disposition,
    pub tally: SightingTally,
    pub stream_time: i64,
}

impl HuntReview {
    /// Its key on the coalition hunt topic.
    pub fn key(&self) -> String {
        review_key(&self.campaign_id, &self.value)
    }
}

/// The coalition-hunt-topic key of the review of `value` in `campaign_id`.
pub fn review_key(campaign_id: &str, value: &str) -> String {
    format!("{campaign_id}/{value}")
}

/// What an open incident allows of its indicators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// They may go to every member's hunt, marked with this TLP (the incident's).
    Shared(Tlp),
    /// They stay with the coordination cell.
    Withheld,
    /// ALLIANCE on an AMBER_STRICT or RED incident: withheld all the same, and counted, since
    /// a source's flag cannot lift those markings.
    Overridden,
}

/// The release an open incident of `tlp` gives its indicators: DEFAULT shares CLEAR and GREEN,
/// ALLIANCE also AMBER (TLP 2.0 lets the source widen sharing), NONE nothing; AMBER_STRICT and
/// RED are never shared.
pub fn release(tlp: Tlp, consent: HuntRelease) -> Release {
    match (tlp, consent) {
        (_, HuntRelease::None) => Release::Withheld,
        (Tlp::Clear | Tlp::Green, _) => Release::Shared(tlp),
        (Tlp::Amber, HuntRelease::Alliance) => Release::Shared(tlp),
        (Tlp::Amber, HuntRelease::Default) => Release::Withheld,
        (Tlp::AmberStrict | Tlp::Red, HuntRelease::Alliance) => Release::Overridden,
        (Tlp::AmberStrict | Tlp::Red, HuntRelease::Default) => Release::Withheld,
    }
}

/// The TLP a value is released under, given what each open incident that reported it allows:
/// the least restrictive of those that share it (a source that shared it under GREEN lets it
/// go as GREEN, whatever others said); `None` when none does.
pub fn released_under(bases: impl IntoIterator<Item = Release>) -> Option<Tlp> {
    bases
        .into_iter()
        .filter_map(|r| match r {
            Release::Shared(tlp) => Some(tlp),
            _ => None,
        })
        .min()
}

/// What becomes of one linking value of a campaign in its hunt package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Published to every member's hunt topic under `tlp`; `inform` names an informing
    /// warninglist that holds it, for the coordination cell.
    Publish {
        pattern: String,
        id: String,
        tlp: Tlp,
        inform: Option<String>,
    },
    /// No open incident that reported it releases it; `overridden` counts ALLIANCE flags that
    /// AMBER_STRICT or RED could not honour.
    Withheld { overridden: u32 },
    /// A blocking warninglist holds it.
    Blocked { list: String },
    /// Past the package's cap: listed to the coordination cell as truncated.
    Truncated,
    /// Not a hunted kind (a CVE), or not a valid value of its kind.
    NotHunted,
}

/// One value of a campaign and what becomes of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its correlation key, `<kind>:<normalized value>`.
    pub key: String,
    pub outcome: Outcome,
}

/// A campaign's hunt package: for each linking value, in the order given (the caller's
/// priority), with what each open incident that reported it allows, what is published. At most
/// `cap` values are published; the releasable ones after them are truncated. The checks run in
/// this order: hunted kind, release, blocking warninglist, cap.
pub fn package<'k>(
    values: impl IntoIterator<Item = (&'k str, Vec<Release>)>,
    lists: &warninglist::Warninglists,
    cap: usize,
) -> Vec<Candidate> {
    let mut published = 0;
    values
        .into_iter()
        .map(|(key, bases)| {
            let outcome = candidate(key, &bases, lists, cap, &mut published);
            Candidate {
                key: key.to_owned(),
                outcome,
            }
        })
        .collect()
}

fn candidate(
    key: &str,
    bases: &[Release],
    lists: &warninglist::Warninglists,
    cap: usize,
    published: &mut usize,
) -> Outcome {
    let Some((kind, value)) = split_key(key) else {
        return Outcome::NotHunted;
    };
    let Some(pattern) = pattern(kind, value) else {
        return Outcome::NotHunted;
    };
    let Some(tlp) = released_under(bases.iter().copied()) else {
        let overridden = bases.iter().filter(|r| **r == Release::Overridden).count();
        return Outcome::Withheld {
            overridden: overridden as u32,
        };
    };
    let hit = lists.check(kind, value);
    if let Some(hit) = hit
        .as_ref()
        .filter(|h| h.action == warninglist::Action::Block)
    {
        return Outcome::Blocked {
            list: hit.list.clone(),
        };
    }
    if *published >= cap {
        return Outcome::Truncated;
    }
    *published += 1;
    Outcome::Publish {
        id: indicator_id(&pattern),
        pattern,
        tlp,
        inform: hit.map(|h| h.list),
    }
}

/// The STIX 2.1 namespace of deterministic ids (STIX 2.1, 2.9) that OpenCTI also uses for its
/// indicators' standard ids.
const STIX_NAMESPACE: [u8; 16] = [
    0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c, 0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7,
];

/// The kind and normalized value of a correlation key (`<kind>:<value>`), as
/// [`crate::indicator::key`] builds it.
pub fn split_key(key: &str) -> Option<(IndicatorKind, &str)> {
    let (kind, value) = key.split_once(':')?;
    let kind = IndicatorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)?;
    Some((kind, value))
}

/// The STIX 2.1 pattern that matches a normalized indicator, or `None` for a kind that is not
/// hunted (a CVE names a vulnerability, not an observable).
pub fn pattern(kind: IndicatorKind, value: &str) -> Option<String> {
    let path = object_path(kind)?;
    let mut out = String::with_capacity(path.len() + value.len() + 8);
    out.push('[');
    out.push_str(path);
    out.push_str(" = '");
    for c in value.chars() {
        // In a STIX pattern's string literal only the quote and the backslash are escaped.
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("']");
    Some(out)
}

/// The STIX 2.1 object path a hunted kind's pattern compares; `None` for a CVE.
fn object_path(kind: IndicatorKind) -> Option<&'static str> {
    Some(match kind {
        IndicatorKind::Ipv4 => "ipv4-addr:value",
        IndicatorKind::Ipv6 => "ipv6-addr:value",
        IndicatorKind::Domain => "domain-name:value",
        IndicatorKind::Url => "url:value",
        IndicatorKind::Email => "email-addr:value",
        IndicatorKind::Sha256 => "file:hashes.'SHA-256'",
        IndicatorKind::Sha1 => "file:hashes.'SHA-1'",
        IndicatorKind::Md5 => "file:hashes.MD5",
        IndicatorKind::Cve => return None,
    })
}

/// The inverse of [`pattern`]: the kind and value of a pattern `[<object path> = '<value>']`
/// as [`pattern`] writes it, the literal's `\'` and `\\` unescaped. `None` for anything else:
/// another object path, another operator, a pattern of more than one comparison, an unescaped
/// quote or another escape in the literal.
pub fn pattern_value(pattern: &str) -> Option<(IndicatorKind, String)> {
    let inner = pattern.strip_prefix('[')?.strip_suffix("']")?;
    let (path, literal) = inner.split_once(" = '")?;
    let kind = IndicatorKind::ALL
        .into_iter()
        .find(|k| object_path(*k) == Some(path))?;
    let mut value = String::with_capacity(literal.len());
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('\'' | '\\') => value.push(e),
                _ => return None,
            },
            '\'' => return None,
            c => value.push(c),
        }
    }
    Some((kind, value))
}

/// `indicator--<uuid>`: UUIDv5 in the STIX namespace over `{"pattern":"<pattern>"}` (the
/// pattern trimmed, the object in RFC 8785 canonical JSON), as OpenCTI computes an indicator's
/// standard id. The interop test compares it with `pycti`'s own.
pub fn indicator_id(pattern: &str) -> String {
    let mut name = String::with_capacity(pattern.len() + 16);
    name.push_str("{\"pattern\":");
    json_string(pattern.trim(), &mut name);
    name.push('}');
    format!("indicator--{}", uuid_v5(&STIX_NAMESPACE, name.as_bytes()))
}

/// A JSON string literal as RFC 8785 writes it (as ECMAScript's `JSON.stringify`): `"` and `\`
/// escaped, control characters as `\b \t \n \f \r` or `\u00xx`, everything else as is;
/// `serde_json` writes strings exactly so.
fn json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// RFC 9562 UUID version 5 (SHA-1, name-based), hyphenated lower case.
fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    hyphenated(uuid::Uuid::new_v5(
        &uuid::Uuid::from_bytes(*namespace),
        name,
    ))
}

/// A UUID as 8-4-4-4-12 lowercase hex digits, written without `format!`'s machinery.
pub(crate) fn hyphenated(id: uuid::Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hunted_kind_has_its_stix_object_path() {
        use IndicatorKind::*;
        let cases = [
            (Ipv4, "203.0.113.7", "[ipv4-addr:value = '203.0.113.7']"),
            (Ipv6, "2001:db8::1", "[ipv6-addr:value = '2001:db8::1']"),
            (
                Domain,
                "c2.example.net",
                "[domain-name:value = 'c2.example.net']",
            ),
            (
                Url,
                "http://x.example/a",
                "[url:value = 'http://x.example/a']",
            ),
            (
                Email,
                "ops@example.com",
                "[email-addr:value = 'ops@example.com']",
            ),
            (
                Md5,
                "d41d8cd98f00b204e9800998ecf8427e",
                "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
            ),
            (Sha1, "ab", "[file:hashes.'SHA-1' = 'ab']"),
            (Sha256, "cd", "[file:hashes.'SHA-256' = 'cd']"),
        ];
        for (kind, value, want) in cases {
            assert_eq!(pattern(kind, value).as_deref(), Some(want));
        }
        assert_eq!(pattern(Cve, "CVE-2024-3400"), None);
    }

    #[test]
    fn quotes_and_backslashes_in_a_value_are_escaped() {
        assert_eq!(
            pattern(IndicatorKind::Url, r"http://x.example/a'b\c").as_deref(),
            Some(r"[url:value = 'http://x.example/a\'b\\c']")
        );
    }

    #[test]
    fn every_hunted_kind_round_trips_through_its_pattern() {
        let values = [
            "203.0.113.7",
            "2001:db8::1",
            "c2.example.net",
            "http://x.example/a'b\\c?q=''",
            "ops@example.com",
            "d41d8cd98f00b204e9800998ecf8427e",
            r"\'\\'",
            "",
        ];
        let mut hunted = 0;
        for kind in IndicatorKind::ALL {
            for value in values {
                let Some(p) = pattern(kind, value) else {
                    assert_eq!(kind, IndicatorKind::Cve);
                    continue;
                };
                hunted += 1;
                assert_eq!(
                    pattern_value(&p),
                    Some((kind, value.to_owned())),
                    "{kind:?} {p}"
                );
            }
        }
        assert_eq!(hunted, (IndicatorKind::ALL.len() - 1) * values.len());
    }

    #[test]
    fn what_pattern_does_not_write_has_no_value() {
        for p in [
            "",
            "[domain-name:value = 'a'",
            "domain-name:value = 'a']",
            "[domain-name:value != 'a']",
            "[vulnerability:name = 'CVE-2024-3400']",
            "[domain-name:value = 'a' OR domain-name:value = 'b']",
            "[domain-name:value = 'a'b']",
            r"[domain-name:value = 'a\nb']",
            r"[domain-name:value = 'a\']",
            "[file:hashes.'SHA-512' = 'ab']",
        ] {
            assert_eq!(pattern_value(p), None, "{p}");
        }
    }

    /// RFC 9562's own example of a version 5 UUID: the DNS namespace and "www.example.com".
    #[test]
    fn uuid_v5_is_the_rfc_example() {
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        assert_eq!(
            uuid_v5(&dns, b"www.example.com"),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
    }

    #[test]
    fn the_canonical_json_escapes_what_rfc_8785_escapes() {
        let mut out = String::new();
        json_string("a\"b\\c\u{1}\u{1f}\n\té/\u{7f}", &mut out);
        assert_eq!(out, "\"a\\\"b\\\\c\\u0001\\u001f\\n\\té/\u{7f}\"");
    }

    #[test]
    fn only_clear_green_and_consented_amber_are_released() {
        use HuntRelease::*;
        let cases = [
            (Tlp::Clear, Default, Release::Shared(Tlp::Clear)),
            (Tlp::Green, Default, Release::Shared(Tlp::Green)),
            (Tlp::Green, Alliance, Release::Shared(Tlp::Green)),
            (Tlp::Green, None, Release::Withheld),
            (Tlp::Amber, Default, Release::Withheld),
            (Tlp::Amber, Alliance, Release::Shared(Tlp::Amber)),
            (Tlp::Amber, None, Release::Withheld),
            (Tlp::AmberStrict, Default, Release::Withheld),
            (Tlp::AmberStrict, Alliance, Release::Overridden),
            (Tlp::Red, Alliance, Release::Overridden),
            (Tlp::Red, None, Release::Withheld),
        ];
        for (tlp, consent, want) in cases {
            assert_eq!(release(tlp, consent), want, "{tlp:?} {consent:?}");
        }
    }

    #[test]
    fn a_value_goes_under_the_least_restrictive_basis_that_shares_it() {
        let amber = release(Tlp::Amber, HuntRelease::Alliance);
        let green = release(Tlp::Green, HuntRelease::Default);
        let red = release(Tlp::Red, HuntRelease::Alliance);
        assert_eq!(released_under([amber, green, red]), Some(Tlp::Green));
        assert_eq!(released_under([amber, red]), Some(Tlp::Amber));
        assert_eq!(released_under([red, Release::Withheld]), None);
        assert_eq!(released_under([]), None);
    }

    fn lists() -> warninglist::Warninglists {
        use warninglist::{Action, Warninglist};
        let list = |name: &str, kind: &str, entries: &[&str], action| {
            let text = format!(
                r#"{{"name":"{name}","version":1,"description":"","type":"{kind}","list":{entries:?},"matching_attributes":["ip-dst","domain"]}}"#
            );
            Warninglist::from_misp_json(&text, action).unwrap()
        };
        warninglist::Warninglists::new(vec![
            list("private", "cidr", &["10.0.0.0/8"], Action::Block),
            list("shorteners", "hostname", &["bit.ly"], Action::Inform),
        ])
    }

    /// Each outcome once, in the given order: the cap counts published values only.
    #[test]
    fn a_package_publishes_released_unlisted_values_up_to_its_cap() {
        let green = release(Tlp::Green, HuntRelease::Default);
        let amber = release(Tlp::Amber, HuntRelease::Default);
        let red = release(Tlp::Red, HuntRelease::Alliance);
        let values = [
            ("cve:CVE-2024-3400", vec![green]),
            ("domain:c2.example.net", vec![amber, green]),
            ("ipv4:10.1.2.3", vec![green]),
            ("domain:x.bit.ly", vec![green]),
            ("domain:secret.example.net", vec![amber, red, red]),
            ("domain:late.example.net", vec![green]),
        ];
        let got = package(values.iter().map(|(k, b)| (*k, b.clone())), &lists(), 2);
        let outcomes: Vec<&Outcome> = got.iter().map(|c| &c.outcome).collect();
        let pattern = "[domain-name:value = 'c2.example.net']".to_owned();
        assert_eq!(
            outcomes,
            [
                &Outcome::NotHunted,
                &Outcome::Publish {
                    id: indicator_id(&pattern),
                    pattern,
                    tlp: Tlp::Green,
                    inform: None,
                },
                &Outcome::Blocked {
                    list: "private".into()
                },
                &Outcome::Publish {
                    pattern: "[domain-name:value = 'x.bit.ly']".into(),
                    id: indicator_id("[domain-name:value = 'x.bit.ly']"),
                    tlp: Tlp::Green,
                    inform: Some("shorteners".into()),
                },
                &Outcome::Withheld { overridden: 2 },
                &Outcome::Truncated,
            ]
        );
        assert_eq!(got[5].key, "domain:late.example.net");
    }

    #[test]
    fn a_key_splits_into_kind_and_value() {
        assert_eq!(
            split_key("domain:c2.example.net"),
            Some((IndicatorKind::Domain, "c2.example.net"))
        );
        assert_eq!(
            split_key("ipv6:2001:db8::1"),
            Some((IndicatorKind::Ipv6, "2001:db8::1"))
        );
        assert_eq!(split_key("nope:x"), None);
    }
}
