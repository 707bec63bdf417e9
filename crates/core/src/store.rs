//! The narrow storage interface the core folds state into, in two halves:
//! - [`Store`], the reads: `get`, `scan_page` and what is built on them. Reads may fail (an I/O
//!   fault of the backing store).
//! - [`StoreMut`], the writes the fold makes: `put` and `delete`, which cannot fail, because
//!   only in-memory buffers implement it: [`MemStore`] (tests, and small in-memory state) and
//!   [`Layered`], a transaction's [`Overlay`] over a store that is only read. A durable store
//!   (RocksDB in the processor) implements [`Store`] alone, and is written by its owner in one
//!   fallible batch, whose error the owner must handle.
//!
//! Invariants every implementation keeps:
//! - read-after-write: a `get` or `scan_prefix` sees every `put`/`delete` made before it through
//!   the same handle;
//! - `scan_prefix` returns keys in ascending byte order, so iteration never depends on hash order;
//! - nothing is durable until the owner of the store says so: these traits neither commit nor
//!   decide what is safe to persist. The adapters do (see the coordinator's overlay store).
//!
//! An error is an I/O fault of the backing store, never the input's fault: the caller stops.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store read failed: {0}")]
    Backend(String),
    #[error("state store write failed: {0}")]
    Write(String),
    #[error("state value under key {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
}

pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The read side of a store.
pub trait Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every live key starting with `prefix`, ascending: one unlimited page, unless a store
    /// has a better way.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_page(prefix, None, usize::MAX)
    }

    /// Up to `limit` live keys starting with `prefix` and greater than `after`, ascending. Fewer
    /// than `limit` means the prefix is exhausted.
    fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;
}

/// The write side: a buffer in memory that the fold writes into. Writes cannot fail; making
/// them durable is the owner's business, and may.
pub trait StoreMut: Store {
    fn put(&mut self, key: &[u8], value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);
}

/// Walks the keys under `prefix` page by page, calling `visit` until it returns `false`.
pub fn for_each_key<S: Store + ?Sized>(
    store: &S,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8]) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    // Small first pages: most walks stop at the first key or two.
    let mut page_size = 2;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan_page(prefix, after.as_deref(), page_size)?;
        for (k, _) in &page {
            if !visit(k)? {
                return Ok(());
            }
        }
        if page.len() < page_size {
            return Ok(());
        }
        after = page.last().map(|kv| kv.0.clone());
        page_size = (page_size * 4).min(256);
    }
}

/// Where a page starts: after `after` when it lies within the prefix's keys, else at the prefix.
fn after_bound<'k>(prefix: &'k [u8], after: Option<&'k [u8]>) -> std::ops::Bound<&'k [u8]> {
    match after {
        Some(a) if a >= prefix => std::ops::Bound::Excluded(a),
        _ => std::ops::Bound::Included(prefix),
    }
}

/// The keys of `map` from `after_bound(prefix, after)` on that start with `prefix`, ascending.
fn prefix_range<'m, V>(
    map: &'m BTreeMap<Vec<u8>, V>,
    prefix: &'m [u8],
    after: Option<&'m [u8]>,
) -> impl Iterator<Item = (&'m Vec<u8>, &'m V)> {
    map.range::<[u8], _>((after_bound(prefix, after), std::ops::Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
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

    fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        Ok(prefix_range(&self.map, prefix, after)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl StoreMut for MemStore {
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.map.insert(key.to_vec(), value);
    }

    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
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

    /// A [`StoreMut`] view that reads through to `base` and writes into this overlay.
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

    fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let mut cursor = after.map(<[u8]>::to_vec);
        // Pending deletions can hide a run of base keys (a time index's due entries, removed
        // in this batch): base pages grow while they do, so a walk past them stays short.
        let mut base_limit = limit;
        loop {
            let base = self.base.scan_page(prefix, cursor.as_deref(), base_limit)?;
            let exhausted = base.len() < base_limit;
            base_limit = base_limit.saturating_mul(4).clamp(limit, limit.max(1024));
            // This base page covers keys up to its last one; the next page covers the rest.
            let upper = if exhausted {
                None
            } else {
                base.last().map(|kv| kv.0.clone())
            };
            if self.merge(
                prefix,
                cursor.as_deref(),
                upper.as_deref(),
                base,
                &mut out,
                limit,
            ) {
                return Ok(out);
            }
            if exhausted {
                return Ok(out);
            }
            cursor = upper;
        }
    }
}

impl<B: Store> StoreMut for Layered<'_, B> {
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.overlay.changes.insert(key.to_vec(), Some(value));
    }

    fn delete(&mut self, key: &[u8]) {
        // A key the base does not hold needs no deletion, only to leave the pending changes:
        // one made and removed within this batch (a time index's entries often are), or never
        // there. Its owner then writes no tombstone for it to the changelog or to the base.
        if let Ok(None) = self.base.get(key) {
            self.overlay.changes.remove(key);
        } else {
            self.overlay.changes.insert(key.to_vec(), None);
        }
    }
}

impl<B> Layered<'_, B> {
    /// Merges the ascending `base` page with the pending changes after `after`, up to `upper`
    /// (none: to the prefix's end), into `out`; where both hold a key, the pending change wins.
    /// True once `out` holds `limit` pairs.
    fn merge(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        upper: Option<&[u8]>,
        base: Vec<KeyValue>,
        out: &mut Vec<KeyValue>,
        limit: usize,
    ) -> bool {
        use std::cmp::Ordering;
        let mut pending = prefix_range(&self.overlay.changes, prefix, after)
            .take_while(|(k, _)| upper.is_none_or(|u| k.as_slice() <= u))
            .peekable();
        let mut base = base.into_iter().peekable();
        loop {
            let from_base = match (base.peek(), pending.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((b, _)), Some((p, _))) => match b.as_slice().cmp(p.as_slice()) {
                    Ordering::Less => true,
                    Ordering::Equal => {
                        base.next();
                        false
                    }
                    Ordering::Greater => false,
                },
            };
            let live = if from_base {
                base.next()
            } else {
                pending
                    .next()
                    .and_then(|(k, change)| Some((k.clone(), change.clone()?)))
            };
            if let Some(kv) = live {
                out.push(kv);
                if out.len() == limit {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Paged reads through an overlay, at any page size, see exactly the keys and values of
        /// the base with the pending changes applied, in order.
        #[test]
        fn overlay_pages_merge_like_the_changes_applied(
            base_keys in proptest::collection::vec((0u8..3, 0u16..60), 0..80),
            changes in proptest::collection::vec((0u8..3, 0u16..60, any::<bool>()), 0..80),
            limit in 1usize..9,
        ) {
            let key = |p: u8, i: u16| format!("{}/{i:03}", (b'a' + p) as char).into_bytes();
            let mut base = MemStore::new();
            for (p, i) in &base_keys {
                base.put(&key(*p, *i), vec![0, *p]);
            }
            let mut expected = base.clone();
            let mut overlay = Overlay::new();
            let mut view = overlay.over(&base);
            for (n, (p, i, put)) in changes.iter().enumerate() {
                if *put {
                    view.put(&key(*p, *i), vec![1, n as u8]);
                    expected.put(&key(*p, *i), vec![1, n as u8]);
                } else {
                    view.delete(&key(*p, *i));
                    expected.delete(&key(*p, *i));
                }
            }
            let mut paged = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = view.scan_page(b"b/", after.as_deref(), limit).unwrap();
                prop_assert!(page.len() <= limit);
                after = page.last().map(|kv| kv.0.clone());
                let last = page.len() < limit;
                paged.extend(page);
                if last {
                    break;
                }
            }
            prop_assert_eq!(&paged, &expected.scan_prefix(b"b/").unwrap());
            prop_assert_eq!(view.scan_prefix(b"b/").unwrap(), paged);
            for (p, i, _) in &changes {
                prop_assert_eq!(view.get(&key(*p, *i)).unwrap(), expected.get(&key(*p, *i)).unwrap());
            }
            // Deletions pending only for keys the base holds: no needless tombstones.
            for (k, change) in overlay.iter() {
                prop_assert!(change.is_some() || base.get(k).unwrap().is_some());
            }
        }
    }

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
    fn paging_through_an_overlay_sees_every_live_key_once() {
        let mut base = MemStore::new();
        for i in 0..200u32 {
            base.put(format!("p/{i:04}").as_bytes(), vec![]);
        }
        base.put(b"q/0", vec![]);
        let mut overlay = Overlay::new();
        let mut view = overlay.over(&base);
        for i in (0..200u32).filter(|i| i % 3 == 0 || (64..140).contains(i)) {
            view.delete(format!("p/{i:04}").as_bytes());
        }
        view.put(b"p/0064x", vec![]);
        let mut walked = Vec::new();
        for_each_key(&view, b"p/", |k| {
            walked.push(k.to_vec());
            Ok(true)
        })
        .unwrap();
        let all: Vec<Vec<u8>> = view
            .scan_prefix(b"p/")
            .unwrap()
            .into_iter()
            .map(|kv| kv.0)
            .collect();
        assert_eq!(walked, all);
        assert!(all.contains(&b"p/0064x".to_vec()));
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
