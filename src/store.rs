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
//! So [`RocksStore`] is a read-only [`Store`] to the core: the core writes only into in-memory
//! buffers ([`StoreMut`](rallypoint_core::store::StoreMut)), and [`RocksStore::apply`] is the
//! one way to write RocksDB. Its error is the caller's to handle: no write is dropped.
//!
//! The index keyspaces of the core ([`INDEX_PREFIXES`]) are also mirrored in memory: they are
//! scanned on every event and churn (keys come and go as work opens and closes), and RocksDB
//! iterators over freshly deleted keys must step over every tombstone. Their size follows the
//! open work, not the history, so the mirror stays small while the entities stay on disk.
//!
//! Values read or written lately (the open requests, incidents and offers every matching round
//! reads) are kept in a bounded [`HotValues`] cache: a hash lookup instead of a search of the
//! memtables and files for each of the dozen reads an event makes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use rallypoint_core::state::INDEX_PREFIXES;
use rallypoint_core::store::{KeyValue, MemStore, Store, StoreError, StoreMut};
use rocksdb::{
    BlockBasedOptions, Cache, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

/// Where bookkeeping lives: below every key of the core (which are printable ASCII).
const CHANGELOG_NEXT: &[u8] = b"\x00changelog_next";

pub struct RocksStore {
    db: DB,
    /// Exactly the committed keys under [`INDEX_PREFIXES`].
    indexes: MemStore,
    hot: RefCell<HotValues>,
}

/// Committed values of recently read or written keys, in two generations of at most half
/// [`HOT_VALUE_BYTES`] each: new entries go to the young one; when it is full it becomes the
/// old one and the previous old one is dropped; a hit in the old one moves to the young one.
/// So what is used keeps its place, and the cache never holds more than its bound.
#[derive(Default)]
struct HotValues {
    young: HashMap<Vec<u8>, Vec<u8>>,
    old: HashMap<Vec<u8>, Vec<u8>>,
    young_bytes: usize,
    /// What the old generation counted when it turned old.
    old_bytes: usize,
}

/// The bound of [`HotValues`], taken from what the block cache would otherwise hold.
const HOT_VALUE_BYTES: usize = 32 << 20;
/// What a cache entry costs besides its key and value (hash table slot, two allocations).
const ENTRY_OVERHEAD: usize = 64;

impl HotValues {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        self.insert(key, value.clone());
        Some(value)
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let size = key.len() + value.len() + ENTRY_OVERHEAD;
        if self.young_bytes + size > HOT_VALUE_BYTES / 2 {
            self.old = std::mem::take(&mut self.young);
            self.old_bytes = std::mem::take(&mut self.young_bytes);
        }
        // A replaced value stays counted until the next turn: the bound holds regardless.
        self.young_bytes += size;
        self.young.insert(key, value);
    }

    /// An upper bound of what the entries cost, kept as they come: what left a generation
    /// stays counted until it turns. For the metrics, read every few seconds.
    fn counted(&self) -> usize {
        self.young_bytes + self.old_bytes
    }

    /// What the entries cost, about, entry by entry.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.young
            .iter()
            .chain(self.old.iter())
            .map(|(k, v)| k.len() + v.len() + ENTRY_OVERHEAD)
            .sum()
    }

    fn forget(&mut self, key: &[u8]) {
        self.young.remove(key);
        self.old.remove(key);
    }
}

fn is_index(key: &[u8]) -> bool {
    INDEX_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.into_string())
}

/// The block cache's bound: data, index and filter blocks share it. With [`HOT_VALUE_BYTES`],
/// 40 MiB of caches. The hot values serve the reads that repeat; blocks are read mostly by
/// lookups of keys past the bloom filters, so a small block cache costs little, and keeps the
/// peak memory from growing with the state.
const BLOCK_CACHE_BYTES: usize = 8 << 20;
const WRITE_BUFFER_BYTES: usize = 16 << 20;

impl RocksStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        // Most reads ask for a key that does not exist yet (a new indicator, a new event id):
        // bloom filters answer those without touching the files. The table readers hold the
        // filters (about 1.3 bytes per key); data blocks share a bounded cache. Filters in the
        // block cache were evicted and re-read from disk on every lookup as the state grew.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES));
        opts.set_block_based_table_factory(&table);
        // Two memtables of this size at most: with the block cache, the bound on memory.
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
        // The same for the memtables: a new event id is looked up on every event, and missed.
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.02);
        opts.set_max_write_buffer_number(2);
        let db = DB::open(&opts, dir).map_err(backend)?;
        let mut store = Self {
            db,
            indexes: MemStore::new(),
            hot: RefCell::new(HotValues::default()),
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

    /// Empties the store: every key, the changelog position (back to 0) and the caches, so
    /// that a restore rebuilds it from the changelog's start. For a state found ahead of what
    /// the changelog committed (see `kafka::coordinator::Coordinator::verify_state`).
    pub fn clear(&mut self) -> Result<(), StoreError> {
        // Every key sorts below this one: the core's start with printable ASCII, the
        // bookkeeping with a NUL.
        let end = [0xffu8; 1];
        let mut batch = WriteBatch::default();
        batch.delete_range(&b""[..], &end[..]);
        self.db
            .write(batch)
            .map_err(|e| StoreError::Write(e.into_string()))?;
        self.db.compact_range(None::<&[u8]>, None::<&[u8]>);
        self.indexes = MemStore::new();
        *self.hot.get_mut() = HotValues::default();
        Ok(())
    }

    /// Applies committed changes and the changelog position they reach, atomically: the only
    /// way this store is written. On an error nothing was written (RocksDB writes a batch whole
    /// or not at all), and the caches still match what is on disk.
    pub fn apply(
        &mut self,
        changes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
        changelog_next: i64,
    ) -> Result<(), StoreError> {
        if crate::fault::fail("store_write") {
            return Err(StoreError::Write(format!(
                "injected fault (fail.store_write) at changelog offset {changelog_next}"
            )));
        }
        let mut batch = WriteBatch::default();
        let changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = changes.into_iter().collect();
        for (k, v) in &changes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        batch.put(CHANGELOG_NEXT, changelog_next.to_be_bytes());
        // No fsync: a batch lost in a power cut is re-read from the changelog.
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| StoreError::Write(e.into_string()))?;
        let hot = self.hot.get_mut();
        for (k, v) in changes {
            match v {
                Some(v) if is_index(&k) => self.indexes.put(&k, v),
                None if is_index(&k) => self.indexes.delete(&k),
                Some(v) => hot.insert(k, v),
                None => hot.forget(&k),
            }
        }
        Ok(())
    }

    /// RocksDB's own figures about this store, for metrics. Cheap: each is a property RocksDB
    /// keeps up to date or sums over its memtables and file list, with no read of the data.
    pub fn figures(&self) -> StoreFigures {
        let int = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        let stalls = self
            .db
            .property_value("rocksdb.cf-write-stall-stats")
            .ok()
            .flatten()
            .unwrap_or_default();
        StoreFigures {
            estimated_keys: int("rocksdb.estimate-num-keys"),
            block_cache_usage_bytes: int("rocksdb.block-cache-usage"),
            pending_compaction_bytes: int("rocksdb.estimate-pending-compaction-bytes"),
            live_sst_bytes: int("rocksdb.live-sst-files-size"),
            write_stopped: int("rocksdb.is-write-stopped") != 0,
            delayed_write_rate: int("rocksdb.actual-delayed-write-rate"),
            write_delays: stall_count(&stalls, "total-delays"),
            write_stops: stall_count(&stalls, "total-stops"),
            memtable_bytes: int("rocksdb.cur-size-all-mem-tables"),
            table_readers_bytes: int("rocksdb.estimate-table-readers-mem"),
            index_keys: self.indexes.len() as u64,
            hot_value_bytes: self.hot.borrow().counted() as u64,
        }
    }

    /// Writes the memtable to an SST file. The WAL makes this unnecessary for durability; it
    /// serves tests that need data on disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)
    }
}

/// What RocksDB says about a store at one moment (see [`RocksStore::figures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// RocksDB's estimate of live keys (deletes and overwrites not yet compacted may count).
    pub estimated_keys: u64,
    /// Bytes held in the block cache.
    pub block_cache_usage_bytes: u64,
    /// Bytes compaction must rewrite to bring every level under its target size. RocksDB
    /// slows writes down, then stops them, when this grows past its soft and hard limits.
    pub pending_compaction_bytes: u64,
    /// Bytes of the SST files of the current version.
    pub live_sst_bytes: u64,
    /// RocksDB stops writes now (too many L0 files, memtables or pending compaction bytes).
    pub write_stopped: bool,
    /// The rate RocksDB limits writes to, in bytes per second; 0 when writes are not delayed.
    pub delayed_write_rate: u64,
    /// Times writes were delayed since the store was opened.
    pub write_delays: u64,
    /// Times writes were stopped since the store was opened.
    pub write_stops: u64,
    /// Bytes of the memtables (at most two of 16 MiB).
    pub memtable_bytes: u64,
    /// Bytes the SST files' readers hold outside the block cache (bloom filters, indexes):
    /// memory that grows with the state on disk.
    pub table_readers_bytes: u64,
    /// Keys of the open-work indexes, kept in memory: they grow with the open work.
    pub index_keys: u64,
    /// Bytes of the hot committed values cache (bounded).
    pub hot_value_bytes: u64,
}

/// `key`'s count in the `rocksdb.cf-write-stall-stats` text, which reads
/// `Write Stall (count): <key>: <n>, <key>: <n>, ...`; 0 when absent.
fn stall_count(stats: &str, key: &str) -> u64 {
    stats
        .split([',', '\n'])
        .filter_map(|item| item.rsplit_once(':'))
        // The first item still carries the title before its key.
        .find(|(k, _)| k.rsplit(':').next().is_some_and(|k| k.trim() == key))
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

impl Store for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if is_index(key) {
            return self.indexes.get(key);
        }
        if let Some(v) = self.hot.borrow_mut().get(key) {
            return Ok(Some(v));
        }
        let value = self.db.get(key).map_err(backend)?;
        if let Some(v) = &value {
            self.hot.borrow_mut().insert(key.to_vec(), v.clone());
        }
        Ok(value)
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
    fn a_cleared_store_holds_nothing_and_restores_from_the_changelog_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksStore::open(dir.path()).unwrap();
        let index = [INDEX_PREFIXES[0], b"x"].concat();
        store
            .apply(
                [
                    (b"r/1".to_vec(), Some(b"one".to_vec())),
                    (index.clone(), Some(b"i".to_vec())),
                ],
                42,
            )
            .unwrap();
        assert_eq!(store.get(b"r/1").unwrap().as_deref(), Some(&b"one"[..]));
        store.clear().unwrap();
        let empty = |store: &RocksStore| {
            assert_eq!(store.get(b"r/1").unwrap(), None);
            assert_eq!(store.get(&index).unwrap(), None);
            assert!(store.scan_prefix(INDEX_PREFIXES[0]).unwrap().is_empty());
            assert_eq!(store.changelog_next().unwrap(), 0);
        };
        empty(&store);
        drop(store);
        let mut store = RocksStore::open(dir.path()).unwrap();
        empty(&store);
        store
            .apply([(b"r/1".to_vec(), Some(b"again".to_vec()))], 1)
            .unwrap();
        assert_eq!(store.get(b"r/1").unwrap().as_deref(), Some(&b"again"[..]));
    }

    #[test]
    fn reads_see_the_latest_committed_value_through_the_hot_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksStore::open(dir.path()).unwrap();
        store
            .apply([(b"r/1".to_vec(), Some(b"one".to_vec()))], 1)
            .unwrap();
        assert_eq!(store.get(b"r/1").unwrap().as_deref(), Some(&b"one"[..]));
        store
            .apply([(b"r/1".to_vec(), Some(b"uno".to_vec()))], 2)
            .unwrap();
        assert_eq!(store.get(b"r/1").unwrap().as_deref(), Some(&b"uno"[..]));
        store.apply([(b"r/1".to_vec(), None)], 3).unwrap();
        assert_eq!(store.get(b"r/1").unwrap(), None);
        // After a reopen (an empty cache), from RocksDB.
        store
            .apply([(b"r/2".to_vec(), Some(b"two".to_vec()))], 4)
            .unwrap();
        drop(store);
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.get(b"r/2").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(store.get(b"r/1").unwrap(), None);
    }

    #[test]
    fn the_hot_cache_keeps_its_bound_and_what_is_used() {
        let mut hot = HotValues::default();
        let value = vec![7u8; 4096];
        hot.insert(b"kept".to_vec(), value.clone());
        for i in 0..40_000u32 {
            hot.insert(format!("k/{i}").into_bytes(), value.clone());
            // Used all along: it moves to the young generation before the old one goes.
            assert!(hot.get(b"kept").is_some(), "lost after {i} inserts");
            if i % 500 != 0 {
                continue;
            }
            let bytes = hot.bytes();
            assert!(bytes <= HOT_VALUE_BYTES, "{bytes} bytes held");
        }
        // 160 MiB went in: the first ones are gone.
        assert!(hot.get(b"k/0").is_none());
    }

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
    fn stall_counts_are_read_from_rocksdbs_write_stall_text() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let text = store
            .db
            .property_value("rocksdb.cf-write-stall-stats")
            .unwrap()
            .unwrap();
        assert!(
            text.contains("total-delays: 0") && text.contains("total-stops: 0"),
            "{text}"
        );
        let text = "Write Stall (count): total-delays: 7, cf-l0-file-count-limit-stops-with-\
                    ongoing-compaction: 2, total-stops: 3\n";
        assert_eq!(stall_count(text, "total-delays"), 7);
        assert_eq!(stall_count(text, "total-stops"), 3);
        assert_eq!(stall_count(text, "nothing"), 0);
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
