//! The fold's throughput on the in-memory store: `cargo bench -p rallypoint-core --bench core`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rallypoint_core::sample;
use rallypoint_core::{apply, CoreConfig, MemStore};

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
    group.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);
