//! The narrow storage interface the core folds state into.
//!
//! Invariants every implementation keeps:
//! - read-after-write: a `get` or `scan_prefix` sees every `put`/`delete` made before it through
//!   the same handle, including those not yet durable;
//! - `scan_prefix` returns keys in ascending byte order, so iteration never depends on hash order;
//! - nothing is durable until the owner of the store says so: this trait neither commits nor
//!   decides what is safe to persist. The adapters do (see the coordinator's overlay store).
//!
//! An error is an I/O fault of the backing store, never the input's fault: the caller stops.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store read failed: {0}")]
    Backend(String),
    #[error("state value under key {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
}

pub type KeyValue = (Vec<u8>, Vec<u8>);

pub trait Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&mut self, key: &[u8], value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);
    /// Every live key starting with `prefix`, ascending.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
}

/// A store held in memory: for unit tests of the core, and as the write overlay of adapters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.map.insert(key.to_vec(), value);
    }

    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        Ok(self
            .map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// Pending changes over a base store: what one transaction has written and not yet made
/// durable. `None` is a deletion. Reads see the overlay first, then the base.
#[derive(Debug, Default)]
pub struct Overlay {
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// The pending changes in key order; `None` is a deletion.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> {
        self.changes.iter()
    }

    /// Takes the changes out, in key order, leaving the overlay empty.
    pub fn drain(&mut self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        std::mem::take(&mut self.changes).into_iter()
    }

    pub fn clear(&mut self) {
        self.changes.clear();
    }

    /// A `Store` view that reads through to `base` and writes into this overlay.
    pub fn over<'a, B: Store>(&'a mut self, base: &'a B) -> Layered<'a, B> {
        Layered {
            overlay: self,
            base,
        }
    }
}

/// A base store seen through an overlay of pending changes.
pub struct Layered<'a, B> {
    overlay: &'a mut Overlay,
    base: &'a B,
}

impl<B: Store> Store for Layered<'_, B> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.overlay.changes.get(key) {
            Some(change) => Ok(change.clone()),
            None => self.base.get(key),
        }
    }

    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.overlay.changes.insert(key.to_vec(), Some(value));
    }

    fn delete(&mut self, key: &[u8]) {
        self.overlay.changes.insert(key.to_vec(), None);
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.scan_prefix(prefix)?.into_iter().collect();
        let pending = self
            .overlay
            .changes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        for (k, change) in pending {
            match change {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_prefix_is_ordered_and_bounded_by_the_prefix() {
        let mut s = MemStore::new();
        s.put(b"b/2", vec![2]);
        s.put(b"a/9", vec![9]);
        s.put(b"b/1", vec![1]);
        s.put(b"c/0", vec![0]);
        let keys: Vec<_> = s
            .scan_prefix(b"b/")
            .unwrap()
            .into_iter()
            .map(|kv| kv.0)
            .collect();
        assert_eq!(keys, vec![b"b/1".to_vec(), b"b/2".to_vec()]);
    }

    #[test]
    fn overlay_reads_its_own_writes_and_hides_deleted_base_keys() {
        let mut base = MemStore::new();
        base.put(b"k/1", vec![1]);
        base.put(b"k/2", vec![2]);
        let mut overlay = Overlay::new();
        let mut view = overlay.over(&base);
        view.delete(b"k/1");
        view.put(b"k/3", vec![3]);
        assert_eq!(view.get(b"k/1").unwrap(), None);
        assert_eq!(view.get(b"k/2").unwrap(), Some(vec![2]));
        let scanned: Vec<_> = view.scan_prefix(b"k/").unwrap();
        assert_eq!(
            scanned,
            vec![(b"k/2".to_vec(), vec![2]), (b"k/3".to_vec(), vec![3])]
        );
        assert_eq!(
            base.len(),
            2,
            "the base is untouched until the owner applies the overlay"
        );
        assert_eq!(overlay.len(), 2);
    }
}
