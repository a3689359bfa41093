//! The nadc store: where reads live once acknowledged.
//!
//! The crates above this one see only the [`Store`] trait; [`RocksStore`] is
//! the RocksDB implementation (column families, key encodings in [`keys`],
//! durable group-committed writes, scans). A replicated log or another
//! engine can stand in front of or in place of it without the node or the
//! query layer changing.
//!
//! Invariants:
//! - [`Store::append`] returns only after every stored read is durable
//!   (write-ahead log synced) and indexed: record and index entries are
//!   written in one atomic batch.
//! - A read is identified by (capture day, owning force, BOF read id); a
//!   second append of the same identity stores nothing and reports
//!   [`Appended::Duplicate`] with the sequence number of the first.
//! - Sequence numbers are node-local, start at 1, and are never reused.
#![deny(missing_docs, unsafe_code)]

pub mod keys;
mod prepare;
mod record;
mod rocks;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use nadc_core::access::{Authorisation, Revocation};
use nadc_core::alert::{Alert, AlertDetail, AlertState};
use nadc_core::audit::{AuditEntry, ChainedEntry};
use nadc_core::hotlist::{Hotlist, HotlistEntry, HotlistId};
use nadc_core::{Camera, ForceId, GeoPoint, Read, StoredRead, Timestamp, Vrm};

pub use nadc_core::CellRange;
pub use nadc_core::read::ReadRef;
/// Registry entries (key, value) written with an audit entry
/// ([`Store::append_audit_registered`]).
pub type RegistryEntries = Vec<(Vec<u8>, Vec<u8>)>;

pub use rocks::{CfUsage, RocksStore, Settled, StoreOptions, scan_counts};

/// A validated read ready to store: its resolved position and received time.
#[derive(Clone, Debug)]
pub struct NewRead {
    /// The read.
    pub read: Read,
    /// Where it was taken: its own GPS, else its camera's position.
    pub position: GeoPoint,
    /// When the node received it.
    pub received_at: Timestamp,
    /// Alerts the read raises (hotlist hits, clone checks), logged in the
    /// same atomic write as the read, and only if the read is new (a
    /// duplicate raises nothing again).
    pub alerts: Vec<AlertDetail>,
    /// The earlier reads (in capture time) of the same VRM in the same
    /// append, nearest first, each with the clone flag it would raise with
    /// this one: the nearest of them stored new with this read raises its
    /// flag, as a clone alert in the same atomic write (the other read's
    /// number is known only there).
    pub earlier_in_batch: Vec<BatchClone>,
}

/// An earlier read of the same VRM in the same append (see
/// [`NewRead::earlier_in_batch`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchClone {
    /// Its index in the append.
    pub earlier: usize,
    /// The clone flag between it and the read (none: the pair breaks no
    /// rule).
    pub flag: Option<CloneFlag>,
}

/// What a clone alert says of a pair of reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CloneFlag {
    /// Distance between the two reads, metres.
    pub distance_m: f64,
    /// Time between them, seconds.
    pub seconds: f64,
    /// Implied speed, km/h.
    pub speed_kmh: f64,
}

impl NewRead {
    /// A read that raises no alerts.
    pub fn new(read: Read, position: GeoPoint, received_at: Timestamp) -> Self {
        Self {
            read,
            position,
            received_at,
            alerts: Vec::new(),
            earlier_in_batch: Vec::new(),
        }
    }
}

/// A VRM index entry: when and where a VRM was read, without the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VrmEntry {
    /// Capture time.
    pub observed_at: Timestamp,
    /// Sequence number.
    pub seq: u64,
    /// Where it was read.
    pub position: GeoPoint,
}

impl VrmEntry {
    /// The reference to fetch the record with [`Store::get_reads`].
    pub fn read_ref(&self) -> ReadRef {
        ReadRef {
            day: self.observed_at.day(),
            seq: self.seq,
        }
    }
}

/// The nearest earlier (at or before) and later reads of a VRM to a time,
/// as [`Store::vrm_neighbours`] gives them for each probe.
pub type VrmNeighbours = [Option<VrmEntry>; 2];

/// One step of deleting an expired day: which reads of a day to keep.
#[derive(Clone, Debug, Default)]
pub struct ExpireDay {
    /// The UTC day.
    pub day: u32,
    /// Forces whose reads of this day are still within their retention:
    /// kept.
    pub keep_forces: std::collections::BTreeSet<ForceId>,
    /// Sequence numbers of reads of this day under a legal hold: kept.
    pub held: std::collections::HashSet<u64>,
    /// Start the scan at this sequence number (resume after a step).
    pub from_seq: u64,
    /// Delete at most this many reads in this step.
    pub max: usize,
}

/// What one expiry step deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Reads deleted per owning force.
    pub deleted: BTreeMap<ForceId, u64>,
    /// Reads kept because a legal hold covers them.
    pub held: u64,
    /// Logged alerts deleted because they named a deleted read.
    pub alerts_deleted: u64,
    /// Where to resume, if the day is not finished.
    pub next_seq: Option<u64>,
}

/// A camera index entry: who passed the camera, when; without fetching the
/// record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraEntry {
    /// Capture time.
    pub observed_at: Timestamp,
    /// Sequence number.
    pub seq: u64,
    /// The VRM read.
    pub vrm: Vrm,
}

impl CameraEntry {
    /// The reference to fetch the record with [`Store::get_reads`].
    pub fn read_ref(&self) -> ReadRef {
        ReadRef {
            day: self.observed_at.day(),
            seq: self.seq,
        }
    }
}

/// What happened to one read of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored under this new sequence number.
    Stored {
        /// The read's sequence number.
        seq: u64,
    },
    /// Already held (same capture day, force and read id): not stored again.
    Duplicate {
        /// The sequence number of the copy already held.
        seq: u64,
    },
}

/// Counts of what a store holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Reads held per owning force.
    pub reads_by_force: BTreeMap<ForceId, u64>,
    /// Earliest capture time held.
    pub earliest: Option<Timestamp>,
    /// Latest capture time held.
    pub latest: Option<Timestamp>,
}

impl StoreStats {
    /// Total reads held.
    pub fn total_reads(&self) -> u64 {
        self.reads_by_force.values().sum()
    }
}

/// A store failure. Reads in a failed append were not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (I/O, disk full, corruption detected by the engine).
    #[error("storage engine error: {0}")]
    Engine(String),
    /// Stored bytes could not be decoded: a bug or on-disk corruption.
    #[error("corrupt data in {what}: {detail}")]
    Corrupt {
        /// Which column family / structure.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
}

/// A geographic index entry inside a searched window: enough to filter
/// exactly (position, time), and the record, decoded only if wanted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GeoHit<'a> {
    /// The read's sequence number.
    pub seq: u64,
    /// Capture time.
    pub observed_at: Timestamp,
    /// Exact position.
    pub position: GeoPoint,
    /// The encoded record (the entry's value).
    pub record: &'a [u8],
}

impl std::fmt::Debug for GeoHit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The record holds the VRM: never shown.
        f.debug_struct("GeoHit")
            .field("seq", &self.seq)
            .field("observed_at", &self.observed_at)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl GeoHit<'_> {
    /// The read, decoded.
    pub fn read(&self) -> Result<StoredRead, StoreError> {
        record::decode_read(self.seq, self.observed_at, self.record)
    }

    /// The reference to fetch the record with [`Store::get_reads`].
    pub fn read_ref(&self) -> ReadRef {
        ReadRef {
            day: self.observed_at.day(),
            seq: self.seq,
        }
    }
}

/// A case: its owner force and its reference (AVON's `OP-1` and KENT's
/// `OP-1` are two cases).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseId {
    /// The force whose case it is.
    pub owner: ForceId,
    /// Its reference within that force.
    pub case_ref: String,
}

impl std::fmt::Display for CaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.case_ref)
    }
}

/// A message of the replicated log: its stream and its sequence number
/// in that stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// The stream's name.
    pub stream: String,
    /// The message's sequence number in the stream (from 1).
    pub seq: u64,
    /// What the position is a position in: the log's identity (a stream
    /// deleted and made again restarts its numbers) and the subjects the
    /// replica applies. A replica refuses to go on under another scope.
    pub scope: String,
}

/// A visitor of registry entries: key (without the space), value.
pub type RegistryVisit<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// What a read store offers the node and the query layer.
pub trait Store: Send + Sync + 'static {
    /// Durably stores `reads` for `force`, returning one outcome per read in
    /// order. Blocks until the data is synced.
    fn append(&self, force: &ForceId, reads: Vec<NewRead>) -> Result<Vec<Appended>, StoreError>;

    /// As [`Store::append`], for reads taken from the replicated log: the
    /// log's position `at` is written in the same durable write, even when
    /// every read is a duplicate, so a replica that stops at any moment
    /// resumes after the last message it applied, never before or past it.
    fn append_logged(
        &self,
        force: &ForceId,
        reads: Vec<NewRead>,
        at: &LogPosition,
    ) -> Result<Vec<Appended>, StoreError>;

    /// The reads of `ids` (capture day, owning force, the BOF's read id)
    /// this store holds: each one's reference, or none. (How replicas,
    /// which number their reads each their own way, name the same read.)
    fn find_reads(
        &self,
        ids: &[(u32, ForceId, String)],
    ) -> Result<Vec<Option<ReadRef>>, StoreError>;

    /// As [`Store::log_alerts`], for alerts taken from the replicated log:
    /// the log's position `at` is written in the same durable write (even
    /// with no alert), so they are logged once whenever the replica stops.
    fn log_alerts_logged(
        &self,
        alerts: Vec<Alert>,
        at: &LogPosition,
    ) -> Result<Vec<u64>, StoreError>;

    /// Records the log's message `at` as applied where what it changed is
    /// written on its own (a change to a hotlist: applying one again leaves
    /// it as it was), durably and in order with the appends before it.
    fn set_log_position(&self, at: &LogPosition) -> Result<(), StoreError>;

    /// The last message of log stream `stream` applied to this store, with
    /// the scope it was applied under (none: nothing yet).
    fn log_position(&self, stream: &str) -> Result<Option<LogPosition>, StoreError>;

    /// Writes to `dir` (which must not exist) a consistent snapshot of the
    /// store for another replica of the same log to start from: every
    /// column family as of one instant, the log's position among them,
    /// except what is this node's own (its audit chain and its registers,
    /// the case register among them), which the snapshot holds empty.
    /// Gives the reads the copy holds per owning force.
    fn replica_snapshot(&self, dir: &std::path::Path)
    -> Result<BTreeMap<ForceId, u64>, StoreError>;

    /// Visits the reads of `vrm` captured in `from..=to`, in capture-time
    /// order (ties by sequence number), until `visit` breaks.
    fn vrm_timeline(
        &self,
        vrm: &Vrm,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// For each `(vrm, at)`, the nearest reads of `vrm` to `at` from the VRM
    /// index alone: the last at or before `at` and the first after it, each
    /// at most `look_ms` away. One iterator serves the whole batch, so a
    /// live clone check costs two seeks per read.
    fn vrm_neighbours(
        &self,
        probes: &[(Vrm, Timestamp)],
        look_ms: i64,
    ) -> Result<Vec<VrmNeighbours>, StoreError>;

    /// Visits the geographic index entries whose cell lies in one of
    /// `cells` (sorted, non-overlapping ranges of index cells) and whose
    /// capture time is in `from..=to`, until `visit` breaks. Entries come
    /// by day, then cell, then time; positions are not filtered here.
    fn geo_scan(
        &self,
        cells: &[nadc_core::CellRange],
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(GeoHit<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Visits the reads of one camera of `force` captured in `from..=to`,
    /// in time order, until `visit` breaks.
    fn camera_reads(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Visits the distinct VRMs held whose confusable skeleton (under the
    /// default groups) starts with `skeleton_prefix`, or, if `whole`, equals
    /// it; in skeleton order, until `visit` breaks. An empty prefix visits
    /// every distinct VRM.
    fn vrm_dict(
        &self,
        skeleton_prefix: &str,
        whole: bool,
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Visits the distinct VRMs held whose skeleton equals one of
    /// `skeletons`, in skeleton order, until `visit` breaks: the many exact
    /// probes of a fuzzy search (hundreds: every skeleton one edit away)
    /// in one pass, rather than a [`vrm_dict`](Self::vrm_dict) call each.
    fn vrm_dict_whole(
        &self,
        skeletons: &[String],
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Visits every record captured on the UTC days `from.day()..=to.day()`
    /// (callers filter the exact window), by day (within a day in no set
    /// order), until `visit` breaks. A full scan of those days: for searches with no
    /// better index.
    fn scan_days(
        &self,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Visits the camera index entries of one camera of `force` captured in
    /// `from..=to`, in time order, until `visit` breaks. Index only: no
    /// record is fetched (convoy analysis reads thousands of these).
    fn camera_entries(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(CameraEntry) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Fetches records by reference, in the order given. A reference with
    /// no record is corruption (indexes and records are written together).
    fn get_reads(&self, refs: &[ReadRef]) -> Result<Vec<StoredRead>, StoreError>;

    /// Registers or replaces cameras (keyed by force and camera id), durably.
    fn put_cameras(&self, cameras: &[Camera]) -> Result<(), StoreError>;

    /// Registered cameras, of one force or of all.
    fn cameras(&self, force: Option<&ForceId>) -> Result<Vec<Camera>, StoreError>;

    /// Logs alerts not raised by an append (e.g. a convoy analysed after the
    /// hit), durably, returning their log positions. An alert naming a read
    /// no longer stored (expired meanwhile) is not logged: no logged alert
    /// names a missing read.
    fn log_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<u64>, StoreError>;

    /// Visits logged alerts at positions after `after`, in order, until
    /// `visit` breaks.
    fn alerts(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, Alert) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// The position of the last logged alert (0 if none).
    fn last_alert(&self) -> u64;

    /// Records an alert's verification state (replacing the previous one)
    /// and its audit entry, in one durable write. If no alert is logged at
    /// `position` (never logged, or deleted by retention meanwhile) the
    /// state is not recorded (`false`) and the entry is written with its
    /// outcome saying so. Returns the entry as chained. `at`: the
    /// replicated log's message it comes from, whose position is written in
    /// the same write.
    fn set_alert_state(
        &self,
        position: u64,
        state: &AlertState,
        audit: AuditEntry,
        at: Option<&LogPosition>,
    ) -> Result<(bool, ChainedEntry), StoreError>;

    /// The alerts logged that name `read` (raised on it, or naming it as a
    /// clone's other read), by position.
    fn alerts_of_read(&self, read: ReadRef) -> Result<Vec<(u64, Alert)>, StoreError>;

    /// The verification states of alerts, in the order given.
    fn alert_states(&self, positions: &[u64]) -> Result<Vec<Option<AlertState>>, StoreError>;

    /// Creates or replaces a hotlist's definition (its entries are kept).
    fn put_hotlist(&self, list: &Hotlist) -> Result<(), StoreError>;

    /// Deletes a hotlist and all its entries.
    fn delete_hotlist(&self, id: &HotlistId) -> Result<(), StoreError>;

    /// Adds or replaces entries (keyed by VRM) of a hotlist.
    fn put_hotlist_entries(
        &self,
        id: &HotlistId,
        entries: &[HotlistEntry],
    ) -> Result<(), StoreError>;

    /// Removes entries by VRM, returning how many existed.
    fn remove_hotlist_entries(&self, id: &HotlistId, vrms: &[Vrm]) -> Result<usize, StoreError>;

    /// Every hotlist with its entries, by owner and name.
    fn hotlists(&self) -> Result<Vec<(Hotlist, Vec<HotlistEntry>)>, StoreError>;

    /// Appends entries to the hash-chained audit log, durably (sharing the
    /// read writer's group commit), returning them as chained.
    fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<Vec<ChainedEntry>, StoreError>;

    /// Appends one audit entry and, in the same durable batch, entries of
    /// registry `space` whose keys end with the entry's sequence number
    /// (appended here to each key given): e.g. what a search returned under
    /// a case, written with the audit entry of that search, so neither is
    /// ever kept without the other, and one sync makes both durable.
    fn append_audit_registered(
        &self,
        entry: AuditEntry,
        space: &str,
        entries: RegistryEntries,
    ) -> Result<ChainedEntry, StoreError>;

    /// Visits audit entries from sequence number `from` (inclusive), in
    /// order, until `visit` breaks.
    fn audit(
        &self,
        from: u64,
        visit: &mut dyn FnMut(ChainedEntry) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;

    /// Records a supervisor's authorisation, durably (ids are unique within
    /// the granting force: an existing one is not replaced and `false` is
    /// returned; another force may use the same id).
    fn put_authorisation(&self, a: &Authorisation) -> Result<bool, StoreError>;

    /// Records the revocation of `force`'s authorisation `id`, durably.
    /// `None` if `force` has no such authorisation; otherwise it as it now
    /// stands, and whether this call revoked it (`false`: it already was,
    /// and its first revocation stands).
    fn revoke_authorisation(
        &self,
        force: &ForceId,
        id: &str,
        revocation: &Revocation,
    ) -> Result<Option<(Authorisation, bool)>, StoreError>;

    /// Every recorded authorisation, by force then id.
    fn authorisations(&self) -> Result<Vec<Authorisation>, StoreError>;

    /// Deletes expired reads of one day (a bounded step; resume with
    /// `next_seq`), from the records and every index, and each VRM's
    /// dictionary entry once no read of it is left, with every logged alert
    /// that names a deleted read (in the same write). Goes through the
    /// writer, so counts stay exact.
    fn expire(&self, step: ExpireDay) -> Result<Expired, StoreError>;

    /// Places a legal hold for `case` on reads (kept beyond retention
    /// until released); returns how many were not held by the case before.
    fn hold(&self, case: &CaseId, reads: &[ReadRef]) -> Result<u64, StoreError>;

    /// Releases a case's holds; returns how many reads it held.
    fn release(&self, case: &CaseId) -> Result<u64, StoreError>;

    /// Every held read with the cases holding it (`None`: a hold placed
    /// before cases had owners, which still keeps its read).
    fn holds(&self) -> Result<BTreeMap<ReadRef, Vec<Option<CaseId>>>, StoreError>;

    /// Writes entries of a small node registry (`space`, e.g. the case
    /// register): a value puts, `None` deletes; durably, in one batch.
    fn put_registry(
        &self,
        space: &str,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError>;

    /// Visits a registry's entries whose key starts with `prefix`, in key
    /// order, until `visit` breaks.
    fn registry(
        &self,
        space: &str,
        prefix: &[u8],
        visit: &mut RegistryVisit<'_>,
    ) -> Result<(), StoreError>;

    /// Counts of what is held.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// The coarse cells ([`nadc_core::geo::COARSE_RESOLUTION`]) where the
    /// reads held lie, ascending: every cell holding a read held is among
    /// them, wherever the read was taken (a fixed camera, a mobile one, a
    /// GPS position). A cell whose reads retention has deleted may stay
    /// until its latest read is older than every read held.
    fn coarse_cells(&self) -> Result<Vec<u64>, StoreError>;

    /// Reads held per (capture day, owning force) for the UTC days
    /// `from_day..=to_day`: exact counts, kept as reads are stored and
    /// expired (no record is read).
    fn reads_by_day(
        &self,
        from_day: u32,
        to_day: u32,
    ) -> Result<BTreeMap<(u32, ForceId), u64>, StoreError>;

    /// Stops accepting writes, waits for writes in flight, and flushes
    /// everything to disk. Later appends fail with [`StoreError::Closed`].
    fn close(&self) -> Result<(), StoreError>;
}
