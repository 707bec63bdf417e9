//! How the coordinator's state changes travel on the changelog topic (docs/architecture.md,
//! "The changelog"): one record per key a batch changed, holding its last value (or a
//! tombstone), except the keys that follow from one entity each, which restoring derives again
//! ([`rallypoint_core::derived`]) and the changelog does not carry, and the ids of the events
//! applied. Those (`e/<event id>`, written once and
//! never changed or removed) travel together: one record per batch, keyed
//! `E/<last journal offset of the batch>`, that restoring unpacks into one state key per
//! id. So the duplicate check costs the broker one record per batch, not one per event.

use std::borrow::Cow;

use rallypoint_core::derived;
use rallypoint_core::state::{decode, encode, SEEN};

/// The key prefix of a batch's packed event ids on the changelog: upper case, which no state
/// key starts with.
pub const SEEN_BATCH: &[u8] = b"E/";

pub use rallypoint_core::derived::Change;

/// A changelog record to send: its key and value (none: a tombstone), borrowed from the batch's
/// changes where they can be.
pub type Record<'a> = (Cow<'a, [u8]>, Option<Cow<'a, [u8]>>);

/// The changelog records of a batch's changes, `last_offset` being the batch's last journal
/// offset: every change as it is, but the derived keys left out and the event ids' marks
/// packed into one record.
pub fn pack<'a>(
    changes: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
    last_offset: i64,
) -> Vec<Record<'a>> {
    let mut out = Vec::new();
    let mut ids: Vec<&[u8]> = Vec::new();
    for (key, value) in changes {
        if derived::is_derived(key) {
            continue;
        }
        match (key.strip_prefix(SEEN), value) {
            (Some(id), Some(v)) if v.is_empty() => ids.push(id),
            _ => out.push((Cow::Borrowed(&key[..]), value.as_deref().map(Cow::Borrowed))),
        }
    }
    if !ids.is_empty() {
        let key = [SEEN_BATCH, format!("{last_offset:016x}").as_bytes()].concat();
        out.push((Cow::Owned(key), Some(Cow::Owned(encode(&ids)))));
    }
    out
}

/// The state changes a changelog record stands for, added to `into`: itself, or for a batch
/// of event ids one mark per id. A packed record that does not decode is an error: the state
/// would miss ids and apply their events twice.
pub fn unpack(key: &[u8], value: Option<&[u8]>, into: &mut Vec<Change>) -> anyhow::Result<()> {
    match (key.starts_with(SEEN_BATCH), value) {
        (true, Some(packed)) => {
            let ids: Vec<Vec<u8>> = decode(key, packed)?;
            into.extend(
                ids.into_iter()
                    .map(|id| ([SEEN, &id].concat(), Some(Vec::new()))),
            );
        }
        // A packed record is never removed; a tombstone of one changes nothing in the state.
        (true, None) => {}
        (false, _) => into.push((key.to_vec(), value.map(<[u8]>::to_vec))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rallypoint_core::state::seen_key;

    #[test]
    fn a_batch_s_event_ids_travel_in_one_record_and_unpack_to_the_same_changes() {
        let changes: Vec<Change> = vec![
            (seen_key("ev-1"), Some(Vec::new())),
            (b"i/INC-1".to_vec(), Some(b"\x01incident".to_vec())),
            (seen_key("ev-2"), Some(Vec::new())),
            (b"x/ipv4:203.0.113.7".to_vec(), None),
        ];
        let records = pack(changes.iter().map(|(k, v)| (k, v)), 41);
        assert_eq!(records.len(), 3, "two changes and one record of ids");
        let mut restored = Vec::new();
        for (k, v) in &records {
            unpack(k, v.as_deref(), &mut restored).unwrap();
        }
        let mut expected = changes.clone();
        expected.sort();
        restored.sort();
        assert_eq!(restored, expected);
        assert!(records.iter().any(|(k, _)| &k[..] == b"E/0000000000000029"));
    }

    #[test]
    fn keys_derived_from_entities_stay_off_the_changelog() {
        let changes: Vec<Change> = vec![
            (b"o/OFF-1".to_vec(), Some(b"\x04offer".to_vec())),
            (b"c/forensics/OFF-1".to_vec(), Some(Vec::new())),
            (b"g/INC-1".to_vec(), Some(b"\x04INC-1".to_vec())),
            (b"d/0000000000000001/ASG-1".to_vec(), None),
            (b"m/full/forensics".to_vec(), Some(b"\x04\x01".to_vec())),
            (b"n/REQ-1".to_vec(), Some(Vec::new())),
            (b"w/forensics/1/REQ-1/000".to_vec(), None),
            (b"m/stream_time".to_vec(), Some(b"\x04\x02".to_vec())),
        ];
        let records = pack(changes.iter().map(|(k, v)| (k, v)), 3);
        let keys: Vec<&[u8]> = records.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(keys, vec![b"o/OFF-1".as_slice(), b"m/stream_time"]);
    }

    #[test]
    fn a_batch_without_events_has_no_record_of_ids_and_a_corrupt_one_is_an_error() {
        let changes: Vec<Change> = vec![(b"m/stream_time".to_vec(), Some(b"\x01\x02".to_vec()))];
        assert_eq!(pack(changes.iter().map(|(k, v)| (k, v)), 7).len(), 1);
        let mut into = Vec::new();
        assert!(unpack(b"E/0000000000000007", Some(b"\x7fjunk"), &mut into).is_err());
        assert!(into.is_empty());
    }
}
