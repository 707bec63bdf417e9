//! 1,000,000 indicators through the campaign correlation, with RocksDB state:
//! `cargo bench --bench correlation` (`INDICATORS=...` to change the count).
//!
//! 100,000 incident reports of 10 indicators each, folded by the real core into a RocksDB store
//! in batches, as the coordinator does. Per report: nine values of its own (file hashes), one
//! shared with about four other incidents (infrastructure: campaigns form), and every tenth
//! report also carries a public resolver that every such report shares (it hits the fan-out
//! cap and stops linking). It prints indicators/s, the state size on disk, and peak memory
//! (VmHWM of /proc/self/status) at each quarter: bounded memory means the peak stops growing
//! while the state keeps growing.

use std::time::Instant;

use rallypoint::store::RocksStore;
use rallypoint_core::event::{Event, Indicator, IndicatorKind, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use rallypoint_core::state::{read, PictureStats, PICTURE_STATS};
use rallypoint_core::store::Overlay;
use rallypoint_core::{apply, CoreConfig};

const PER_INCIDENT: usize = 10;
const BATCH: usize = 500;

/// Report `n` of a run with `pool` shared infrastructure values.
fn report(clock: &mut Clock, n: usize, pool: usize) -> Event {
    let nations = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];
    let id = format!("I-{n:07}");
    let e = sample::incident(
        clock.envelope(nations[n % nations.len()]),
        &id,
        Tlp::Amber,
        Priority::High,
    );
    let Event::IncidentReported(mut r) = e else {
        unreachable!()
    };
    let mut indicators: Vec<Indicator> = (0..PER_INCIDENT - 1)
        .map(|k| {
            Indicator::new(
                IndicatorKind::Sha256,
                format!(
                    "{:064x}",
                    (n * PER_INCIDENT + k) as u128 * 0x9E37_79B9_7F4A_7C15
                ),
            )
        })
        .collect();
    indicators.push(Indicator::new(
        IndicatorKind::Domain,
        format!("infra-{}.example.net", (n * 7919) % pool),
    ));
    if n.is_multiple_of(10) {
        indicators[0] = Indicator::new(IndicatorKind::Ipv4, "9.9.9.9".into());
    }
    r.indicators = indicators;
    Event::IncidentReported(r)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let indicators: usize = std::env::var("INDICATORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let incidents = indicators / PER_INCIDENT;
    let state = tempfile::tempdir().expect("a temporary folder");
    let mut store = RocksStore::open(state.path()).expect("RocksDB opens");
    let config = CoreConfig::default();
    let mut clock = Clock::new(1_800_000_000_000, 1_000);
    let mut overlay = Overlay::new();
    println!(
        "{:>10} {:>12} {:>14} {:>12} {:>10} {:>9} {:>8}",
        "indicators", "indicators/s", "state on disk", "peak RSS", "values", "capped", "campaigns"
    );
    let started = Instant::now();
    let mut quarter = Instant::now();
    for n in 0..incidents {
        let e = report(&mut clock, n, incidents / 5 + 3);
        apply(&mut overlay.over(&store), &config, &e).expect("the fold applies");
        if (n + 1).is_multiple_of(BATCH) {
            store
                .apply(overlay.drain(), n as i64)
                .expect("RocksDB writes");
        }
        if (n + 1).is_multiple_of((incidents / 4).max(1)) {
            store
                .apply(overlay.drain(), n as i64)
                .expect("RocksDB writes");
            let done = (n + 1) * PER_INCIDENT;
            let rate = (incidents / 4 * PER_INCIDENT) as f64 / quarter.elapsed().as_secs_f64();
            let stats: PictureStats = read(&store, PICTURE_STATS).unwrap().unwrap_or_default();
            println!(
                "{done:>10} {rate:>12.0} {:>11} MiB {:>8} MiB {:>10} {:>9} {:>8}",
                dir_bytes(state.path()) / (1 << 20),
                peak_rss_kib() / 1024,
                stats.indicator_values,
                stats.capped_values,
                stats.active_campaigns,
            );
            quarter = Instant::now();
        }
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "{} indicators in {:.1} s: {:.0} indicators/s ({:.0} reports/s)",
        incidents * PER_INCIDENT,
        total,
        (incidents * PER_INCIDENT) as f64 / total,
        incidents as f64 / total
    );
}
