//! The working set of a transaction: the entities the fold reads and writes, held typed in
//! memory from their first read until the transaction ends (docs/architecture.md, "The
//! working set").
//!
//! A coordinator batch folds hundreds of events, and its matching rounds read the same open
//! incidents, requests and offers again and again. Reading each through the byte-level
//! [`Store`] costs a key search, an owned copy and a decode every time. The working set reads
//! an entity from the store once per transaction, serves it typed from then on, keeps the
//! fold's writes typed as well, and writes each changed entity back once, when
//! [`Working::flush`] writes the transaction's state. Closed history is never loaded unless
//! an event names it, so memory follows the batch, not the history: the set is emptied by
//! every flush, and a transaction that is aborted drops it with the rest of its batch.
//!
//! It is transparent: a fold over the working set leaves the same state and emits the same
//! outputs as one that reads and writes the store directly (a property test checks it,
//! `tests/properties.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::picture::Tallies;
use crate::state::{encode, incident_key, offer_key, read, request_key, Incident, Offer, Request};
use crate::store::{Store, StoreError, StoreMut};

/// Entities of one kind by id: `None` is one known to be absent (never written, or deleted).
/// Reads fill it behind a shared reference (the fold reads through `&State`), hence the cell;
/// the fold is single-threaded and never holds a borrow across a call.
#[derive(Debug)]
struct Entities<T> {
    slots: RefCell<HashMap<String, Slot<T>>>,
    key: fn(&str) -> Vec<u8>,
}

#[derive(Debug)]
struct Slot<T> {
    /// Shared with the fold's readers: a read costs no copy, a change replaces it.
    value: Option<Rc<T>>,
    /// Written by the fold since it was read: goes back to the store at the flush.
    dirty: bool,
}

impl<T: Clone + Serialize + DeserializeOwned> Entities<T> {
    fn new(key: fn(&str) -> Vec<u8>) -> Self {
        Self {
            slots: RefCell::new(HashMap::new()),
            key,
        }
    }

    fn get<S: Store + ?Sized>(&self, store: &S, id: &str) -> Result<Option<Rc<T>>, StoreError> {
        if let Some(slot) = self.slots.borrow().get(id) {
            return Ok(slot.value.clone());
        }
        let value: Option<Rc<T>> = read::<T, S>(store, &(self.key)(id))?.map(Rc::new);
        self.slots.borrow_mut().insert(
            id.to_owned(),
            Slot {
                value: value.clone(),
                dirty: false,
            },
        );
        Ok(value)
    }

    fn put(&mut self, id: &str, value: Option<Rc<T>>) {
        let slots = self.slots.get_mut();
        match slots.get_mut(id) {
            Some(slot) => {
                slot.value = value;
                slot.dirty = true;
            }
            None => {
                slots.insert(id.to_owned(), Slot { value, dirty: true });
            }
        }
    }

    /// Writes the changed entities in id order (a flush writes the same way every time), and
    /// forgets them all.
    fn flush<S: StoreMut + ?Sized>(&mut self, store: &mut S) {
        let mut dirty: Vec<(String, Option<Rc<T>>)> = self
            .slots
            .get_mut()
            .drain()
            .filter(|(_, slot)| slot.dirty)
            .map(|(id, slot)| (id, slot.value))
            .collect();
        dirty.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, value) in dirty {
            let key = (self.key)(&id);
            match value {
                Some(v) => store.put(&key, encode(&*v)),
                None => store.delete(&key),
            }
        }
    }

    fn len(&self) -> usize {
        self.slots.borrow().len()
    }
}

/// The open incidents, requests and offers of a transaction, and its picture tallies.
#[derive(Debug, Default)]
pub struct Working {
    pub tallies: Tallies,
    pub(crate) entities: EntitySet,
}

impl Working {
    /// Writes everything the transaction changed into `store`, and empties the set. Must
    /// happen before anything but the fold reads the store, and only once the batch is done.
    pub fn flush<S: StoreMut + ?Sized>(&mut self, store: &mut S) {
        self.entities.flush(store);
        self.tallies.flush(store);
    }

    /// How many entities the set holds (read or written this transaction).
    pub fn entities(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities() == 0 && self.tallies.is_empty()
    }
}

/// The entities of a transaction, typed; [`crate::state::State`] reads and writes them.
#[derive(Debug)]
pub(crate) struct EntitySet {
    incidents: Entities<Incident>,
    requests: Entities<Request>,
    offers: Entities<Offer>,
}

impl Default for EntitySet {
    fn default() -> Self {
        Self {
            incidents: Entities::new(incident_key),
            requests: Entities::new(request_key),
            offers: Entities::new(offer_key),
        }
    }
}

impl EntitySet {
    fn flush<S: StoreMut + ?Sized>(&mut self, store: &mut S) {
        self.incidents.flush(store);
        self.requests.flush(store);
        self.offers.flush(store);
    }

    fn len(&self) -> usize {
        self.incidents.len() + self.requests.len() + self.offers.len()
    }

    pub(crate) fn incident<S: Store + ?Sized>(
        &self,
        store: &S,
        id: &str,
    ) -> Result<Option<Rc<Incident>>, StoreError> {
        self.incidents.get(store, id)
    }

    pub(crate) fn request<S: Store + ?Sized>(
        &self,
        store: &S,
        id: &str,
    ) -> Result<Option<Rc<Request>>, StoreError> {
        self.requests.get(store, id)
    }

    pub(crate) fn offer<S: Store + ?Sized>(
        &self,
        store: &S,
        id: &str,
    ) -> Result<Option<Rc<Offer>>, StoreError> {
        self.offers.get(store, id)
    }

    pub(crate) fn put_incident(&mut self, v: &Incident) {
        self.incidents.put(&v.incident_id, Some(Rc::new(v.clone())));
    }

    pub(crate) fn put_request(&mut self, v: &Request) {
        self.requests.put(&v.request_id, Some(Rc::new(v.clone())));
    }

    pub(crate) fn put_request_shared(&mut self, v: Rc<Request>) {
        let id = v.request_id.clone();
        self.requests.put(&id, Some(v));
    }

    pub(crate) fn put_offer(&mut self, v: &Offer) {
        self.offers.put(&v.offer_id, Some(Rc::new(v.clone())));
    }

    pub(crate) fn delete_offer(&mut self, id: &str) {
        self.offers.put(id, None);
    }
}
