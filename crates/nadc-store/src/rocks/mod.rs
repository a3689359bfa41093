//! The RocksDB implementation of [`Store`].
//!
//! Writes go through one writer thread that commits in groups: it takes the
//! first waiting append (its reads already encoded and keyed by the caller,
//! see `prepare`), drains whatever else is queued (up to a cap), checks
//! every read against the de-duplication column family and against the rest
//! of the group, and writes records and all index entries in one
//! `WriteBatch` with the write-ahead log synced. Many concurrent ingest
//! streams therefore share one fsync, and the check-then-write of
//! de-duplication cannot race because only this thread writes reads.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use nadc_core::access::{Authorisation, Revocation};
use nadc_core::alert::{Alert, AlertState};
use nadc_core::audit::{AuditEntry, ChainedEntry, Digest, GENESIS, Outcome};
use nadc_core::hotlist::{Hotlist, HotlistEntry, HotlistId};
use nadc_core::time::MS_PER_DAY;
use nadc_core::vrm_match::ConfusableGroups;
use nadc_core::{Camera, CellRange, ForceId, StoredRead, Timestamp, Vrm};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Options, ReadOptions,
    WriteBatch, WriteOptions,
};
use tracing::{debug, info, warn};

mod expire;
mod logs;
mod migrate;
mod options;
mod read;
mod replica;
mod settle;
mod view;
mod writer;

use migrate::*;
pub use options::StoreOptions;
use options::cf_options;
pub use settle::Settled;
use view::{Clustering, View};
use writer::*;

use crate::keys;
use crate::prepare::{self, Fate, PreparedReads};
use crate::record;
use crate::{
    Appended, CameraEntry, ExpireDay, Expired, GeoHit, NewRead, ReadRef, Store, StoreError,
    StoreStats, VrmEntry, VrmNeighbours,
};

/// One column family's disk use ([`RocksStore::usage`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfUsage {
    /// The column family.
    pub name: &'static str,
    /// Bytes of its table files.
    pub table_bytes: u64,
    /// Estimated live keys.
    pub keys: u64,
}

/// Where each read's record lies: `day · seq` to its `geo` key's cell and
/// time ([`keys::ref_value`]).
const CF_REFS: &str = "refs";
/// Records of settled days, clustered by day, cell and time.
const CF_GEO: &str = "geo";
/// Records of settled days again, clustered by day, VRM and time.
const CF_VRM: &str = "vrm_by_day";
/// Records of open days (and late reads of settled ones), as `geo`.
const CF_GEO_OPEN: &str = "geo_open";
/// Records of open days, as `vrm_by_day`.
const CF_VRM_OPEN: &str = "vrm_open";
/// The cells each camera's reads of a day lie in.
const CF_CAMERA: &str = "camera_cells";
const CF_DEDUP: &str = "dedup";
const CF_CAMERAS: &str = "cameras";
const CF_META: &str = "meta";
const CF_VRM_DICT: &str = "vrm_dict";
const CF_ALERTS: &str = "alerts";
const CF_ALERT_STATE: &str = "alert_state";
/// Alerts by the reads they name (`keys::alert_read_key`), so that expiry
/// deletes an alert with its reads.
const CF_ALERT_READS: &str = "alert_reads";
const CF_HOTLISTS: &str = "hotlists";
const CF_AUDIT: &str = "audit";
const CF_AUTHORISATIONS: &str = "authorisations";
const CF_HOLDS: &str = "holds";
const CF_REGISTERS: &str = "registers";
const ALL_CFS: [&str; 18] = [
    CF_REFS,
    CF_GEO,
    CF_VRM,
    CF_GEO_OPEN,
    CF_VRM_OPEN,
    CF_CAMERA,
    CF_DEDUP,
    CF_CAMERAS,
    CF_META,
    CF_VRM_DICT,
    CF_ALERTS,
    CF_ALERT_STATE,
    CF_ALERT_READS,
    CF_HOTLISTS,
    CF_AUDIT,
    CF_AUTHORISATIONS,
    CF_HOLDS,
    CF_REGISTERS,
];
/// The first layout's records (`day · seq`) and subject-first VRM and
/// camera indexes: read by the migration to this layout, then dropped.
const LEGACY_READS: &str = "reads";
const LEGACY_CFS: [&str; 3] = [LEGACY_READS, "vrm", "camera"];

const META_NEXT_SEQ: &[u8] = b"next_seq";
const META_NEXT_ALERT: &[u8] = b"next_alert";
const META_EARLIEST: &[u8] = b"earliest";
const META_LATEST: &[u8] = b"latest";
const META_COUNT_PREFIX: &[u8] = b"count/";
/// The store's layout: absent in a store of the first layout.
const META_LAYOUT: &[u8] = b"layout";
/// This code's layout: records in `geo` and `vrm_by_day` once their day
/// has settled, in `geo_open` and `vrm_open` before, every per-read column
/// family keyed by capture day first, and every coarse cell holding a
/// read in `meta`. (Layout 2, a draft of layout 3 with a camera index and
/// longer records, was never released; layout 3 had no open form; layout
/// 4 no coarse cells, so a release that wrote it, writing reads without
/// them, must not open a store of this one.)
const LAYOUT: u64 = 5;

/// How many reads one group commit takes at most.
const MAX_GROUP_READS: usize = 64 * 1024;
/// How many records a scan fetches per multi-get.
const SCAN_BATCH: usize = 256;

/// One job for the writer thread: reads of one force (each with the alerts
/// it raises), and/or alerts raised on their own.
#[derive(Default)]
struct Job {
    /// The owning force of `reads` (none for a job of alerts or audit only).
    force: Option<ForceId>,
    reads: PreparedReads,
    alerts: Vec<Alert>,
    audit: Vec<AuditEntry>,
    /// An expiry step, done on its own.
    expire: Option<ExpireDay>,
    /// The last step of settling a day, done on its own.
    settle: Option<settle::SettleStep>,
    /// Registry entries (full keys) written in the same batch as `audit`,
    /// each key completed with the sequence number of the job's last audit
    /// entry.
    registry: crate::RegistryEntries,
    /// An alert's verification state, written in the same batch as `audit`
    /// if the alert is still logged; if it is not, nothing is written but
    /// `audit`, whose outcome then says the alert was not found.
    alert_state: Option<(u64, AlertState)>,
    /// The replicated log's position this job applies, written with the
    /// rest.
    log_position: Option<crate::LogPosition>,
}

impl Job {
    /// Whether the writer runs this job alone, never in a group commit
    /// (an expiry step, settling's last step).
    fn on_its_own(&self) -> bool {
        self.expire.is_some() || self.settle.is_some()
    }
}

/// A job and where its outcome goes.
struct AppendRequest {
    job: Job,
    reply: SyncSender<Result<Committed, StoreError>>,
}

/// What one job's commit did.
#[derive(Default)]
struct Committed {
    appended: Vec<Appended>,
    alert_positions: Vec<u64>,
    audit: Vec<ChainedEntry>,
    expired: Option<Expired>,
    /// The job's alert state was written (its alert is logged).
    state_set: bool,
}

/// A [`Store`] on RocksDB.
pub struct RocksStore {
    db: Arc<DB>,
    path: PathBuf,
    tx: RwLock<Option<SyncSender<AppendRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<RwLock<StoreStats>>,
    last_alert: Arc<AtomicU64>,
    authorisation_lock: Mutex<()>,
    settler: Arc<settle::Settler>,
    /// The settling thread, and what stops it.
    settling: Mutex<Option<(SyncSender<()>, JoinHandle<()>)>>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .finish()
    }
}

fn engine(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.into_string())
}

impl RocksStore {
    /// Opens (creating if needed) a store at `path`.
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        // A WAL file is kept until every column family with writes in it
        // has flushed. The small ones (meta, audit, alerts) fill their
        // memtables slowly, so without a cap the WAL grew to 5.8 GB within
        // seven minutes of a bulk load, all of it replayed after a crash.
        // Past the cap RocksDB flushes whichever holds the oldest file.
        // (RocksDB reads 0 as "no cap of mine": a cap of 0 is taken as 1.)
        db_opts.set_max_total_wal_size(opts.max_wal_bytes.max(1));
        let cache = rocksdb::Cache::new_lru_cache(opts.block_cache_bytes);
        let existing = DB::list_cf(&db_opts, path).unwrap_or_default();
        // A store of the first layout has column families this one does
        // not: opened too, read by the move to this layout, then dropped.
        let legacy = LEGACY_CFS
            .into_iter()
            .filter(|n| existing.iter().any(|e| e == n));
        let cfs = ALL_CFS
            .into_iter()
            .chain(legacy)
            .map(|n| ColumnFamilyDescriptor::new(n, cf_options(n, &cache)));
        // A store from before the alerts-by-read index has its other
        // column families but not that one: it is built from the log.
        let unindexed = !existing.is_empty() && !existing.iter().any(|n| n == CF_ALERT_READS);
        let mut db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(engine)?;
        if unindexed {
            let n = index_alerts_by_read(&db)?;
            info!(alerts = n, "indexed the alert log by read");
        }
        migrate_layout(&mut db)?;
        let db = Arc::new(db);
        let moved = scope_authorisations_by_force(&db)?;
        if moved > 0 {
            info!(
                authorisations = moved,
                "moved authorisations to keys scoped by force"
            );
        }
        let owned = own_unowned_holds(&db)?;
        if owned > 0 {
            info!(
                holds = owned,
                "holds from before cases had owners now belong to their read's force"
            );
        }
        let (writer_state, stats) = WriterState::load(db.clone(), opts.sync)?;
        let stats = Arc::new(RwLock::new(stats));
        let last_alert = Arc::new(AtomicU64::new(writer_state.next_alert - 1));
        let writer_last_alert = last_alert.clone();
        let (tx, rx) = mpsc::sync_channel(opts.queue_depth.max(1));
        let writer_stats = stats.clone();
        let settler = Arc::new(settle::Settler {
            db: db.clone(),
            tx: RwLock::new(Some(tx.clone())),
            maintenance: Mutex::new(()),
            activity: writer_state.activity.clone(),
            dir: path.join("settling"),
            after: opts.settle_after,
            quiet: opts.settle_quiet,
        });
        let handle = std::thread::Builder::new()
            .name("nadc-store-writer".into())
            .spawn(move || writer_state.run(rx, &writer_stats, &writer_last_alert))
            .map_err(|e| StoreError::Engine(format!("spawn writer thread: {e}")))?;
        let settling = if opts.settle_in_background {
            let (stop, stopped) = mpsc::sync_channel(1);
            let s = settler.clone();
            let h = std::thread::Builder::new()
                .name("nadc-store-settle".into())
                .spawn(move || s.run(stopped))
                .map_err(|e| StoreError::Engine(format!("spawn settling thread: {e}")))?;
            Some((stop, h))
        } else {
            None
        };
        info!(path = %path.display(), reads = stats.read().map(|s| s.total_reads()).unwrap_or(0), "store opened");
        Ok(Self {
            db,
            path: path.to_path_buf(),
            tx: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            stats,
            last_alert,
            authorisation_lock: Mutex::new(()),
            settler,
            settling: Mutex::new(settling),
        })
    }

    /// Settles what `day` holds in the open form now, whether or not it is
    /// ready: its records move to the settled form, written once, never
    /// rewritten by compaction (`settle`). `None`: nothing of it was open.
    /// Searches may run meanwhile and see each read once.
    pub fn settle_day(&self, day: u32) -> Result<Option<Settled>, StoreError> {
        self.settler.settle_day(day)
    }

    /// Settles every day with reads in the open form, ready or not
    /// (offline compaction, tests and benchmarks).
    pub fn settle_open_days(&self) -> Result<Vec<Settled>, StoreError> {
        let mut out = Vec::new();
        for day in self.settler.open_days()? {
            out.extend(self.settler.settle_day(day)?);
        }
        Ok(out)
    }

    /// The days with reads in the open form, ascending.
    pub fn open_days(&self) -> Result<Vec<u32>, StoreError> {
        self.settler.open_days()
    }

    /// Stops the settling thread (waiting for a day it is settling), then
    /// takes its way to the writer.
    fn stop_settling(&self) {
        if let Some((stop, h)) = self.settling.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.try_send(());
            drop(stop);
            if h.join().is_err() {
                warn!("store settling thread panicked");
            }
        }
        if let Ok(mut tx) = self.settler.tx.write() {
            tx.take();
        }
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        cf(&self.db, name)
    }

    /// Disk use per column family: the bytes of its table files and the
    /// engine's estimate of its live keys. Memtables not yet flushed are not
    /// counted (see [`RocksStore::compact`]).
    pub fn usage(&self) -> Result<Vec<CfUsage>, StoreError> {
        let mut out = Vec::with_capacity(ALL_CFS.len());
        for name in ALL_CFS {
            let cf = self.cf(name)?;
            let prop = |p: &str| -> Result<u64, StoreError> {
                Ok(self
                    .db
                    .property_int_value_cf(cf, p)
                    .map_err(engine)?
                    .unwrap_or(0))
            };
            out.push(CfUsage {
                name,
                table_bytes: prop("rocksdb.total-sst-files-size")?,
                keys: prop("rocksdb.estimate-num-keys")?,
            });
        }
        Ok(out)
    }

    /// Reads the search-path column families (the records by VRM and by
    /// place, the camera index, then where each record lies; each newest
    /// day first) into the block cache until
    /// `budget_bytes` of table data have been read or everything has, so a
    /// restarted node answers at its steady-state speed at once rather than
    /// decompressing a block for nearly every row until its cache fills.
    /// Returns the bytes read. Safe while the node serves: it only reads.
    pub fn warm_cache(&self, budget_bytes: u64) -> Result<u64, StoreError> {
        let mut read = 0u64;
        for name in [CF_VRM_OPEN, CF_GEO_OPEN, CF_VRM, CF_GEO, CF_REFS] {
            let cf = self.cf(name)?;
            let mut ro = ReadOptions::default();
            ro.fill_cache(true);
            ro.set_readahead_size(2 << 20);
            let mut it = self.db.raw_iterator_cf_opt(cf, ro);
            it.seek_to_last();
            while it.valid() && read < budget_bytes {
                read += it.key().map_or(0, |k| k.len() as u64)
                    + it.value().map_or(0, |v| v.len() as u64);
                it.prev();
            }
            it.status().map_err(engine)?;
        }
        Ok(read)
    }

    /// Flushes and fully compacts every column family, down to the bottom
    /// level, so that [`RocksStore::usage`] shows the settled size (what a
    /// store holding data for days reaches as the engine compacts on its
    /// own). The settled records' bottom level is left as settling wrote
    /// it (once, never rewritten: what lies above it, late reads, goes
    /// down). Blocks until done; searches and ingest may go on meanwhile.
    pub fn compact(&self) -> Result<(), StoreError> {
        for name in ALL_CFS {
            let mut opts = rocksdb::CompactOptions::default();
            opts.set_bottommost_level_compaction(if matches!(name, CF_GEO | CF_VRM) {
                rocksdb::BottommostLevelCompaction::Skip
            } else {
                rocksdb::BottommostLevelCompaction::Force
            });
            opts.set_exclusive_manual_compaction(false);
            let cf = self.cf(name)?;
            self.db.flush_cf(cf).map_err(engine)?;
            self.db
                .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }

    /// Blocks until the engine's background work (flushes, compactions
    /// and the deletion of the files they made obsolete) has finished,
    /// without starting any: what the store holds on disk afterwards is
    /// what the writes so far leave once the engine has caught up.
    pub fn wait_for_background_work(&self) -> Result<(), StoreError> {
        let mut opts = rocksdb::WaitForCompactOptions::default();
        opts.set_flush(false);
        self.db.wait_for_compact(&opts).map_err(engine)
    }
}

/// The full key of entry `k` of registry `space`.
fn registry_key(space: &str, k: &[u8]) -> Vec<u8> {
    // Room for the audit sequence number the writer appends.
    let mut key = Vec::with_capacity(space.len() + 1 + k.len() + 8);
    key.extend_from_slice(space.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(k);
    key
}

/// Hands `job` to the writer thread through `tx` (none: the store is
/// closing) and waits for its commit.
fn submit_to(
    tx: &RwLock<Option<SyncSender<AppendRequest>>>,
    job: Job,
) -> Result<Committed, StoreError> {
    let tx = tx
        .read()
        .map_err(|_| StoreError::Closed)?
        .clone()
        .ok_or(StoreError::Closed)?;
    let (reply, wait) = mpsc::sync_channel(1);
    tx.send(AppendRequest { job, reply })
        .map_err(|_| StoreError::Closed)?;
    wait.recv().map_err(|_| StoreError::Closed)?
}

fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name).ok_or(StoreError::Corrupt {
        what: "column families",
        detail: format!("column family {name} missing"),
    })
}

impl RocksStore {
    fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(engine)
    }

    /// Hands a job of reads, alerts and audit entries to the writer thread
    /// and waits for its commit.
    fn submit(
        &self,
        force: Option<ForceId>,
        reads: PreparedReads,
        alerts: Vec<Alert>,
        audit: Vec<AuditEntry>,
    ) -> Result<Committed, StoreError> {
        self.submit_job(Job {
            force,
            reads,
            alerts,
            audit,
            ..Job::default()
        })
    }

    /// Hands a job to the writer thread and waits for its commit.
    fn submit_job(&self, job: Job) -> Result<Committed, StoreError> {
        submit_to(&self.tx, job)
    }
}

impl Store for RocksStore {
    fn append(
        &self,
        force: &ForceId,
        mut reads: Vec<NewRead>,
    ) -> Result<Vec<Appended>, StoreError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = PreparedReads::new(force, &mut reads)?;
        // Freed here, beside the writer, rather than by it.
        drop(reads);
        Ok(self
            .submit(Some(force.clone()), prepared, Vec::new(), Vec::new())?
            .appended)
    }

    fn append_logged(
        &self,
        force: &ForceId,
        reads: Vec<NewRead>,
        at: &crate::LogPosition,
    ) -> Result<Vec<Appended>, StoreError> {
        self.replica_append_logged(force, reads, at)
    }

    fn find_reads(
        &self,
        ids: &[(u32, ForceId, String)],
    ) -> Result<Vec<Option<ReadRef>>, StoreError> {
        self.replica_find_reads(ids)
    }

    fn log_alerts_logged(
        &self,
        alerts: Vec<Alert>,
        at: &crate::LogPosition,
    ) -> Result<Vec<u64>, StoreError> {
        self.replica_log_alerts(alerts, at)
    }

    fn set_log_position(&self, at: &crate::LogPosition) -> Result<(), StoreError> {
        self.replica_set_log_position(at)
    }

    fn log_position(&self, stream: &str) -> Result<Option<crate::LogPosition>, StoreError> {
        self.replica_log_position(stream)
    }

    fn replica_snapshot(&self, dir: &Path) -> Result<BTreeMap<ForceId, u64>, StoreError> {
        self.replica_copy(dir)
    }

    fn log_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<u64>, StoreError> {
        self.logged_log_alerts(alerts)
    }

    fn alerts(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, Alert) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.logged_alerts(after, visit)
    }

    fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<Vec<ChainedEntry>, StoreError> {
        self.logged_append_audit(entries)
    }

    fn append_audit_registered(
        &self,
        entry: AuditEntry,
        space: &str,
        entries: crate::RegistryEntries,
    ) -> Result<ChainedEntry, StoreError> {
        self.logged_append_audit_registered(entry, space, entries)
    }

    fn audit(
        &self,
        from: u64,
        visit: &mut dyn FnMut(ChainedEntry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.logged_audit(from, visit)
    }

    fn put_authorisation(&self, a: &Authorisation) -> Result<bool, StoreError> {
        self.logged_put_authorisation(a)
    }

    fn revoke_authorisation(
        &self,
        force: &ForceId,
        id: &str,
        revocation: &Revocation,
    ) -> Result<Option<(Authorisation, bool)>, StoreError> {
        self.logged_revoke_authorisation(force, id, revocation)
    }

    fn authorisations(&self) -> Result<Vec<Authorisation>, StoreError> {
        self.logged_authorisations()
    }

    fn expire(&self, step: ExpireDay) -> Result<Expired, StoreError> {
        // Never while a day settles: a read expired meanwhile would be
        // copied back.
        let _maintenance = self
            .settler
            .maintenance
            .lock()
            .map_err(|_| StoreError::Engine("maintenance lock poisoned".into()))?;
        self.submit_job(Job {
            expire: Some(step),
            ..Job::default()
        })?
        .expired
        .ok_or_else(|| StoreError::Engine("expiry step not run".into()))
    }

    fn hold(&self, case: &crate::CaseId, reads: &[ReadRef]) -> Result<u64, StoreError> {
        self.logged_hold(case, reads)
    }

    fn release(&self, case: &crate::CaseId) -> Result<u64, StoreError> {
        self.logged_release(case)
    }

    fn holds(&self) -> Result<BTreeMap<ReadRef, Vec<Option<crate::CaseId>>>, StoreError> {
        self.logged_holds()
    }

    fn put_registry(
        &self,
        space: &str,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        self.logged_put_registry(space, entries)
    }

    fn registry(
        &self,
        space: &str,
        prefix: &[u8],
        visit: &mut crate::RegistryVisit<'_>,
    ) -> Result<(), StoreError> {
        self.logged_registry(space, prefix, visit)
    }

    fn last_alert(&self) -> u64 {
        self.last_alert.load(Ordering::Acquire)
    }

    fn set_alert_state(
        &self,
        position: u64,
        state: &AlertState,
        audit: AuditEntry,
        at: Option<&crate::LogPosition>,
    ) -> Result<(bool, ChainedEntry), StoreError> {
        self.logged_set_alert_state(position, state, audit, at)
    }

    fn alerts_of_read(&self, read: ReadRef) -> Result<Vec<(u64, Alert)>, StoreError> {
        self.logged_alerts_of_read(read)
    }

    fn alert_states(&self, positions: &[u64]) -> Result<Vec<Option<AlertState>>, StoreError> {
        self.logged_alert_states(positions)
    }

    fn put_hotlist(&self, list: &Hotlist) -> Result<(), StoreError> {
        self.logged_put_hotlist(list)
    }

    fn delete_hotlist(&self, id: &HotlistId) -> Result<(), StoreError> {
        self.logged_delete_hotlist(id)
    }

    fn put_hotlist_entries(
        &self,
        id: &HotlistId,
        entries: &[HotlistEntry],
    ) -> Result<(), StoreError> {
        self.logged_put_hotlist_entries(id, entries)
    }

    fn remove_hotlist_entries(&self, id: &HotlistId, vrms: &[Vrm]) -> Result<usize, StoreError> {
        self.logged_remove_hotlist_entries(id, vrms)
    }

    fn hotlists(&self) -> Result<Vec<(Hotlist, Vec<HotlistEntry>)>, StoreError> {
        self.logged_hotlists()
    }

    fn vrm_neighbours(
        &self,
        probes: &[(Vrm, Timestamp)],
        look_ms: i64,
    ) -> Result<Vec<VrmNeighbours>, StoreError> {
        self.read_vrm_neighbours(probes, look_ms)
    }

    fn camera_entries(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(CameraEntry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read_camera_entries(force, camera_id, from, to, visit)
    }

    fn vrm_timeline(
        &self,
        vrm: &Vrm,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read_vrm_timeline(vrm, from, to, visit)
    }

    fn geo_scan(
        &self,
        cells: &[CellRange],
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(GeoHit<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read_geo_scan(cells, from, to, visit)
    }

    fn camera_reads(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read_camera_reads(force, camera_id, from, to, visit)
    }

    fn vrm_dict(
        &self,
        skeleton_prefix: &str,
        whole: bool,
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read_vrm_dict(skeleton_prefix, whole, visit)
    }

    fn vrm_dict_whole(
        &self,
        skeletons: &[String],
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read_vrm_dict_whole(skeletons, visit)
    }

    fn scan_days(
        &self,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read_scan_days(from, to, visit)
    }

    fn get_reads(&self, refs: &[ReadRef]) -> Result<Vec<StoredRead>, StoreError> {
        self.read_get_reads(refs)
    }

    fn put_cameras(&self, cameras: &[Camera]) -> Result<(), StoreError> {
        self.logged_put_cameras(cameras)
    }

    fn cameras(&self, force: Option<&ForceId>) -> Result<Vec<Camera>, StoreError> {
        self.logged_cameras(force)
    }

    fn reads_by_day(
        &self,
        from_day: u32,
        to_day: u32,
    ) -> Result<BTreeMap<(u32, ForceId), u64>, StoreError> {
        let meta = self.cf(CF_META)?;
        let corrupt = |detail: &str| StoreError::Corrupt {
            what: "meta",
            detail: detail.into(),
        };
        let mut out = BTreeMap::new();
        let mut it = self.db.raw_iterator_cf(meta);
        it.seek(keys::day_count_start(from_day));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let Some((day, force)) = keys::decode_day_count_key(k) else {
                break;
            };
            if day > to_day {
                break;
            }
            let force = ForceId::new(force).map_err(|_| corrupt("day count force"))?;
            out.insert(
                (day, force),
                keys::be_u64(v).ok_or_else(|| corrupt("day count"))?,
            );
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    fn coarse_cells(&self) -> Result<Vec<u64>, StoreError> {
        read::coarse_cells_held(&self.db)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.stats
            .read()
            .map(|s| s.clone())
            .map_err(|_| StoreError::Engine("stats lock poisoned".into()))
    }

    fn close(&self) -> Result<(), StoreError> {
        self.stop_settling();
        // Dropping the sender ends the writer loop once the queue is drained.
        if let Ok(mut tx) = self.tx.write() {
            tx.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle
            && h.join().is_err()
        {
            warn!("store writer thread panicked");
        }
        self.db.flush_wal(true).map_err(engine)?;
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name)?).map_err(engine)?;
        }
        info!(path = %self.path.display(), "store closed");
        Ok(())
    }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        self.stop_settling();
        if let Ok(mut tx) = self.tx.write() {
            tx.take();
        }
        if let Some(h) = self.writer.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
    }
}
/// Count of records per force read straight from the `reads` column family
/// (a full scan: for tests and consistency checks, not for serving).
pub fn scan_counts(store: &RocksStore) -> Result<BTreeMap<ForceId, u64>, StoreError> {
    let mut out = BTreeMap::new();
    store.scan_days(Timestamp::EPOCH, Timestamp::MAX, &mut |r| {
        *out.entry(r.force).or_default() += 1;
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// The VRM of a dictionary key.
fn dict_vrm(key: &[u8]) -> Result<Vrm, StoreError> {
    let (_, text) = keys::decode_vrm_dict_key(key).ok_or_else(|| StoreError::Corrupt {
        what: "vrm dictionary",
        detail: "undecodable key".into(),
    })?;
    Vrm::normalise(text).map_err(|e| StoreError::Corrupt {
        what: "vrm dictionary",
        detail: e.to_string(),
    })
}
