//! What the schema ids of the Confluent wire format stand for.
//!
//! A Schema Registry gives every schema it holds a number, and a record in the Confluent wire
//! format names its writer schema only by that number. This table says, for each id met so
//! far, how to read a record written with it: with one of the current schemas, with a released
//! one, with another version of a Rallypoint record (resolved to the current one), or not at
//! all. It also holds the id each current schema was registered under, which is what the codec
//! frames its own records with when a registry is configured.
//!
//! The table is filled from outside (`crate::registry` asks the registry); nothing here does
//! I/O. An id never changes meaning in a registry, so what is learnt is kept, except that an id
//! the registry did not have is asked for again after [`MISSING_RETRY`]: a record may arrive
//! before a registry replica has caught up with the registration that made its id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::schemas::Compiled;

/// How long an id the registry did not have is taken as unknown before it is asked again.
pub const MISSING_RETRY: Duration = Duration::from_secs(30);

/// How records written with one registry id are read.
pub(super) enum Known {
    /// With current schema `i` (index into the codec's schemas).
    Current(usize),
    /// With released schema `i`, then resolved to the current one.
    Released(usize),
    /// With another version of a Rallypoint record, then resolved to current schema `reader`.
    Writer {
        writer: Box<Compiled>,
        reader: usize,
    },
    /// Not at all: why (a schema that is not Rallypoint's, or one this version cannot read).
    Unreadable(String),
    /// The registry had no schema with this id when it was asked, at this time.
    Missing(Instant),
}

/// What a registry id turned out to be, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Learnt {
    /// A current schema, by name.
    Current(&'static str),
    /// An earlier or other version of a Rallypoint record, read and resolved to the current one.
    OtherVersion(&'static str),
    /// Records with this id go to the dead-letter topic, for this reason.
    Unreadable(String),
    /// The registry has no schema with this id.
    Missing,
}

#[derive(Default)]
pub(super) struct IdTable {
    by_id: HashMap<u32, Known>,
    /// The registered id of each current schema, by index, once registered.
    registered: Vec<Option<u32>>,
}

impl IdTable {
    pub fn get(&self, id: u32) -> Option<&Known> {
        self.by_id.get(&id)
    }

    pub fn insert(&mut self, id: u32, known: Known) {
        self.by_id.insert(id, known);
    }

    /// True when `id` must be looked up: never seen, or missing for long enough.
    pub fn needs_lookup(&self, id: u32, now: Instant) -> bool {
        match self.by_id.get(&id) {
            None => true,
            Some(Known::Missing(since)) => now.duration_since(*since) >= MISSING_RETRY,
            Some(_) => false,
        }
    }

    /// Records that current schema `i` is registered as `id`.
    pub fn set_registered(&mut self, i: usize, id: u32) {
        if self.registered.len() <= i {
            self.registered.resize(i + 1, None);
        }
        self.registered[i] = Some(id);
        self.by_id.insert(id, Known::Current(i));
    }

    /// The id current schema `i` is registered as, if it is.
    pub fn registered(&self, i: usize) -> Option<u32> {
        self.registered.get(i).copied().flatten()
    }
}
