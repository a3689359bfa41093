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
    /// How long after a day's end (UTC) its reads settle (default one
    /// hour): see [`RocksStore::settle_day`]. A read arriving later still
    /// lands, and settles with the next pass.
    pub settle_after: std::time::Duration,
    /// How long a day must have taken no read before it settles (default
    /// one minute): a day being loaded in bulk settles once, when loaded.
    pub settle_quiet: std::time::Duration,
    /// Settle days in a background thread (default true). Off, days
    /// settle only when asked ([`RocksStore::settle_open_days`]).
    pub settle_in_background: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sync: true,
            block_cache_bytes: 256 << 20,
            queue_depth: 256,
            max_wal_bytes: 512 << 20,
            settle_after: std::time::Duration::from_secs(3600),
            settle_quiet: std::time::Duration::from_secs(60),
            settle_in_background: true,
        }
    }
}

/// zstd level for the bottom level, where nearly all data settles.
pub(super) const BOTTOM_ZSTD_LEVEL: i32 = 6;
/// zstd level for a settled day's records, written once. (Measured on
/// 750 k generated reads: level 9 with 32 KiB blocks, or with 64 keys
/// between restart points, saved under 2 % of their bytes; not worth
/// the CPU, or the longer block reads of a lookup.)
pub(super) const SETTLED_ZSTD_LEVEL: i32 = BOTTOM_ZSTD_LEVEL;
/// Block size of a settled day's records: as the bottom level's.
pub(super) const SETTLED_BLOCK_BYTES: usize = 16 * 1024;
/// Size of the zstd dictionary trained per bottom-level table file: shared
/// field names, force codes, camera ids and image reference prefixes are
/// then coded once per file instead of once per block.
pub(super) const BOTTOM_ZSTD_DICT_BYTES: i32 = 16 * 1024;

pub(super) fn cf_options(name: &str, cache: &rocksdb::Cache) -> Options {
    let mut o = Options::default();
    if matches!(name, CF_GEO_OPEN | CF_VRM_OPEN) {
        // The open form: a day or two, rewritten by compaction while the
        // days take reads, then moved out whole. LZ4 at every level; the
        // zstd of the settled form is spent once, when a day settles.
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_bottommost_compression_type(DBCompressionType::Lz4);
        o.set_write_buffer_size(128 << 20);
        // A settled day's open copies are deleted with a range delete;
        // files the newer days' compactions never reach are compacted
        // within this, so their space comes back.
        o.set_periodic_compaction_seconds(6 * 3600);
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(cache);
        t.set_cache_index_and_filter_blocks(true);
        t.set_pin_l0_filter_and_index_blocks_in_cache(true);
        t.set_format_version(6);
        t.set_block_size(16 * 1024);
        o.set_block_based_table_factory(&t);
        return o;
    }
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

/// Options of the table files a settling day is written to, for the
/// settled column family `name`: its bottom level's compression (zstd with
/// a trained dictionary) and block size, so the files are as a full
/// compaction would have written them.
pub(super) fn settled_table_options(name: &str) -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_compression_options(-14, SETTLED_ZSTD_LEVEL, 0, BOTTOM_ZSTD_DICT_BYTES);
    o.set_zstd_max_train_bytes(BOTTOM_ZSTD_DICT_BYTES * 100);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    o.set_bottommost_compression_options(-14, SETTLED_ZSTD_LEVEL, 0, BOTTOM_ZSTD_DICT_BYTES, true);
    o.set_bottommost_zstd_max_train_bytes(BOTTOM_ZSTD_DICT_BYTES * 100, true);
    let mut t = BlockBasedOptions::default();
    t.set_format_version(6);
    if matches!(name, CF_GEO | CF_VRM) {
        t.set_block_size(SETTLED_BLOCK_BYTES);
    }
    o.set_block_based_table_factory(&t);
    o
}
