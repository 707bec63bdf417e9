//! Normalized indicators: the same thing written two ways must correlate as one value.
//!
//! - IPv4 and IPv6: parsed and written back canonically (`2001:DB8::0:1` → `2001:db8::1`);
//! - domains and e-mail addresses: lower case, no trailing dot;
//! - URLs: scheme and host in lower case, default port and fragment dropped, path kept as is;
//! - hashes: lower-case hex of the right length;
//! - CVE ids: upper case, `CVE-YYYY-N…`.
//!
//! A value that is not what its kind says gives `None`: it cannot link incidents.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::event::{Indicator, IndicatorKind};

/// Whether an indicator of this kind may link incidents into a campaign. A CVE names a
/// vulnerability, not the attacker: unrelated actors exploit the same one, so it links nothing.
pub fn links(kind: IndicatorKind) -> bool {
    kind != IndicatorKind::Cve
}

/// The correlation key of an indicator, `<kind>:<normalized value>`, or `None` if malformed.
pub fn key(i: &Indicator) -> Option<String> {
    let v = i.value.trim();
    let norm = match i.kind {
        IndicatorKind::Ipv4 => v.parse::<Ipv4Addr>().ok()?.to_string(),
        IndicatorKind::Ipv6 => v.parse::<Ipv6Addr>().ok()?.to_string(),
        IndicatorKind::Domain => domain(v)?,
        IndicatorKind::Email => {
            let (user, host) = v.rsplit_once('@')?;
            format!("{}@{}", user.to_ascii_lowercase(), domain(host)?)
        }
        IndicatorKind::Url => url(v)?,
        IndicatorKind::Sha256 => hex(v, 64)?,
        IndicatorKind::Sha1 => hex(v, 40)?,
        IndicatorKind::Md5 => hex(v, 32)?,
        IndicatorKind::Cve => cve(v)?,
    };
    Some(format!("{}:{norm}", kind_name(i.kind)))
}

fn kind_name(k: IndicatorKind) -> &'static str {
    match k {
        IndicatorKind::Ipv4 => "ipv4",
        IndicatorKind::Ipv6 => "ipv6",
        IndicatorKind::Domain => "domain",
        IndicatorKind::Url => "url",
        IndicatorKind::Sha256 => "sha256",
        IndicatorKind::Sha1 => "sha1",
        IndicatorKind::Md5 => "md5",
        IndicatorKind::Email => "email",
        IndicatorKind::Cve => "cve",
    }
}

fn domain(v: &str) -> Option<String> {
    let d = v.strip_suffix('.').unwrap_or(v).to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

fn url(v: &str) -> Option<String> {
    let (scheme, rest) = v.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (host_port, None),
    };
    let host = domain(host.trim_start_matches('[').trim_end_matches(']'))
        .or_else(|| host.parse::<Ipv6Addr>().ok().map(|a| a.to_string()))?;
    let default = match scheme.as_str() {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    };
    let port = port.filter(|p| Some(*p) != default && !p.is_empty());
    let path = if path.is_empty() { "/" } else { path };
    Some(match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    })
}

fn hex(v: &str, len: usize) -> Option<String> {
    (v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

fn cve(v: &str) -> Option<String> {
    let up = v.to_ascii_uppercase();
    let rest = up.strip_prefix("CVE-")?;
    let (year, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (year.len() == 4 && digits(year) && n.len() >= 4 && digits(n)).then_some(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(kind: IndicatorKind, v: &str) -> Option<String> {
        key(&Indicator::new(kind, v.into()))
    }

    #[test]
    fn the_same_value_written_two_ways_gives_one_key() {
        use IndicatorKind::*;
        let same = [
            (Ipv4, " 203.0.113.7", "203.0.113.7"),
            (Ipv6, "2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
            (Domain, "Update.Example.NET.", "update.example.net"),
            (Email, "Ops@Example.COM", "ops@example.com"),
            (
                Url,
                "HTTPS://Evil.Example:443/x?y=1#frag",
                "https://evil.example/x?y=1",
            ),
            (Url, "http://evil.example", "http://evil.example/"),
            (
                Url,
                "http://evil.example:8080/a",
                "http://evil.example:8080/a",
            ),
            (Sha256, &"AB".repeat(32), &"ab".repeat(32)),
            (Md5, &"0F".repeat(16), &"0f".repeat(16)),
            (Cve, "cve-2024-3400", "CVE-2024-3400"),
        ];
        for (kind, a, b) in same {
            assert_eq!(k(kind, a), k(kind, b), "{kind:?} {a} vs {b}");
            assert!(k(kind, a).is_some(), "{kind:?} {a}");
        }
        assert_ne!(k(Domain, "example.net"), k(Domain, "example.org"));
    }

    #[test]
    fn a_value_that_is_not_its_kind_links_nothing() {
        use IndicatorKind::*;
        for (kind, v) in [
            (Ipv4, "203.0.113.300"),
            (Ipv6, "not-an-address"),
            (Domain, "bad domain.com"),
            (Url, "no-scheme.example/path"),
            (Sha256, "abc"),
            (Sha1, &"g".repeat(40)),
            (Cve, "CVE-24-1"),
            (Email, "nobody"),
        ] {
            assert_eq!(k(kind, v), None, "{kind:?} {v}");
        }
    }
}
