//! The RocksDB state store: `cargo bench --bench store`.
//!
//! The state is what the core writes: a mixed sample stream of 10,000 events from eight nations
//! folded by the real core the way the coordinator does it, a batch of events into an
//! [`Overlay`] over the store, then the overlay applied to RocksDB with its changelog offset.
//! Measured, in elements per second:
//! - `store/get_hot`: point reads of existing entity keys, flushed to an SST file and read once
//!   before, so the blocks are in the block cache;
//! - `store/get_missing`: point reads of event ids never seen, the deduplication check every
//!   event makes (bloom filters answer most without reading a block);
//! - `store/scan_prefix`: one scan of the incident entities (`i/`), per key returned;
//! - `store/apply_batch`: one `RocksStore::apply` of 2,000 changes (puts and deletes, index and
//!   entity keys, in the proportions the overlay of the next events holds), into that store.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rallypoint::store::RocksStore;
use rallypoint_core::state::{seen_key, INDEX_PREFIXES};
use rallypoint_core::store::{KeyValue, Overlay};
use rallypoint_core::{apply, sample, CoreConfig, Event, Store};
use tempfile::TempDir;

const NATIONS: [&str; 8] = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];
const SEED: u64 = 11;
/// Events folded into the store before anything is measured.
const LOADED: usize = 10_000;
/// Events the coordinator folds into one overlay while loading.
const BATCH: usize = 500;
const CHANGES: usize = 2_000;
const READS: usize = 1_000;

type Change = (Vec<u8>, Option<Vec<u8>>);

/// A store in a directory of its own, removed on drop.
struct Fixture {
    store: RocksStore,
    _dir: TempDir,
}

fn open() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RocksStore::open(dir.path()).expect("RocksDB opens");
    Fixture { store, _dir: dir }
}

/// Folds `events` into an overlay over `store`, one event at a time, until the overlay holds
/// at least `enough` changes or the events run out.
fn fold(
    store: &RocksStore,
    overlay: &mut Overlay,
    events: &mut impl Iterator<Item = Event>,
    enough: usize,
) {
    let config = CoreConfig::default();
    while overlay.len() < enough {
        let Some(event) = events.next() else { return };
        apply(&mut overlay.over(store), &config, &event).expect("RocksDB reads");
    }
}

/// The loaded store, and the overlay of the batch of events that follows it.
fn loaded() -> (Fixture, Vec<Change>) {
    let mut fixture = open();
    let stream = sample::stream(&NATIONS, LOADED + 4 * CHANGES, SEED);
    let mut events = stream.into_iter();
    let mut overlay = Overlay::new();
    for next in 1..=(LOADED / BATCH) as i64 {
        let mut batch = events.by_ref().take(BATCH);
        fold(&fixture.store, &mut overlay, &mut batch, usize::MAX);
        fixture
            .store
            .apply(overlay.drain(), next)
            .expect("RocksDB writes");
    }
    fold(&fixture.store, &mut overlay, &mut events, CHANGES);
    let changes: Vec<Change> = overlay.drain().collect();
    assert!(changes.len() >= CHANGES, "the stream makes enough changes");
    (fixture, spread(changes, CHANGES))
}

/// `n` of `items`, evenly spaced, so every key range keeps its share.
fn spread<T: Clone>(items: Vec<T>, n: usize) -> Vec<T> {
    (0..n).map(|i| items[i * items.len() / n].clone()).collect()
}

fn is_index(key: &[u8]) -> bool {
    INDEX_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn prefix_counts(rows: &[KeyValue]) -> String {
    let mut counts = std::collections::BTreeMap::<&[u8], usize>::new();
    for (k, _) in rows.iter().filter(|(k, _)| k[0] != 0) {
        *counts.entry(&k[..2.min(k.len())]).or_default() += 1;
    }
    counts
        .iter()
        .map(|(p, n)| format!("{}={n}", String::from_utf8_lossy(p)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes the same batch again and again into the loaded store, with a new changelog offset
/// each time: RocksDB's cost hardly depends on whether a key was there before.
fn apply_batch(c: &mut Criterion, store: &mut RocksStore, changes: &[Change]) {
    let deletes = changes.iter().filter(|(_, v)| v.is_none()).count();
    let index = changes.iter().filter(|(k, _)| is_index(k)).count();
    let bytes: usize = changes
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    eprintln!(
        "batch: {} changes, {deletes} deletes, {index} index keys, {bytes} bytes",
        changes.len()
    );
    let mut next = store.changelog_next().expect("RocksDB reads");
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(changes.len() as u64));
    group.bench_function("apply_batch", |b| {
        b.iter_batched(
            || changes.to_vec(),
            |batch| {
                next += 1;
                store.apply(batch, next).expect("RocksDB writes");
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn reads(c: &mut Criterion, store: &RocksStore) {
    let all = store.scan_prefix(b"").expect("RocksDB scans");
    eprintln!("state: {} keys: {}", all.len(), prefix_counts(&all));
    let on_disk: Vec<Vec<u8>> = all
        .into_iter()
        .map(|kv| kv.0)
        .filter(|k| !is_index(k) && k[0] != 0)
        .collect();
    let hot = spread(on_disk, READS);
    let missing: Vec<Vec<u8>> = (1..=READS as u64)
        .map(|k| seen_key(&sample::uuid_from(k, -1)))
        .collect();
    for key in &hot {
        assert!(store.get(key).expect("RocksDB reads").is_some());
    }
    for key in &missing {
        assert!(store.get(key).expect("RocksDB reads").is_none());
    }
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(READS as u64));
    for (name, keys) in [("get_hot", &hot), ("get_missing", &missing)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for key in keys {
                    black_box(store.get(key).expect("RocksDB reads"));
                }
            })
        });
    }
    let scanned = store.scan_prefix(b"i/").expect("RocksDB scans").len();
    group.throughput(Throughput::Elements(scanned as u64));
    group.bench_function("scan_prefix", |b| {
        b.iter(|| black_box(store.scan_prefix(b"i/").expect("RocksDB scans")))
    });
    group.finish();
}

fn store(c: &mut Criterion) {
    let (mut fixture, changes) = loaded();
    fixture.store.flush().expect("RocksDB flushes");
    reads(c, &fixture.store);
    apply_batch(c, &mut fixture.store, &changes);
}

criterion_group! {
    name = benches;
    // Ten samples of three seconds each: the whole file takes about half a minute.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = store
}
criterion_main!(benches);
