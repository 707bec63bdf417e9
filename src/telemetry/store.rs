//! RocksDB's figures about a state store as gauges and counters, labelled by store name. The
//! owner of the store reads [`StoreFigures`] every few seconds and hands them to
//! [`StoreGauges::observe`]; nothing here touches RocksDB.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::store::StoreFigures;

#[derive(Clone)]
pub struct StoreGauges {
    keys: IntGaugeVec,
    block_cache: IntGaugeVec,
    pending_compaction: IntGaugeVec,
    live_sst: IntGaugeVec,
    write_stopped: IntGaugeVec,
    delayed_write_rate: IntGaugeVec,
    write_stalls: IntCounterVec,
    memtables: IntGaugeVec,
    table_readers: IntGaugeVec,
    index_keys: IntGaugeVec,
    hot_values: IntGaugeVec,
}

fn gauge(reg: &Registry, name: &str, help: &str) -> prometheus::Result<IntGaugeVec> {
    super::register(reg, IntGaugeVec::new(Opts::new(name, help), &["store"]))
}

impl StoreGauges {
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        let write_stalls = super::register(
            reg,
            IntCounterVec::new(
                Opts::new(
                    "rallypoint_rocksdb_write_stalls_total",
                    "Times RocksDB delayed or stopped writes to the state store, by condition.",
                ),
                &["store", "condition"],
            ),
        )?;
        Ok(Self {
            keys: gauge(
                reg,
                "rallypoint_state_keys",
                "Estimated live keys in the RocksDB state store.",
            )?,
            block_cache: gauge(
                reg,
                "rallypoint_rocksdb_block_cache_usage_bytes",
                "Bytes held in the state store's RocksDB block cache.",
            )?,
            pending_compaction: gauge(
                reg,
                "rallypoint_rocksdb_pending_compaction_bytes",
                "Bytes RocksDB estimates compaction must rewrite; writes slow down, then stop, \
                 as this grows.",
            )?,
            live_sst: gauge(
                reg,
                "rallypoint_rocksdb_live_sst_bytes",
                "Bytes of the state store's live SST files.",
            )?,
            write_stopped: gauge(
                reg,
                "rallypoint_rocksdb_write_stopped",
                "1 while RocksDB stops writes to the state store, else 0.",
            )?,
            delayed_write_rate: gauge(
                reg,
                "rallypoint_rocksdb_delayed_write_rate_bytes_per_second",
                "The rate RocksDB limits writes to while it delays them; 0 when it does not.",
            )?,
            write_stalls,
            memtables: gauge(
                reg,
                "rallypoint_rocksdb_memtable_bytes",
                "Bytes of the state store's memtables (bounded).",
            )?,
            table_readers: gauge(
                reg,
                "rallypoint_rocksdb_table_readers_bytes",
                "Bytes RocksDB's SST readers hold outside the block cache (bloom filters, \
                 indexes); grows with the state on disk.",
            )?,
            index_keys: gauge(
                reg,
                "rallypoint_state_index_keys",
                "Keys of the open-work indexes (waiting needs, free offers, deadlines, \
                 schedules), kept in memory.",
            )?,
            hot_values: gauge(
                reg,
                "rallypoint_state_hot_cache_bytes",
                "Bytes of the cache of recently used committed state values (bounded).",
            )?,
        })
    }

    /// Sets every figure of `store`. The stall counts are RocksDB's own since the store was
    /// opened, and a store is opened once per process, so the counters follow them exactly.
    pub fn observe(&self, store: &str, f: &StoreFigures) {
        let set = |g: &IntGaugeVec, v: u64| {
            g.with_label_values(&[store])
                .set(i64::try_from(v).unwrap_or(i64::MAX))
        };
        set(&self.keys, f.estimated_keys);
        set(&self.block_cache, f.block_cache_usage_bytes);
        set(&self.pending_compaction, f.pending_compaction_bytes);
        set(&self.live_sst, f.live_sst_bytes);
        set(&self.write_stopped, u64::from(f.write_stopped));
        set(&self.delayed_write_rate, f.delayed_write_rate);
        set(&self.memtables, f.memtable_bytes);
        set(&self.table_readers, f.table_readers_bytes);
        set(&self.index_keys, f.index_keys);
        set(&self.hot_values, f.hot_value_bytes);
        for (condition, count) in [("delayed", f.write_delays), ("stopped", f.write_stops)] {
            let c = self.write_stalls.with_label_values(&[store, condition]);
            c.inc_by(count.saturating_sub(c.get()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RocksStore;
    use rallypoint_core::store::Store;

    /// The value of `name{store="coordinator", ...}` in `reg`, if it is there.
    fn value(reg: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = reg.gather().into_iter().find(|f| f.name() == name)?;
        let metric = family.get_metric().iter().find(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })?;
        Some(match family.get_field_type() {
            prometheus::proto::MetricType::COUNTER => metric.get_counter().get_value(),
            _ => metric.get_gauge().get_value(),
        })
    }

    fn written_store(dir: &std::path::Path, keys: usize) -> RocksStore {
        let mut store = RocksStore::open(dir).unwrap();
        let changes = (0..keys).map(|i| (format!("k/{i:06}").into_bytes(), Some(vec![7u8; 100])));
        store.apply(changes, keys as i64).unwrap();
        store
    }

    #[test]
    fn the_figures_of_a_written_store_are_present_and_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let store = written_store(dir.path(), 5_000);
        store.flush().unwrap();
        // Reopened, with the hot values cache empty: reads from an SST file go through the
        // block cache (and then into the hot cache).
        drop(store);
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.get(b"k/004321").unwrap(), Some(vec![7u8; 100]));
        let reg = Registry::new();
        let gauges = StoreGauges::register(&reg).unwrap();
        gauges.observe("coordinator", &store.figures());
        let of = |name| value(&reg, name, &[("store", "coordinator")]);

        let keys = of("rallypoint_state_keys").unwrap();
        assert!((4_000.0..=6_000.0).contains(&keys), "{keys} keys");
        let sst = of("rallypoint_rocksdb_live_sst_bytes").unwrap();
        // 5,000 values of 100 bytes, compressed (they repeat) but not to nothing.
        assert!((1_000.0..1_000_000.0).contains(&sst), "{sst} SST bytes");
        let cache = of("rallypoint_rocksdb_block_cache_usage_bytes").unwrap();
        assert!(cache > 0.0 && cache < 64.0 * 1024.0 * 1024.0, "{cache}");
        assert_eq!(of("rallypoint_rocksdb_pending_compaction_bytes"), Some(0.0));
        let readers = of("rallypoint_rocksdb_table_readers_bytes").unwrap();
        assert!(readers > 0.0 && readers < 1_000_000.0, "{readers}");
        let hot = of("rallypoint_state_hot_cache_bytes").unwrap();
        assert!(
            (100.0..10_000.0).contains(&hot),
            "one value read: {hot} bytes"
        );
        assert_eq!(of("rallypoint_state_index_keys"), Some(0.0));
        assert!(of("rallypoint_rocksdb_memtable_bytes").is_some());
        assert_eq!(of("rallypoint_rocksdb_write_stopped"), Some(0.0));
        assert_eq!(
            of("rallypoint_rocksdb_delayed_write_rate_bytes_per_second"),
            Some(0.0)
        );
        for condition in ["delayed", "stopped"] {
            let labels = [("store", "coordinator"), ("condition", condition)];
            assert_eq!(
                value(&reg, "rallypoint_rocksdb_write_stalls_total", &labels),
                Some(0.0),
                "{condition}"
            );
        }
    }

    #[test]
    fn unflushed_writes_count_as_keys_before_any_sst_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let store = written_store(dir.path(), 300);
        let figures = store.figures();
        assert_eq!(
            figures.estimated_keys, 301,
            "300 keys and the changelog offset"
        );
        assert_eq!(figures.live_sst_bytes, 0);
    }

    #[test]
    fn stall_counters_follow_rocksdb_counts_without_double_counting() {
        let reg = Registry::new();
        let gauges = StoreGauges::register(&reg).unwrap();
        let mut f = StoreFigures {
            write_delays: 3,
            ..StoreFigures::default()
        };
        gauges.observe("coordinator", &f);
        gauges.observe("coordinator", &f);
        f.write_delays = 5;
        f.write_stops = 1;
        f.write_stopped = true;
        gauges.observe("coordinator", &f);
        let stalls = |condition| {
            let labels = [("store", "coordinator"), ("condition", condition)];
            value(&reg, "rallypoint_rocksdb_write_stalls_total", &labels)
        };
        assert_eq!(stalls("delayed"), Some(5.0));
        assert_eq!(stalls("stopped"), Some(1.0));
        let stopped = value(
            &reg,
            "rallypoint_rocksdb_write_stopped",
            &[("store", "coordinator")],
        );
        assert_eq!(stopped, Some(1.0));
    }
}
