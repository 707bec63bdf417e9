//! Golden replay: a recorded journal (`tests/golden/journal.bin`) folded into a fresh RocksDB
//! store gives, byte for byte, the decisions recorded with it (`tests/golden/decisions.bin`).
//! A change that alters any decision — a rule, the ranking, the matcher, a schema — fails here
//! and must be recorded again on purpose:
//!
//! ```sh
//! RALLYPOINT_BLESS=1 cargo test --release --test golden
//! ```
//!
//! That records the decisions again from the recorded journal. `RALLYPOINT_BLESS=journal`
//! also records a new journal from today's sample stream.
//!
//! Files: records framed as a 4-byte big-endian length and the bytes. The journal holds Avro
//! single-object events as intake writes them; the decisions file holds, per decision, its
//! audience (`coalition` or a nation) and then its Avro bytes.

use std::path::PathBuf;

use rallypoint::codec::{Codec, Format};
use rallypoint::store::RocksStore;
use rallypoint_core::decision::Audience;
use rallypoint_core::event::Event;
use rallypoint_core::sample;
use rallypoint_core::store::Overlay;
use rallypoint_core::{apply, CoreConfig, MemStore, Output};

const NATIONS: [&str; 6] = ["EST", "LVA", "LTU", "POL", "DEU", "FIN"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config() -> CoreConfig {
    CoreConfig {
        acceptance_timeout_ms: 20_000,
        ..CoreConfig::default()
    }
}

fn frame(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn unframe(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        records.push(bytes[4..4 + len].to_vec());
        bytes = &bytes[4 + len..];
    }
    assert!(bytes.is_empty(), "trailing bytes in a golden file");
    records
}

fn audience(a: &Audience) -> String {
    match a {
        Audience::Nation(n) => n.clone(),
        Audience::Coalition => "coalition".into(),
    }
}

/// Records a journal: the sample stream, with every proposal answered in turn (accept,
/// decline, silence, accept then complete) as the fold makes it.
fn record_journal() -> Vec<Event> {
    let events = sample::stream(&NATIONS, 300, 20_261_128);
    let (journal, _) =
        sample::fold_with_answers(&mut MemStore::new(), &config(), events, |k| (k % 4) as u8)
            .unwrap();
    journal
}

/// Folds journal records into a fresh RocksDB store, as the coordinator does: an overlay per
/// event, written through after it.
fn fold(codec: &Codec, journal: &[Vec<u8>]) -> Vec<u8> {
    let state = tempfile::tempdir().unwrap();
    let mut store = RocksStore::open(state.path()).unwrap();
    let mut overlay = Overlay::new();
    let mut decisions = Vec::new();
    for (offset, bytes) in journal.iter().enumerate() {
        let event = codec.decode_event(bytes).expect("a journal event");
        for out in apply(&mut overlay.over(&store), &config(), &event).unwrap() {
            if let Output::Decision(r) = out {
                frame(&mut decisions, audience(&r.audience).as_bytes());
                frame(
                    &mut decisions,
                    &codec.encode_decision(&r.decision, Format::Avro),
                );
            }
        }
        store.apply(overlay.drain(), offset as i64 + 1).unwrap();
    }
    decisions
}

#[test]
fn the_recorded_journal_replays_to_byte_identical_decisions() {
    let codec = Codec::new().unwrap();
    let journal_path = dir().join("journal.bin");
    let decisions_path = dir().join("decisions.bin");
    match std::env::var("RALLYPOINT_BLESS").as_deref() {
        Ok("journal") => {
            let mut journal = Vec::new();
            for e in record_journal() {
                frame(&mut journal, &codec.encode_event(&e));
            }
            let decisions = fold(&codec, &unframe(&journal));
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&journal_path, &journal).unwrap();
            std::fs::write(&decisions_path, &decisions).unwrap();
        }
        Ok(_) => {
            let journal = std::fs::read(&journal_path).expect("tests/golden/journal.bin");
            std::fs::write(&decisions_path, fold(&codec, &unframe(&journal))).unwrap();
        }
        Err(_) => {}
    }
    let journal = unframe(&std::fs::read(&journal_path).expect("tests/golden/journal.bin"));
    let recorded = std::fs::read(&decisions_path).expect("tests/golden/decisions.bin");
    assert!(
        journal.len() > 300,
        "the journal holds the stream and the answers"
    );
    let replayed = fold(&codec, &journal);
    let (want, got) = (unframe(&recorded), unframe(&replayed));
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert!(
            w == g,
            "decision record {} differs from the recorded one",
            i / 2
        );
    }
    assert_eq!(want.len(), got.len(), "number of decision records");
    // The recording covers every kind of decision.
    let kinds: std::collections::BTreeSet<String> = want
        .iter()
        .skip(1)
        .step_by(2)
        .map(|b| codec.decode_decision(b).unwrap().type_name().to_owned())
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
}
