//! Warninglists: values that must never be pushed to a nation's hunt (`block`: public
//! resolvers, private and special-use ranges, the empty file's hashes, top domains), or that
//! are pushed with a warning to the coordination cell (`inform`), in MISP's warninglist format
//! (`list.json`: `name`, `version`, `description`, `type`, `list`, `matching_attributes`).
//!
//! Matching follows MISP's (PyMISPWarningLists with its precise search, which the interop
//! test compares against):
//! - `string`: the value equals an entry;
//! - `substring`: an entry occurs in the value;
//! - `hostname`: the value (a URL's host for a URL) equals an entry, or ends with `.` and the
//!   entry without its leading dots;
//! - `cidr`: an IP value lies in a network of the list (a single address is a /32 or /128;
//!   entries that are not networks with clean host bits are skipped, as MISP skips them); a
//!   value that is not an IP matches an entry equal to it.
//!
//! `regex` lists are refused: a hunt suppression must be exact and cheap to check.
//! A list applies to the indicator kinds its `matching_attributes` name (all kinds when it
//! names none). Lookups only, never an iteration over a hash set: the result depends on the
//! lists and the value alone.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use crate::event::IndicatorKind;

/// What a list does to a value it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Never published to a nation; counted and shown to the coordination cell.
    Block,
    /// Published; the coordination cell sees which list it is on.
    Inform,
}

/// A list as MISP publishes it.
#[derive(Deserialize)]
struct MispList {
    name: String,
    version: serde_json::Value,
    description: String,
    #[serde(rename = "type")]
    kind: String,
    list: Vec<String>,
    #[serde(default)]
    matching_attributes: Vec<String>,
}

enum Matcher {
    Exact(HashSet<String>),
    Substring(Vec<String>),
    /// The entries without their leading dots, and as written.
    Hostname(HashSet<String>, HashSet<String>),
    Cidr {
        /// Networks by prefix length: the masked address of each.
        v4: BTreeMap<u8, HashSet<u32>>,
        v6: BTreeMap<u8, HashSet<u128>>,
        /// Entries that are not networks, matched as strings (MISP does the same).
        other: HashSet<String>,
    },
}

/// One loaded list.
pub struct Warninglist {
    pub name: String,
    pub version: String,
    pub description: String,
    pub action: Action,
    /// Entries of a `cidr` list that are not a valid network, skipped.
    pub skipped: usize,
    kinds: Vec<IndicatorKind>,
    matcher: Matcher,
}

impl std::fmt::Debug for Warninglist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warninglist")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// The indicator kinds a MISP attribute type stands for.
fn kinds_of(attribute: &str) -> &'static [IndicatorKind] {
    use IndicatorKind::*;
    let base = attribute.rsplit('|').next().unwrap_or(attribute);
    match (attribute, base) {
        (_, "ip-src" | "ip-dst" | "ip") => &[Ipv4, Ipv6],
        ("domain|ip" | "ip-src|port" | "ip-dst|port", _) => &[Ipv4, Ipv6, Domain],
        (_, "domain" | "hostname") => &[Domain],
        (_, "url" | "uri" | "link") => &[Url],
        (_, "md5") => &[Md5],
        (_, "sha1") => &[Sha1],
        (_, "sha256") => &[Sha256],
        (_, "email" | "email-src" | "email-dst") => &[Email],
        _ => &[],
    }
}

impl Warninglist {
    /// A list from the text of a MISP `list.json`, with the action the deployment gives it.
    pub fn from_misp_json(text: &str, action: Action) -> Result<Self, String> {
        let raw: MispList =
            serde_json::from_str(text).map_err(|e| format!("not a MISP warninglist: {e}"))?;
        let version = match &raw.version {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut kinds: Vec<IndicatorKind> = if raw.matching_attributes.is_empty() {
            IndicatorKind::ALL.to_vec()
        } else {
            raw.matching_attributes
                .iter()
                .flat_map(|a| kinds_of(a).iter().copied())
                .collect()
        };
        kinds.sort_by_key(|k| k.as_str());
        kinds.dedup();
        let mut skipped = 0;
        let matcher = match raw.kind.as_str() {
            "string" => Matcher::Exact(raw.list.into_iter().collect()),
            "substring" => Matcher::Substring(raw.list),
            "hostname" => Matcher::Hostname(
                raw.list
                    .iter()
                    .map(|e| e.trim_start_matches('.').to_owned())
                    .collect(),
                raw.list.into_iter().collect(),
            ),
            "cidr" => {
                let mut v4: BTreeMap<u8, HashSet<u32>> = BTreeMap::new();
                let mut v6: BTreeMap<u8, HashSet<u128>> = BTreeMap::new();
                let mut other = HashSet::new();
                for entry in raw.list {
                    match network(&entry) {
                        Some(Net::V4(addr, len)) => {
                            v4.entry(len).or_default().insert(addr);
                        }
                        Some(Net::V6(addr, len)) => {
                            v6.entry(len).or_default().insert(addr);
                        }
                        None if entry.contains('/') => skipped += 1,
                        None => {
                            other.insert(entry);
                        }
                    }
                }
                Matcher::Cidr { v4, v6, other }
            }
            "regex" => {
                return Err(format!(
                    "warninglist {}: type regex is not supported (use string, substring, \
                     hostname or cidr)",
                    raw.name
                ))
            }
            other => return Err(format!("warninglist {}: unknown type {other}", raw.name)),
        };
        Ok(Self {
            name: raw.name,
            version,
            description: raw.description,
            action,
            skipped,
            kinds,
            matcher,
        })
    }

    /// Whether the list is about values of this kind (its `matching_attributes`).
    pub fn applies_to(&self, kind: IndicatorKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// Whether the list holds this normalized value of this kind.
    pub fn contains(&self, kind: IndicatorKind, value: &str) -> bool {
        if !self.applies_to(kind) {
            return false;
        }
        match &self.matcher {
            Matcher::Exact(set) => set.contains(value),
            Matcher::Substring(parts) => parts.iter().any(|p| value.contains(p.as_str())),
            Matcher::Hostname(stripped, exact) => {
                let host = if kind == IndicatorKind::Url {
                    url_host(value)
                } else {
                    value
                };
                host_matches(exact, stripped, host)
            }
            Matcher::Cidr { v4, v6, other } => {
                if let Ok(ip) = value.parse::<Ipv4Addr>() {
                    let ip = u32::from(ip);
                    v4.iter()
                        .any(|(len, nets)| nets.contains(&mask32(ip, *len)))
                } else if let Ok(ip) = value.parse::<Ipv6Addr>() {
                    let ip = u128::from(ip);
                    v6.iter()
                        .any(|(len, nets)| nets.contains(&mask128(ip, *len)))
                } else {
                    other.contains(value)
                }
            }
        }
    }
}

/// `host` equals an entry, or is below one: `a.b.example` is below `example` and `.example`.
/// Walks the host's parent domains, so the cost follows the host, not the list.
fn host_matches(exact: &HashSet<String>, stripped: &HashSet<String>, host: &str) -> bool {
    exact.contains(host)
        || host
            .match_indices('.')
            .any(|(i, _)| stripped.contains(&host[i + 1..]))
}

/// The host of a normalized URL (`scheme://host[:port]/path`).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.parse::<Ipv6Addr>().is_ok() {
        return authority;
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

/// An address or a network with clean host bits, as Python's `ip_network` accepts it.
fn network(entry: &str) -> Option<Net> {
    let (addr, len) = match entry.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (entry, None),
    };
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        let len = len.unwrap_or(32);
        let ip = u32::from(ip);
        return (len <= 32 && mask32(ip, len) == ip).then_some(Net::V4(ip, len));
    }
    let ip = u128::from(addr.parse::<Ipv6Addr>().ok()?);
    let len = len.unwrap_or(128);
    (len <= 128 && mask128(ip, len) == ip).then_some(Net::V6(ip, len))
}

fn mask32(ip: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        ip & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask128(ip: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        ip & (u128::MAX << (128 - u32::from(len)))
    }
}

/// Where a value was found: the first blocking list, else the first informing one, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub list: String,
    pub action: Action,
}

/// The lists a deployment loads, in name order.
#[derive(Debug, Default)]
pub struct Warninglists {
    lists: Vec<Warninglist>,
}

impl Warninglists {
    pub fn new(mut lists: Vec<Warninglist>) -> Self {
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        Self { lists }
    }

    pub fn lists(&self) -> &[Warninglist] {
        &self.lists
    }

    /// The list that decides about a normalized value: blocking lists first.
    pub fn check(&self, kind: IndicatorKind, value: &str) -> Option<Hit> {
        [Action::Block, Action::Inform]
            .into_iter()
            .find_map(|action| {
                self.lists
                    .iter()
                    .filter(|l| l.action == action)
                    .find(|l| l.contains(kind, value))
                    .map(|l| Hit {
                        list: l.name.clone(),
                        action,
                    })
            })
    }
}

/// The default lists, `data/warninglists/{block,inform}/*.json` (their source and licence:
/// `data/warninglists/README.md`), built into the binary so that every instance and every
/// replay decides alike.
const BUILTIN: &[(&str, &str, Action)] = &[
    (
        "empty-hashes.json",
        include_str!("../../../../data/warninglists/block/empty-hashes.json"),
        Action::Block,
    ),
    (
        "ipv6-linklocal.json",
        include_str!("../../../../data/warninglists/block/ipv6-linklocal.json"),
        Action::Block,
    ),
    (
        "multicast.json",
        include_str!("../../../../data/warninglists/block/multicast.json"),
        Action::Block,
    ),
    (
        "public-dns-v4.json",
        include_str!("../../../../data/warninglists/block/public-dns-v4.json"),
        Action::Block,
    ),
    (
        "public-dns-v6.json",
        include_str!("../../../../data/warninglists/block/public-dns-v6.json"),
        Action::Block,
    ),
    (
        "rfc1918.json",
        include_str!("../../../../data/warninglists/block/rfc1918.json"),
        Action::Block,
    ),
    (
        "rfc3849.json",
        include_str!("../../../../data/warninglists/block/rfc3849.json"),
        Action::Block,
    ),
    (
        "rfc5735.json",
        include_str!("../../../../data/warninglists/block/rfc5735.json"),
        Action::Block,
    ),
    (
        "rfc6598.json",
        include_str!("../../../../data/warninglists/block/rfc6598.json"),
        Action::Block,
    ),
    (
        "tranco10k.json",
        include_str!("../../../../data/warninglists/block/tranco10k.json"),
        Action::Block,
    ),
    (
        "sinkholes.json",
        include_str!("../../../../data/warninglists/inform/sinkholes.json"),
        Action::Inform,
    ),
    (
        "url-shortener.json",
        include_str!("../../../../data/warninglists/inform/url-shortener.json"),
        Action::Inform,
    ),
];

/// The default lists, parsed once.
pub fn builtin() -> std::sync::Arc<Warninglists> {
    static LISTS: std::sync::OnceLock<std::sync::Arc<Warninglists>> = std::sync::OnceLock::new();
    LISTS
        .get_or_init(|| {
            std::sync::Arc::new(Warninglists::new(
                BUILTIN
                    .iter()
                    .map(|(file, text, action)| {
                        Warninglist::from_misp_json(text, *action)
                            .unwrap_or_else(|e| panic!("built-in warninglist {file}: {e}"))
                    })
                    .collect(),
            ))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use IndicatorKind::*;

    #[test]
    fn the_built_in_lists_parse_and_decide() {
        let lists = builtin();
        assert_eq!(lists.lists().len(), BUILTIN.len());
        let hit = |kind, value| lists.check(kind, value).map(|h| (h.list, h.action));
        assert!(matches!(hit(Ipv4, "10.1.2.3"), Some((_, Action::Block))));
        assert!(matches!(hit(Ipv4, "8.8.8.8"), Some((_, Action::Block))));
        assert!(matches!(
            hit(Domain, "x.2ly.link"),
            Some((_, Action::Inform))
        ));
        assert!(
            matches!(hit(Domain, "bit.ly"), Some((_, Action::Block))),
            "a top domain"
        );
        assert_eq!(hit(Domain, "c2.campaign-rallypoint.net"), None);
    }

    fn list(kind: &str, entries: &[&str], attrs: &[&str]) -> Warninglist {
        let text = serde_json::json!({
            "name": format!("test-{kind}"), "version": 1, "description": "test",
            "type": kind, "list": entries, "matching_attributes": attrs,
        })
        .to_string();
        Warninglist::from_misp_json(&text, Action::Block).unwrap()
    }

    #[test]
    fn a_cidr_list_holds_the_addresses_of_its_networks() {
        let l = list(
            "cidr",
            &[
                "10.0.0.0/8",
                "192.168.1.1",
                "2001:db8::/32",
                "10.1.2.3/8",
                "nope",
            ],
            &["ip-dst"],
        );
        assert_eq!(l.skipped, 1, "10.1.2.3/8 has host bits set");
        assert!(l.contains(Ipv4, "10.200.3.4"));
        assert!(l.contains(Ipv4, "192.168.1.1"));
        assert!(!l.contains(Ipv4, "192.168.1.2"));
        assert!(!l.contains(Ipv4, "11.0.0.1"));
        assert!(l.contains(Ipv6, "2001:db8:ffff::1"));
        assert!(!l.contains(Ipv6, "2001:db9::1"));
        assert!(!l.contains(Domain, "nope"), "ip-dst does not match domains");
    }

    #[test]
    fn a_hostname_list_holds_its_domains_and_their_subdomains() {
        let l = list(
            "hostname",
            &["example.com", ".bank.example"],
            &["domain", "url"],
        );
        assert!(l.contains(Domain, "example.com"));
        assert!(l.contains(Domain, "a.b.example.com"));
        assert!(!l.contains(Domain, "notexample.com"));
        assert!(
            !l.contains(Domain, "bank.example"),
            "a leading dot: below it only"
        );
        assert!(l.contains(Domain, "www.bank.example"));
        assert!(l.contains(Url, "https://cdn.example.com:8443/x"));
        assert!(!l.contains(Url, "https://example.org/example.com"));
    }

    #[test]
    fn string_and_substring_lists_match_as_misp_does() {
        let empty_md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let s = list("string", &[empty_md5], &["md5", "filename|md5"]);
        assert!(s.contains(Md5, empty_md5));
        assert!(!s.contains(Sha1, empty_md5));
        let sub = list("substring", &["sandbox"], &[]);
        assert!(sub.contains(Domain, "x.sandbox.example"));
        assert!(sub.contains(Url, "http://a.example/sandbox"));
    }

    #[test]
    fn blocking_lists_decide_before_informing_ones_and_regex_is_refused() {
        let mut inform = list("hostname", &["example.com"], &["domain"]);
        inform.action = Action::Inform;
        inform.name = "a-inform".into();
        let block = list("hostname", &["example.com"], &["domain"]);
        let lists = Warninglists::new(vec![inform, block]);
        assert_eq!(
            lists.check(Domain, "www.example.com"),
            Some(Hit {
                list: "test-hostname".into(),
                action: Action::Block
            })
        );
        assert_eq!(lists.check(Domain, "example.org"), None);
        let text = r#"{"name":"r","version":1,"description":"","type":"regex","list":[".*"]}"#;
        let err = Warninglist::from_misp_json(text, Action::Block).unwrap_err();
        assert!(err.contains("regex"), "{err}");
    }
}
