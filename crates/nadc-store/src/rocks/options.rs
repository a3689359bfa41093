//! How the store's column families are tuned, and how a store is opened.

use super::*;

/// How to open a [`RocksStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Sync the write-ahead log before acknowledging (default true). Only
    /// benchmarks that measure the engine alone turn this off.
    pub sync: bool,
    /// Block cache size in bytes shared by all column families.
    pub block_cache_bytes: usize,
    /// Appends that may queue for the writer before callers block.
    pub queue_depth: usize,
    /// The write-ahead log's cap in bytes: past it, the column families
    /// holding the oldest log file are flushed so it can go. Bounds what a
    /// restart after a crash replays (default 512 MiB).
    pub max_wal_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sync: true,
            block_cache_bytes: 256 << 20,
            queue_depth: 256,
            max_wal_bytes: 512 << 20,
        }
    }
}

/// zstd level for the bottom level, where nearly all data settles.
pub(super) const BOTTOM_ZSTD_LEVEL: i32 = 6;
/// Size of the zstd dictionary trained per bottom-level table file: shared
/// field names, force codes, camera ids and image reference prefixes are
/// then coded once per file instead of once per block.
pub(super) const BOTTOM_ZSTD_DICT_BYTES: i32 = 16 * 1024;

pub(super) fn cf_options(name: &str, cache: &rocksdb::Cache) -> Options {
    let mut o = Options::default();
    // Upper levels turn over quickly: cheap LZ4. The bottom level holds
    // the data for its retention: zstd with a dictionary (measured on 1 M
    // generated reads, fully compacted: 107 B per read with default zstd
    // and 4 KiB record blocks, about 80 B with these settings; BENCHMARKS.md).
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    o.set_bottommost_compression_options(-14, BOTTOM_ZSTD_LEVEL, 0, BOTTOM_ZSTD_DICT_BYTES, true);
    o.set_bottommost_zstd_max_train_bytes(BOTTOM_ZSTD_DICT_BYTES * 100, true);
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_cache_index_and_filter_blocks(true);
    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
    t.set_format_version(6);
    match name {
        // Records: read in ranges (an area's, a VRM's), or fetched by keys
        // taken from an index, which always find their key: a bloom filter
        // would only cost space. 16 KiB blocks compress records far better
        // than 4 KiB.
        CF_GEO | CF_VRM | LEGACY_READS => t.set_block_size(16 * 1024),
        // Point lookups that often miss (a new read's de-duplication key):
        // whole-key bloom filters.
        CF_DEDUP | CF_CAMERAS | CF_META | CF_ALERT_STATE => t.set_bloom_filter(10.0, false),
        // Range scans: bigger blocks compress better.
        _ => t.set_block_size(32 * 1024),
    }
    o.set_block_based_table_factory(&t);
    if name == CF_VRM_DICT {
        // A VRM's capture days: ingest adds a day with a blind merge, so a
        // read of a VRM already in the dictionary costs no lookup.
        o.set_merge_operator_associative("nadc-days-union", union_days);
    }
    o
}

/// The VRM dictionary's merge: the union of day sets (each a value of
/// [`keys::encode_days`], or a [`keys::day_operand`]). `None` (a
/// malformed operand) makes RocksDB report corruption.
fn union_days(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let mut days = existing.map_or(Some(Default::default()), keys::decode_days)?;
    for op in operands.iter() {
        days.extend(keys::decode_days(op)?);
    }
    Some(keys::encode_days(&days))
}
