//! The keys left off the changelog (`rallypoint_core::derived`): a state rebuilt from the
//! changelog's entity changes, with those keys derived again, decides every next batch exactly
//! as the state that wrote them.

use std::collections::BTreeSet;

use rallypoint_core::derived::{derive, is_derived, Change};
use rallypoint_core::sample;
use rallypoint_core::state::{decode, Offer};
use rallypoint_core::store::{MemStore, Overlay, Store, StoreMut};
use rallypoint_core::{apply, CoreConfig};

const NATIONS: [&str; 5] = ["EST", "LVA", "LTU", "POL", "FIN"];

fn write(store: &mut MemStore, changes: impl IntoIterator<Item = Change>) {
    for (k, v) in changes {
        match v {
            Some(v) => store.put(&k, v),
            None => store.delete(&k),
        }
    }
}

fn keys(store: &MemStore, prefix: &[u8]) -> BTreeSet<Vec<u8>> {
    store
        .scan_prefix(prefix)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn entries(store: &MemStore, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.scan_prefix(prefix).unwrap()
}

fn stream_time(store: &MemStore) -> i64 {
    let v = store.get(b"m/stream_time").unwrap().expect("a stream time");
    decode(b"m/stream_time", &v).unwrap()
}

/// The offer an index key (`c/<cap>/<id>` or `f/<cap>/<time>/<id>`) names.
fn offer_of(store: &MemStore, key: &[u8]) -> Offer {
    let id = key.rsplit(|b| *b == b'/').next().unwrap();
    let okey = [b"o/".as_slice(), id].concat();
    decode(&okey, &store.get(&okey).unwrap().expect("an offer")).unwrap()
}

#[test]
fn a_state_rebuilt_from_the_changelog_decides_as_the_one_that_wrote_it() {
    let config = CoreConfig::default();
    let (journal, _) = sample::fold_with_answers(
        &mut MemStore::new(),
        &config,
        sample::stream(&NATIONS, 4000, 11),
        |k| (k % 4) as u8,
    )
    .unwrap();
    let (mut active, mut follower) = (MemStore::new(), MemStore::new());
    let mut seen = [0usize; 4];
    for (i, batch) in journal.chunks(97).enumerate() {
        // The follower takes over here: it decides the next batch as the active one does.
        let mut taken = follower.clone();
        let mut theirs = Vec::new();
        for e in batch {
            theirs.extend(apply(&mut taken, &config, e).unwrap());
        }
        let mut overlay = Overlay::new();
        let mut ours = Vec::new();
        {
            let mut st = overlay.over(&active);
            for e in batch {
                ours.extend(apply(&mut st, &config, e).unwrap());
            }
        }
        assert_eq!(theirs, ours, "batch {i}");
        let logged: Vec<Change> = overlay
            .iter()
            .filter(|(k, _)| !is_derived(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rebuilt = derive(&follower, logged).unwrap();
        write(&mut follower, rebuilt);
        write(&mut active, overlay.drain());

        // The derived keys are the written ones, but for closed offers the fold takes off
        // lazily.
        for (n, prefix) in [b"g/".as_slice(), b"d/"].into_iter().enumerate() {
            let written = entries(&active, prefix);
            assert_eq!(entries(&follower, prefix), written, "batch {i}");
            seen[n] += written.len();
        }
        let now = stream_time(&active);
        for (n, prefix) in [b"c/".as_slice(), b"f/"].into_iter().enumerate() {
            let (written, derived) = (keys(&active, prefix), keys(&follower, prefix));
            assert!(derived.is_superset(&written), "batch {i}");
            for extra in derived.difference(&written) {
                let offer = offer_of(&follower, extra);
                assert!(offer.closes_at() < now, "batch {i}: {offer:?}");
            }
            seen[2 + n] += written.len();
        }
    }
    assert!(
        seen.iter().all(|n| *n > 0),
        "the stream exercises memberships, deadlines, free and full offers: {seen:?}"
    );
}
