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

use std::collections::BTreeMap;

use rallypoint::codec::{Codec, Format};
use rallypoint::implied::{self, Emitted, Implied, RocksFold};
use rallypoint::kafka::Topics;
use rallypoint::store::RocksStore;
use rallypoint_core::event::Event;
use rallypoint_core::sample;
use rallypoint_core::{CoreConfig, MemStore};

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

/// Records a journal: the sample stream, with every proposal answered in turn (accept,
/// decline, silence, accept then complete) as the fold makes it.
fn record_journal() -> Vec<Event> {
    let events = sample::stream(&NATIONS, 300, 20_261_128);
    let (journal, _) =
        sample::fold_with_answers(&mut MemStore::new(), &config(), events, |k| (k % 4) as u8)
            .unwrap();
    journal
}

/// Folds journal records into a fresh RocksDB store, as the coordinator does (an overlay per
/// event, written through after it), with the one replay check's recompute
/// ([`rallypoint::implied`]).
fn recompute(codec: &Codec, journal: &[Vec<u8>]) -> Implied {
    let state = tempfile::tempdir().unwrap();
    let mut store = RocksStore::open(state.path()).unwrap();
    let events = journal.iter().enumerate().map(|(offset, bytes)| {
        (
            offset as i64,
            codec.decode_event(bytes).expect("a journal event"),
        )
    });
    let implied = implied::recompute(
        events,
        &mut RocksFold::new(&mut store, 1),
        &config(),
        codec,
        Format::Avro,
        &topics(),
    )
    .unwrap();
    implied
}

fn topics() -> Topics {
    Topics::new(&rallypoint::config::Config::load_with_vars(None, []).unwrap())
}

/// The decisions file's records of what `implied` holds: per decision, in the order the fold
/// made them, its audience and its bytes.
fn decisions_file(implied: &Implied) -> Vec<u8> {
    let mut all: Vec<(u64, &str, &[u8])> = Vec::new();
    for (topic, records) in &implied.decisions {
        let audience = topic
            .strip_prefix("rrc.out.")
            .and_then(|t| t.strip_suffix(".decisions"))
            .expect("a decision topic");
        all.extend(
            records
                .iter()
                .map(|r| (r.seq, audience, r.value.as_deref().unwrap_or_default())),
        );
    }
    all.sort();
    let mut out = Vec::new();
    for (_, audience, value) in all {
        frame(&mut out, audience.as_bytes());
        frame(&mut out, value);
    }
    out
}

/// The recorded decisions file as the decision topics would hold them: one partition each, in
/// the recorded order.
fn emitted(codec: &Codec, recorded: &[Vec<u8>]) -> BTreeMap<String, Vec<Emitted>> {
    let topics = topics();
    let mut out: BTreeMap<String, Vec<Emitted>> = BTreeMap::new();
    for pair in recorded.chunks(2) {
        let audience = std::str::from_utf8(&pair[0]).unwrap();
        let topic = if audience == "coalition" {
            topics.coalition_decisions()
        } else {
            topics.decisions(audience)
        };
        let key = codec
            .decode_decision(&pair[1])
            .unwrap()
            .key()
            .as_bytes()
            .to_vec();
        out.entry(topic).or_default().push(Emitted {
            partition: 0,
            key,
            value: Some(pair[1].clone()),
        });
    }
    out
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
            let decisions = decisions_file(&recompute(&codec, &unframe(&journal)));
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&journal_path, &journal).unwrap();
            std::fs::write(&decisions_path, &decisions).unwrap();
        }
        Ok(_) => {
            let journal = std::fs::read(&journal_path).expect("tests/golden/journal.bin");
            let decisions = decisions_file(&recompute(&codec, &unframe(&journal)));
            std::fs::write(&decisions_path, decisions).unwrap();
        }
        Err(_) => {}
    }
    let journal = unframe(&std::fs::read(&journal_path).expect("tests/golden/journal.bin"));
    let recorded = std::fs::read(&decisions_path).expect("tests/golden/decisions.bin");
    assert!(
        journal.len() > 300,
        "the journal holds the stream and the answers"
    );
    let implied = recompute(&codec, &journal);
    let want = unframe(&recorded);
    // The one replay check: every decision topic holds what the journal implies, in order.
    let topics = topics();
    let names: Vec<String> = NATIONS
        .iter()
        .map(|n| topics.decisions(n))
        .chain([topics.coalition_decisions()])
        .collect();
    let agreed = implied::compare(&implied, &names, &emitted(&codec, &want))
        .unwrap_or_else(|e| panic!("the recorded decisions differ from the replay: {e}"));
    assert_eq!(
        agreed.decisions * 2,
        want.len(),
        "number of decision records"
    );
    // And in the very order across audiences in which the fold made them.
    let got = unframe(&decisions_file(&implied));
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
