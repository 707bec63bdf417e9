//! How a hunt indicator ages (docs/architecture.md, "Hunt packages"), after MISP's polynomial
//! decay model: from its last refresh, the score falls as
//! `base × (1 − (t / lifetime)^(1 / speed))` and reaches 0 when the lifetime has passed, at
//! `valid_until`, where the indicator retires as EXPIRED. A SIGHTING or TRUE_POSITIVE
//! refreshes it. The score is published on a refresh and again each time it falls to a
//! multiple of 10, not continuously.
//!
//! Integer arithmetic only (parts per million, an integer root), so that every replay computes
//! the same scores at the same stream times on any machine.

use crate::event::IndicatorKind;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const PPM: u128 = 1_000_000;

/// How long an indicator of a kind stays worth hunting without a refresh, and how its score
/// falls meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    pub lifetime_ms: i64,
    /// MISP's decay speed δ, 1 to 4: 1 falls linearly; higher falls faster at first.
    pub speed: u32,
}

impl Model {
    /// Network infrastructure (addresses, domains, URLs, mailboxes) is rotated within months:
    /// about four months, falling fast at first. A file hash names the same file for good: a
    /// year, linearly.
    pub fn for_kind(kind: IndicatorKind) -> Self {
        match kind {
            IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => Self {
                lifetime_ms: 365 * DAY_MS,
                speed: 1,
            },
            _ => Self {
                lifetime_ms: 120 * DAY_MS,
                speed: 2,
            },
        }
    }

    /// When an indicator refreshed at `refreshed_at` retires as EXPIRED.
    pub fn valid_until(&self, refreshed_at: i64) -> i64 {
        refreshed_at.saturating_add(self.lifetime_ms)
    }

    /// The score (0..=`base`) `elapsed_ms` after the last refresh.
    pub fn score(&self, base: u8, elapsed_ms: i64) -> u8 {
        if elapsed_ms <= 0 || self.lifetime_ms <= 0 {
            return if self.lifetime_ms <= 0 { 0 } else { base };
        }
        if elapsed_ms >= self.lifetime_ms {
            return 0;
        }
        // t / lifetime in ppm, then its speed-th root, still in ppm.
        let x = elapsed_ms as u128 * PPM / self.lifetime_ms as u128;
        let speed = self.speed.clamp(1, 4);
        let root = nth_root(x * PPM.pow(speed - 1), speed);
        (u128::from(base) * (PPM - root.min(PPM)) / PPM) as u8
    }

    /// The first stream time after `refreshed_at` at which the score is at most the highest
    /// multiple of 10 below `published`: when it is published again. `None` once the next
    /// step would be 0, which `valid_until` covers.
    pub fn next_step(&self, base: u8, refreshed_at: i64, published: u8) -> Option<i64> {
        let target = published.saturating_sub(1) / 10 * 10;
        if target == 0 || self.lifetime_ms <= 0 {
            return None;
        }
        // The score falls as time passes: the first elapsed time at or below the target.
        let (mut lo, mut hi) = (0i64, self.lifetime_ms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.score(base, mid) <= target {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(refreshed_at.saturating_add(lo))
    }
}

/// The largest `r` with `r^n <= v`.
fn nth_root(v: u128, n: u32) -> u128 {
    if n == 1 || v < 2 {
        return v;
    }
    let (mut lo, mut hi) = (0u128, 1u128 << (128 / n).min(64));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        match mid.checked_pow(n) {
            Some(p) if p <= v => lo = mid,
            _ => hi = mid - 1,
        }
    }
    lo
}

/// Whether false-positive reports retire an indicator: at once when a nation whose incident
/// reported the value says so; otherwise when at least max(2, half of the nations that sighted
/// it, rounded up) have.
pub fn false_positive_retires(
    by_reporter: bool,
    fp_nations: usize,
    sighted_nations: usize,
) -> bool {
    by_reporter || fp_nations >= 2.max(sighted_nations.div_ceil(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: Model = Model {
        lifetime_ms: 120 * DAY_MS,
        speed: 2,
    };
    const HASH: Model = Model {
        lifetime_ms: 365 * DAY_MS,
        speed: 1,
    };

    #[test]
    fn the_lifetime_depends_on_the_kind() {
        assert_eq!(Model::for_kind(IndicatorKind::Domain), NET);
        assert_eq!(Model::for_kind(IndicatorKind::Ipv4), NET);
        assert_eq!(Model::for_kind(IndicatorKind::Sha256), HASH);
        assert_eq!(NET.valid_until(1_000), 1_000 + 120 * DAY_MS);
    }

    /// Exact values: linear for speed 1; for speed 2, a quarter of the lifetime already halves
    /// the score (√¼ = ½) and nine sixteenths take three quarters of it.
    #[test]
    fn the_score_falls_as_misps_polynomial() {
        assert_eq!(HASH.score(80, 0), 80);
        assert_eq!(HASH.score(80, HASH.lifetime_ms / 2), 40);
        assert_eq!(HASH.score(80, HASH.lifetime_ms / 4), 60);
        assert_eq!(HASH.score(80, HASH.lifetime_ms), 0);
        assert_eq!(NET.score(80, NET.lifetime_ms / 4), 40);
        assert_eq!(NET.score(80, NET.lifetime_ms * 9 / 16), 20);
        assert_eq!(NET.score(100, NET.lifetime_ms / 100), 90);
        assert_eq!(NET.score(100, NET.lifetime_ms - 1), 0);
        assert_eq!(NET.score(100, -5), 100);
    }

    #[test]
    fn the_score_never_rises_with_time() {
        for model in [
            NET,
            HASH,
            Model {
                lifetime_ms: 7 * DAY_MS,
                speed: 4,
            },
        ] {
            let mut last = 100;
            for step in 0..=1000 {
                let s = model.score(100, model.lifetime_ms / 1000 * step);
                assert!(s <= last, "{model:?} rose at step {step}");
                last = s;
            }
            assert_eq!(last, 0);
        }
    }

    /// A score is shown as an integer, rounded down: 70 is published the first millisecond the
    /// exact score is below 71.
    #[test]
    fn the_next_publication_is_when_the_score_reaches_the_next_multiple_of_ten() {
        let at = 1_000_000;
        // Linear from 80 (a year is 31,536 ms per ppm): below 71 once t/τ > 112,500 ppm.
        assert_eq!(HASH.next_step(80, at, 80), Some(at + 112_501 * 31_536));
        // Published at 73: the next step is 70 as well, not 63.
        assert_eq!(HASH.next_step(80, at, 73), Some(at + 112_501 * 31_536));
        let t = HASH.next_step(80, at, 73).unwrap() - at;
        assert_eq!((HASH.score(80, t), HASH.score(80, t - 1)), (70, 71));
        // Speed 2 from 100 (120 days are 10,368 ms per ppm): below 91 once √(t/τ) > 90,000
        // ppm, that is t/τ ≥ 8,101 ppm.
        assert_eq!(NET.next_step(100, at, 100), Some(at + 8_101 * 10_368));
        // Below 10 the next publication is the expiry.
        assert_eq!(NET.next_step(100, at, 10), None);
        assert_eq!(NET.next_step(100, at, 9), None);
    }

    #[test]
    fn integer_roots_are_exact() {
        assert_eq!(nth_root(1_000_000_000_000, 2), 1_000_000);
        assert_eq!(nth_root(999_999, 2), 999);
        assert_eq!(nth_root(PPM.pow(4), 4), PPM);
        assert_eq!(nth_root(PPM.pow(4) - 1, 4), PPM - 1);
        assert_eq!(nth_root(27, 3), 3);
    }

    #[test]
    fn false_positives_retire_at_once_from_a_reporter_else_by_a_share_of_the_sighters() {
        assert!(false_positive_retires(true, 1, 0));
        assert!(!false_positive_retires(false, 1, 1), "never fewer than two");
        assert!(false_positive_retires(false, 2, 1));
        assert!(false_positive_retires(false, 2, 4));
        assert!(
            !false_positive_retires(false, 2, 5),
            "half of five is three"
        );
        assert!(false_positive_retires(false, 3, 5));
        assert!(!false_positive_retires(false, 4, 10));
        assert!(false_positive_retires(false, 5, 10));
    }
}
