//! The codecs, in records per second: `cargo bench --bench codec`.
//!
//! Inputs are what a run carries: a mixed sample stream of 2,000 events from eight nations
//! (incidents with indicators, requests, offers, updates, closures, withdrawals), folded by the
//! real core with providers answering its proposals, for the decisions (proposed, confirmed,
//! cancelled, unmet) and the threat-picture updates (windows and campaigns) it emits. Each
//! iteration runs one codec call over the whole set, so criterion's throughput is per record:
//! events decoded from and encoded to Avro single-object and JSON, decisions to Avro and JSON
//! and back from Avro, picture updates to Avro.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use rallypoint::codec::{Codec, Format};
use rallypoint_core::decision::Decision;
use rallypoint_core::picture::PictureUpdate;
use rallypoint_core::{sample, CoreConfig, Event, MemStore, Output};

const NATIONS: [&str; 8] = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];
const EVENTS: usize = 2_000;
const SEED: u64 = 7;

/// The records every benchmark draws from.
struct Corpus {
    events: Vec<Event>,
    decisions: Vec<Decision>,
    pictures: Vec<PictureUpdate>,
}

/// Folds the sample stream, answering the k-th proposal with code k (accept, decline, stay
/// silent, accept then complete, in turn), so every kind of decision shows up.
fn corpus() -> Corpus {
    let stream = sample::stream(&NATIONS, EVENTS, SEED);
    let (events, outputs) =
        sample::fold_with_answers(&mut MemStore::new(), &CoreConfig::default(), stream, |k| {
            k as u8
        })
        .expect("a MemStore does not fail");
    let (mut decisions, mut pictures) = (Vec::new(), Vec::new());
    for output in outputs {
        match output {
            Output::Decision(routed) => decisions.push(routed.decision),
            Output::Picture(update) => pictures.push(update),
            Output::Hunt(_) | Output::Rejected(_) => {}
        }
    }
    Corpus {
        events,
        decisions,
        pictures,
    }
}

/// `name=count ...` of `names`, for the line that says what was measured.
fn tally(names: impl Iterator<Item = &'static str>) -> String {
    let mut counts = BTreeMap::<&str, usize>::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(n, k)| format!("{n}={k}")).collect();
    counts.join(" ")
}

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn elements<T>(records: &[T]) -> Throughput {
    Throughput::Elements(records.len() as u64)
}

fn events(group: &mut Group, codec: &Codec, corpus: &Corpus) {
    let avro: Vec<Vec<u8>> = corpus
        .events
        .iter()
        .map(|e| codec.encode_event(e))
        .collect();
    let json: Vec<Vec<u8>> = corpus
        .events
        .iter()
        .map(|e| codec.encode_event_json(e))
        .collect();
    group.throughput(elements(&avro));
    group.bench_function("decode_event_avro", |b| {
        b.iter(|| {
            for bytes in &avro {
                black_box(codec.decode_event(bytes).expect("own encoding decodes"));
            }
        })
    });
    group.bench_function("encode_event_avro", |b| {
        b.iter(|| {
            for event in &corpus.events {
                black_box(codec.encode_event(event));
            }
        })
    });
    group.throughput(elements(&json));
    // `decode_event` detects the framing: a record starting with `{` is read as JSON.
    group.bench_function("decode_event_json", |b| {
        b.iter(|| {
            for bytes in &json {
                black_box(codec.decode_event(bytes).expect("own encoding decodes"));
            }
        })
    });
}

fn decisions(group: &mut Group, codec: &Codec, corpus: &Corpus) {
    let decisions = &corpus.decisions;
    let avro: Vec<Vec<u8>> = decisions
        .iter()
        .map(|d| codec.encode_decision(d, Format::Avro))
        .collect();
    group.throughput(elements(decisions));
    for (name, format) in [
        ("encode_decision_avro", Format::Avro),
        ("encode_decision_json", Format::Json),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for decision in decisions {
                    black_box(codec.encode_decision(decision, format));
                }
            })
        });
    }
    group.bench_function("decode_decision_avro", |b| {
        b.iter(|| {
            for bytes in &avro {
                black_box(codec.decode_decision(bytes).expect("own encoding decodes"));
            }
        })
    });
}

fn pictures(group: &mut Group, codec: &Codec, corpus: &Corpus) {
    group.throughput(elements(&corpus.pictures));
    group.bench_function("encode_picture_avro", |b| {
        b.iter(|| {
            for update in &corpus.pictures {
                black_box(codec.encode_picture(update, Format::Avro));
            }
        })
    });
}

fn codec(c: &mut Criterion) {
    let codec = Codec::new().expect("the bundled schemas compile");
    let corpus = corpus();
    let names = corpus
        .events
        .iter()
        .map(Event::type_name)
        .chain(corpus.decisions.iter().map(Decision::type_name))
        .chain(corpus.pictures.iter().map(PictureUpdate::type_name));
    eprintln!("corpus: {}", tally(names));
    let mut group = c.benchmark_group("codec");
    // An iteration is a pass over thousands of records, milliseconds long: flat sampling keeps
    // the sample count within the measurement time, where linear sampling ran out of it.
    group.sampling_mode(SamplingMode::Flat);
    events(&mut group, &codec, &corpus);
    decisions(&mut group, &codec, &corpus);
    pictures(&mut group, &codec, &corpus);
    group.finish();
}

criterion_group! {
    name = benches;
    // Ten samples of three seconds each: enough to compare runs, and the whole file takes
    // about half a minute.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = codec
}
criterion_main!(benches);
