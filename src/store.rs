//! RocksDB state: a cache of the changelog topic, never ahead of what Kafka committed.
//!
//! The coordinator writes a transaction's state changes into an in-memory
//! [`Overlay`](rallypoint_core::store::Overlay), commits the Kafka transaction (outputs,
//! changelog records, journal offset), and only then applies the overlay here in one
//! `WriteBatch` that also records the next changelog offset it reflects. So a crash before the
//! commit leaves RocksDB untouched, and a crash after it leaves RocksDB behind a known offset
//! that the changelog tail brings up to date. Nothing aborted ever reaches RocksDB, and no wipe
//! is needed after an unclean stop.

use std::path::Path;

use rallypoint_core::store::{KeyValue, Store, StoreError};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

/// Where bookkeeping lives: below every key of the core (which are printable ASCII).
const CHANGELOG_NEXT: &[u8] = b"\x00changelog_next";

pub struct RocksStore {
    db: DB,
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
        Ok(Self { db })
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
        &self,
        changes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        changelog_next: i64,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (k, v) in changes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        batch.put(CHANGELOG_NEXT, changelog_next.to_be_bytes());
        // No fsync: a batch lost in a power cut is re-read from the changelog.
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(batch, &opts).map_err(backend)
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
        self.db.get(key).map_err(backend)
    }

    /// Direct writes bypass the overlay: only for tests of this store.
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        let _ = self.db.put(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        let _ = self.db.delete(key);
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let start = match after {
            Some(a) if a >= prefix => a,
            _ => prefix,
        };
        let mut out = Vec::with_capacity(limit);
        for item in self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(prefix) || out.len() == limit {
                break;
            }
            if Some(&*k) == after {
                continue;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rallypoint_core::store::Overlay;

    #[test]
    fn overlay_changes_reach_rocksdb_only_when_applied_with_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
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
        let store = RocksStore::open(dir.path()).unwrap();
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
    fn bookkeeping_keys_stay_out_of_core_scans() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        store.apply(Vec::new(), 5).unwrap();
        assert!(store
            .scan_prefix(b"")
            .unwrap()
            .iter()
            .all(|(k, _)| k[0] == 0));
        assert!(store.scan_prefix(b"k").unwrap().is_empty());
    }
}
