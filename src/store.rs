//! RocksDB state: a cache of the changelog topic, never ahead of what Kafka committed.
//!
//! The coordinator writes a transaction's state changes into an in-memory
//! [`Overlay`](rallypoint_core::store::Overlay), commits the Kafka transaction (outputs,
//! changelog records, journal offset), and only then applies the overlay here in one
//! `WriteBatch` that also records the next changelog offset it reflects. So a crash before the
//! commit leaves RocksDB untouched, and a crash after it leaves RocksDB behind a known offset
//! that the changelog tail brings up to date. Nothing aborted ever reaches RocksDB, and no wipe
//! is needed after an unclean stop.
//!
//! The index keyspaces of the core ([`INDEX_PREFIXES`]) are also mirrored in memory: they are
//! scanned on every event and churn (keys come and go as work opens and closes), and RocksDB
//! iterators over freshly deleted keys must step over every tombstone. Their size follows the
//! open work, not the history, so the mirror stays small while the entities stay on disk.

use std::path::Path;

use rallypoint_core::state::INDEX_PREFIXES;
use rallypoint_core::store::{KeyValue, MemStore, Store, StoreError};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

/// Where bookkeeping lives: below every key of the core (which are printable ASCII).
const CHANGELOG_NEXT: &[u8] = b"\x00changelog_next";

pub struct RocksStore {
    db: DB,
    /// Exactly the committed keys under [`INDEX_PREFIXES`].
    indexes: MemStore,
}

fn is_index(key: &[u8]) -> bool {
    INDEX_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.into_string())
}

impl RocksStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        let db = DB::open(&opts, dir).map_err(backend)?;
        let mut store = Self {
            db,
            indexes: MemStore::new(),
        };
        for prefix in INDEX_PREFIXES {
            for (k, v) in store.scan_disk(prefix, None, usize::MAX)? {
                store.indexes.put(&k, v);
            }
        }
        Ok(store)
    }

    /// Up to `limit` keys on disk under `prefix` and after `after`, ascending.
    fn scan_disk(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let start = match after {
            Some(a) if a >= prefix => a,
            _ => prefix,
        };
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(prefix) || out.len() == limit {
                break;
            }
            if Some(&*k) != after {
                out.push((k.into_vec(), v.into_vec()));
            }
        }
        Ok(out)
    }

    /// The changelog offset to resume restoring from: everything before it is in this store.
    pub fn changelog_next(&self) -> Result<i64, StoreError> {
        match self.db.get(CHANGELOG_NEXT).map_err(backend)? {
            Some(v) => v
                .as_slice()
                .try_into()
                .map(i64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: "changelog_next".into(),
                    detail: "not 8 bytes".into(),
                }),
            None => Ok(0),
        }
    }

    /// Applies committed changes and the changelog position they reach, atomically.
    pub fn apply(
        &mut self,
        changes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        changelog_next: i64,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mut index_changes = Vec::new();
        for (k, v) in changes {
            match &v {
                Some(v) => batch.put(&k, v),
                None => batch.delete(&k),
            }
            if is_index(&k) {
                index_changes.push((k, v));
            }
        }
        batch.put(CHANGELOG_NEXT, changelog_next.to_be_bytes());
        // No fsync: a batch lost in a power cut is re-read from the changelog.
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(batch, &opts).map_err(backend)?;
        for (k, v) in index_changes {
            match v {
                Some(v) => self.indexes.put(&k, v),
                None => self.indexes.delete(&k),
            }
        }
        Ok(())
    }

    /// RocksDB's own estimate of live keys, for metrics.
    pub fn estimated_keys(&self) -> u64 {
        self.db
            .property_int_value("rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}

impl Store for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if is_index(key) {
            return self.indexes.get(key);
        }
        self.db.get(key).map_err(backend)
    }

    /// Direct writes bypass the overlay and the changelog: only for tests of this store.
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        let _ = self.apply(
            [(key.to_vec(), Some(value))],
            self.changelog_next().unwrap_or(0),
        );
    }

    fn delete(&mut self, key: &[u8]) {
        let _ = self.apply([(key.to_vec(), None)], self.changelog_next().unwrap_or(0));
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_page(prefix, None, usize::MAX)
    }

    fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if is_index(prefix) {
            return self.indexes.scan_page(prefix, after, limit);
        }
        self.scan_disk(prefix, after, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rallypoint_core::store::Overlay;

    #[test]
    fn overlay_changes_reach_rocksdb_only_when_applied_with_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksStore::open(dir.path()).unwrap();
        let mut overlay = Overlay::new();
        {
            let mut view = overlay.over(&store);
            view.put(b"k/1", b"one".to_vec());
            view.put(b"k/2", b"two".to_vec());
            assert_eq!(view.scan_prefix(b"k/").unwrap().len(), 2);
        }
        assert_eq!(store.get(b"k/1").unwrap(), None, "nothing before apply");
        store.apply(overlay.drain(), 17).unwrap();
        drop(store);
        let mut store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.get(b"k/2").unwrap(), Some(b"two".to_vec()));
        assert_eq!(store.changelog_next().unwrap(), 17);
        let mut overlay = Overlay::new();
        overlay.over(&store).delete(b"k/1");
        store.apply(overlay.drain(), 18).unwrap();
        assert_eq!(
            store.scan_prefix(b"k/").unwrap(),
            vec![(b"k/2".to_vec(), b"two".to_vec())]
        );
    }

    #[test]
    fn index_keys_are_served_from_memory_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksStore::open(dir.path()).unwrap();
        store
            .apply(
                vec![
                    (b"w/x/1".to_vec(), Some(vec![1])),
                    (b"w/x/2".to_vec(), Some(vec![2])),
                    (b"i/9".to_vec(), Some(vec![9])),
                ],
                3,
            )
            .unwrap();
        store.apply(vec![(b"w/x/1".to_vec(), None)], 4).unwrap();
        assert_eq!(store.indexes.len(), 1);
        drop(store);
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(
            store.scan_page(b"w/", None, 10).unwrap(),
            vec![(b"w/x/2".to_vec(), vec![2])]
        );
        assert_eq!(store.get(b"i/9").unwrap(), Some(vec![9]));
        assert_eq!(store.indexes.len(), 1, "entities are not mirrored");
    }

    #[test]
    fn bookkeeping_keys_stay_out_of_core_scans() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksStore::open(dir.path()).unwrap();
        store.apply(Vec::new(), 5).unwrap();
        assert!(store
            .scan_prefix(b"")
            .unwrap()
            .iter()
            .all(|(k, _)| k[0] == 0));
        assert!(store.scan_prefix(b"k").unwrap().is_empty());
    }
}
