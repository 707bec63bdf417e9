//! State keys that follow from one entity each, and so stay off the changelog
//! (docs/architecture.md, "The changelog"): the fold writes them as it goes, and a restore or a
//! standing-by follower derives them from the entity changes it reads ([`derive`]), with the
//! same functions.
//!
//! - `c/<capability>/<offer_id>` and `f/<capability>/<closes_at>/<offer_id>` with its count
//!   `m/full/<capability>`: an offer with free capacity, or with none;
//! - `d/<respond_by>/<assignment_id>`: a proposal waiting for its answer;
//! - `g/<incident_id>`: the campaign an incident belongs to, from the campaign's members;
//! - `n/<request_id>` and `w/<capability>/<rank>/<request_id>/<need>`: a request whose
//!   incident is open, and each of its needs still missing units, ranked — from the request
//!   and its incident together ([`request_keys`]).
//!
//! The fold takes closed offers off `c/` and `f/` lazily, in the rounds that read them; a
//! derived state may still list them, which no round can tell apart: a round skips an offer
//! whose window has closed, and counts the full ones only after taking the closed ones off
//! (`Fold::live_full_offers`). Everything is presence-based (a key is marked only if absent,
//! removed only if present, and the full count follows), so a state that was active and then
//! follows stays consistent.

use crate::event::Capability;
use crate::state::*;
use crate::store::{Overlay, Store, StoreError, StoreMut};

/// The prefixes of derived keys.
pub const DERIVED: [&[u8]; 7] = [
    FREE_OFFERS,
    FULL_OFFERS,
    FULL_COUNTS,
    DEADLINES,
    MEMBERSHIPS,
    OPEN_REQUESTS,
    WAITING,
];

/// Whether `key` is derived from an entity, and kept off the changelog.
pub fn is_derived(key: &[u8]) -> bool {
    DERIVED.iter().any(|p| key.starts_with(p))
}

/// A state change: a key and its new value (none: removed).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// Lists an offer among those with free capacity (matched) or among the full ones (only
/// counted in rationales); returns whether it has free capacity.
pub fn index_offer<S: StoreMut + ?Sized>(st: &mut S, offer: &Offer) -> Result<bool, StoreError> {
    let free = offer_index_key(offer.capability, &offer.offer_id);
    let has_free = offer.remaining() > 0;
    if has_free {
        mark(st, &free)?;
    } else {
        unmark(st, &free)?;
    }
    list_full(st, offer, !has_free)?;
    Ok(has_free)
}

/// Lists `offer` among the full offers of its capability, or takes it off, under its current
/// window; keeps their count.
pub fn list_full<S: StoreMut + ?Sized>(
    st: &mut S,
    offer: &Offer,
    full: bool,
) -> Result<(), StoreError> {
    let key = full_offer_key(offer.capability, offer.closes_at(), &offer.offer_id);
    let changed = if full {
        mark(st, &key)?
    } else {
        unmark(st, &key)?
    };
    if changed {
        count_full(st, offer.capability, if full { 1 } else { -1 })?;
    }
    Ok(())
}

/// Adds `delta` to the count of full offers of capability `c`.
pub fn count_full<S: StoreMut + ?Sized>(
    st: &mut S,
    c: Capability,
    delta: i64,
) -> Result<(), StoreError> {
    let key = full_count_key(c);
    let n = read::<u32, _>(st, &key)?.unwrap_or(0) as i64 + delta;
    if n > 0 {
        st.put(&key, encode(&(n as u32)));
    } else {
        st.delete(&key);
    }
    Ok(())
}

/// The keys a request implies with its incident: while the incident is open, `n/<request>`,
/// and `w/…` for each need still missing units, under the request's rank. The fold keeps
/// exactly these (`crates/core/tests/properties.rs` checks it).
pub fn request_keys(incident: &Incident, request: &Request) -> Vec<Vec<u8>> {
    if !incident.open {
        return Vec::new();
    }
    let mut keys = vec![open_request_key(&request.request_id)];
    let rank = crate::rank::rank_key(incident, request);
    for (idx, need) in request.needs.iter().enumerate() {
        if need.missing() > 0 {
            keys.push(waiting_key(
                need.capability,
                &rank,
                &request.request_id,
                idx as u8,
            ));
        }
    }
    keys
}

/// Moves the keys a request implied (`before`) to those it implies now (`after`).
fn rekey<S: StoreMut + ?Sized>(
    st: &mut S,
    before: Vec<Vec<u8>>,
    after: Vec<Vec<u8>>,
) -> Result<(), StoreError> {
    for key in before.iter().filter(|k| !after.contains(k)) {
        unmark(st, key)?;
    }
    for key in &after {
        mark(st, key)?;
    }
    Ok(())
}

fn request_changed<S: StoreMut + ?Sized>(
    st: &mut S,
    old: Option<Request>,
    new: Option<Request>,
) -> Result<(), StoreError> {
    let Some(incident_id) = new.as_ref().or(old.as_ref()).map(|r| r.incident_id.clone()) else {
        return Ok(());
    };
    let incident: Option<Incident> = read(st, &incident_key(&incident_id))?;
    let keys = |r: &Option<Request>| match (&incident, r) {
        (Some(i), Some(r)) => request_keys(i, r),
        _ => Vec::new(),
    };
    let (before, after) = (keys(&old), keys(&new));
    rekey(st, before, after)
}

fn incident_changed<S: StoreMut + ?Sized>(
    st: &mut S,
    old: Option<Incident>,
    new: Option<Incident>,
) -> Result<(), StoreError> {
    let mut ids: Vec<&String> = old.iter().chain(&new).flat_map(|i| &i.requests).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let Some(request) = read::<Request, _>(st, &request_key(id))? else {
            continue;
        };
        let keys = |i: &Option<Incident>| match i {
            Some(i) => request_keys(i, &request),
            None => Vec::new(),
        };
        let (before, after) = (keys(&old), keys(&new));
        rekey(st, before, after)?;
    }
    Ok(())
}

/// `changes` read from the changelog, with the derived keys they imply over `base` (the state
/// before them), as the changes to write.
pub fn derive<B: Store>(base: &B, changes: Vec<Change>) -> Result<Vec<Change>, StoreError> {
    let mut overlay = Overlay::new();
    {
        let mut st = overlay.over(base);
        for (key, value) in changes {
            let entity = [OFFERS, ASSIGNMENTS, CAMPAIGNS, INCIDENTS, REQUESTS]
                .into_iter()
                .find(|p| key.starts_with(p));
            if let Some(prefix) = entity {
                let old = st.get(&key)?;
                match prefix {
                    OFFERS => offer_changed(
                        &mut st,
                        decoded(&key, old.as_deref())?,
                        decoded(&key, value.as_deref())?,
                    )?,
                    ASSIGNMENTS => assignment_changed(
                        &mut st,
                        decoded(&key, old.as_deref())?,
                        decoded(&key, value.as_deref())?,
                    )?,
                    INCIDENTS => incident_changed(
                        &mut st,
                        decoded(&key, old.as_deref())?,
                        decoded(&key, value.as_deref())?,
                    )?,
                    REQUESTS => request_changed(
                        &mut st,
                        decoded(&key, old.as_deref())?,
                        decoded(&key, value.as_deref())?,
                    )?,
                    _ => campaign_changed(
                        &mut st,
                        &String::from_utf8_lossy(&key[CAMPAIGNS.len()..]),
                        decoded(&key, old.as_deref())?,
                        decoded(&key, value.as_deref())?,
                    )?,
                }
            }
            match value {
                Some(v) => st.put(&key, v),
                None => st.delete(&key),
            }
        }
    }
    Ok(overlay.drain().collect())
}

fn decoded<T: serde::de::DeserializeOwned>(
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| decode(key, v)).transpose()
}

fn offer_changed<S: StoreMut + ?Sized>(
    st: &mut S,
    old: Option<Offer>,
    new: Option<Offer>,
) -> Result<(), StoreError> {
    if let Some(old) = &old {
        let same_keys = new
            .as_ref()
            .is_some_and(|n| n.capability == old.capability && n.closes_at() == old.closes_at());
        if !same_keys {
            unmark(st, &offer_index_key(old.capability, &old.offer_id))?;
            list_full(st, old, false)?;
        }
    }
    if let Some(new) = &new {
        index_offer(st, new)?;
    }
    Ok(())
}

fn assignment_changed<S: StoreMut + ?Sized>(
    st: &mut S,
    old: Option<Assignment>,
    new: Option<Assignment>,
) -> Result<(), StoreError> {
    let waiting = |a: &Assignment| {
        (a.status == AssignmentStatus::Proposed)
            .then(|| deadline_key(a.respond_by, &a.assignment_id))
    };
    let before = old.as_ref().and_then(waiting);
    let after = new.as_ref().and_then(waiting);
    if let Some(key) = before.filter(|k| Some(k) != after.as_ref()) {
        unmark(st, &key)?;
    }
    if let Some(key) = after {
        mark(st, &key)?;
    }
    Ok(())
}

fn campaign_changed<S: StoreMut + ?Sized>(
    st: &mut S,
    id: &str,
    old: Option<CampaignState>,
    new: Option<CampaignState>,
) -> Result<(), StoreError> {
    let now = new.map(|c| c.members).unwrap_or_default();
    for m in old.iter().flat_map(|c| &c.members) {
        let key = membership_key(m);
        // Another campaign of the same batch may hold it already.
        if !now.contains(m) && read::<String, _>(st, &key)?.as_deref() == Some(id) {
            st.delete(&key);
        }
    }
    for m in &now {
        let key = membership_key(m);
        if read::<String, _>(st, &key)?.as_deref() != Some(id) {
            st.put(&key, encode(&id));
        }
    }
    Ok(())
}

/// Marks `key`; whether it was absent.
fn mark<S: StoreMut + ?Sized>(st: &mut S, key: &[u8]) -> Result<bool, StoreError> {
    let absent = st.get(key)?.is_none();
    if absent {
        st.put(key, Vec::new());
    }
    Ok(absent)
}

/// Removes `key`; whether it was there.
fn unmark<S: StoreMut + ?Sized>(st: &mut S, key: &[u8]) -> Result<bool, StoreError> {
    let present = st.get(key)?.is_some();
    if present {
        st.delete(key);
    }
    Ok(present)
}
