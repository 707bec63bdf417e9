//! The fold's throughput on the in-memory store: `cargo bench -p rallypoint-core --bench core`.

// The allocator the processor runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rallypoint_core::sample;
use rallypoint_core::{apply, apply_with, CoreConfig, MemStore, Working};

fn fold(c: &mut Criterion) {
    let nations = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];
    let events = sample::stream(&nations, 20_000, 7);
    let config = CoreConfig::default();
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("mixed_stream_20k_events", |b| {
        b.iter_batched(
            MemStore::new,
            |mut store| {
                for e in &events {
                    apply(&mut store, &config, e).expect("the in-memory store does not fail");
                }
                store
            },
            BatchSize::LargeInput,
        )
    });
    // As the coordinator folds: one transaction's events share its working set (entities and
    // picture tallies, typed), written to the store once per batch.
    group.bench_function("mixed_stream_20k_events_in_batches_of_500", |b| {
        b.iter_batched(
            MemStore::new,
            |mut store| {
                let mut working = Working::default();
                for batch in events.chunks(500) {
                    for e in batch {
                        apply_with(&mut store, &mut working, &config, e)
                            .expect("the in-memory store does not fail");
                    }
                    working.flush(&mut store);
                }
                store
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// A flood: 1,000 requests wait with nothing offered, then 300 offers arrive one by one and
/// each runs a matching round over the backlog.
fn backlog(c: &mut Criterion) {
    use rallypoint_core::event::{Capability, Priority, Tlp};
    let nations = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];
    let mut clock = sample::Clock::new(1_800_000_000_000, 10);
    let mut waiting = Vec::new();
    for i in 0..1_000 {
        let n = nations[i % nations.len()];
        let id = format!("I{i}");
        let p = [Priority::Medium, Priority::High, Priority::Severe][i % 3];
        waiting.push(sample::incident(clock.envelope(n), &id, Tlp::Amber, p));
        waiting.push(sample::request(
            clock.envelope(n),
            &format!("R{i}"),
            &id,
            &[(Capability::IcsOt, 1 + (i % 3) as i32)],
        ));
    }
    let offers: Vec<_> = (0..300)
        .map(|j| {
            let n = nations[(j * 3 + 1) % nations.len()];
            sample::offer(clock.envelope(n), &format!("O{j}"), Capability::IcsOt, 3)
        })
        .collect();
    let config = CoreConfig::default();
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(offers.len() as u64));
    group.sample_size(10);
    group.bench_function("300_offers_into_a_backlog_of_1000_requests", |b| {
        b.iter_batched(
            || {
                let mut store = MemStore::new();
                for e in &waiting {
                    apply(&mut store, &config, e).expect("in memory");
                }
                store
            },
            |mut store| {
                for e in &offers {
                    apply(&mut store, &config, e).expect("in memory");
                }
                store
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// 1,000 open needs × 300 offers, about 70 % of pairs eligible: the matcher's worst day.
fn matcher(c: &mut Criterion) {
    use rallypoint_core::optimal::{solve, Problem};
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let (needs, offers) = (1_000, 300);
    let weights = [1, 2, 4, 8, 16, 32];
    let p = Problem {
        demand: (0..needs).map(|_| 1 + next(3) as i32).collect(),
        weight: (0..needs).map(|_| weights[next(6) as usize]).collect(),
        capacity: (0..offers).map(|_| 1 + next(6) as i32).collect(),
        eligible: (0..needs)
            .map(|_| (0..offers).filter(|_| next(10) < 7).collect())
            .collect(),
    };
    let mut group = c.benchmark_group("matcher");
    group.sample_size(10);
    group.bench_function("optimal_1000_needs_x_300_offers", |b| b.iter(|| solve(&p)));
    group.finish();
}

criterion_group!(benches, fold, backlog, matcher);
criterion_main!(benches);
