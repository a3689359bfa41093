//! Every key (and the small fixed values) the store writes, byte by byte.
//!
//! All integers are big-endian so that byte order is numeric order, which
//! is what RocksDB sorts by. Text parts (VRM, force, camera id, read id) are
//! followed by a `0x00` terminator; none of them can contain `0x00`
//! (validation refuses control characters), so the terminator keeps a
//! shorter text sorting before every longer text that extends it, and a
//! prefix scan for one text never runs into another.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `geo`     | `day:u32 · cell:u64 · ms_of_day:u32 · seq:u64` (24 B) | the record ([`crate::record`]) |
//! | `vrm_by_day` | `day:u32 · vrm · 0x00 · ms_of_day:u32 · seq:u64` | the record again |
//! | `geo_open`, `vrm_open` | as `geo` and `vrm_by_day` | the open form of the same: see below |
//! | `camera_cells` | `day:u32 · force · 0x00 · camera_id · 0x00 · cell:u64` | empty: the camera had reads in that cell that day |
//! | `refs`    | `day:u32 · seq:u64` (12 B) | `cell:u64 · ms_of_day:u32`: where the record lies in `geo` |
//! | `dedup`   | `day:u32 · force · 0x00 · read_id` | `seq:u64` |
//! | `cameras` | `force · 0x00 · camera_id` | the camera (postcard) |
//! | `vrm_dict` | `skeleton · 0x00 · vrm` | the capture days with reads of the VRM (`u32` each, ascending; a merge adds one) |
//! | `alerts`  | `position:u64` | the alert (postcard) |
//! | `alert_state` | `position:u64` | its verification (postcard) |
//! | `alert_reads` | `day:u32 · seq:u64 · position:u64` | empty |
//! | `hotlists` | `0x01 · owner · 0x00 · name` | the list (postcard) |
//! | `hotlists` | `0x02 · owner · 0x00 · name · 0x00 · vrm` | the entry (postcard) |
//! | `audit`   | `seq:u64` | the chained entry (postcard) |
//! | `holds`   | `day:u32 · seq:u64 · owner · 0x00 · case_ref` | empty (a legal hold) |
//! | `registers` | `space · 0x00 · key` | the node's (e.g. the case register) |
//! | `registers` (case) | `case · 0x00 · tag:u8 · owner · 0x00 · case_ref · 0x00 · rest` | see below |
//! | `authorisations` | `force · 0x00 · id` | the authorisation (format byte, postcard) |
//! | `meta`    | ASCII names | counters, the layout (5), each settled day's mark ([`settled_key`]), each coarse cell holding reads ([`coarse_key`]) |
//!
//! Every column family that holds something per read starts its keys with
//! the capture day: the day is the store's time partition. What a day
//! costs is settled once the day is: new reads land in today's key range,
//! so compaction rewrites today's data, never the history (in the first
//! layout the VRM and camera indexes were keyed by subject first, and each
//! day's entries were merged into the whole history at every level); and
//! retention drops a day with one range delete per column family.
//!
//! A day's records are written twice in two forms. While a day takes
//! reads they go to the open form (`geo_open`, `vrm_open`: the same keys,
//! column families that only ever hold the few open days, so their
//! compaction costs what a day costs, whatever the history held). Once
//! the day has settled (ended, and quiet), its records are copied once,
//! already in key order, to sorted table files that the settled form
//! (`geo`, `vrm_by_day`) takes in whole at its bottom level
//! (`rocks::settle`): never rewritten by compaction again. A day's mark in
//! `meta` says which of its reads are in which form (sequence numbers up
//! to the mark: settled), read with the data from one snapshot, so a read
//! is met once by every search, before, during and after its day settles.
//! Late reads of a settled day land in the open form and settle later.
//!
//! //! A case is named by its owner force and its reference ([`case_prefix`]):
//! AVON's `OP-1` and KENT's `OP-1` are two cases. The case register's
//! entries, after `case · 0x00` (the registry space), by tag:
//!
//! | tag | rest | value |
//! |---|---|---|
//! | `R` (a read returned) | `node · 0x00 · day:u32 · seq:u64 · audit_seq:u64` | the read (format byte 1, postcard; JSON in registers written before it) |
//! | `M` (material) | `node · 0x00 · day:u32 · seq:u64` | who marked it (JSON) |
//! | `C` (consultation) | `force` | the status (JSON) |
//! | `O` (opened) | `audit_seq:u64` (the search that opened it) | who, when (JSON) |
//! | `S` (shared) | `member · 0x00 · audit_seq:u64` (the share) | who shared it, when (JSON) |
//!
//! Entries written before cases had owners (tags `r` and `m`: the same
//! without `owner · 0x00`) are kept apart by their lower-case tags; see
//! [`decode_legacy_case_key`].
//!
//! A hold written before cases had owners (`day · seq · case_ref`, no
//! `0x00`) decodes with no owner; opening the store gives it one (the held
//! read's force) so that force can show and release it.
//!
//! `day` is the UTC day of capture (days since 1970-01-01), `seq` the
//! node-local sequence number assigned at ingest, `cell` the H3 cell at the
//! index resolution (res 10) as its `u64`, `ms_of_day` the capture time's
//! milliseconds into its UTC day.
//!
//! Why this order:
//! - The records are kept twice, clustered for the two access paths that
//!   return most rows: by place (`geo`: a day, then the H3 cell, then the
//!   time) and by vehicle (`vrm_by_day`: a day, then the VRM, then the
//!   time). A geographic search or a VRM timeline reads its rows from a few
//!   sequential ranges, where they lie, instead of one random record block
//!   per row.
//! - `geo` is a skip-scan: one range per covering cell range per day, and
//!   inside a cell the time window is a contiguous key range.
//! - A VRM timeline reads only the days its VRM was read on: the VRM
//!   dictionary's value lists them, so a year's retention (365 day
//!   partitions) costs a vehicle seen on three days three seeks.
//! - A camera's reads are found in `geo`: `camera_cells` lists the cells
//!   its reads of a day lie in (one for a fixed camera), and each is a
//!   time range of `geo` read with the record's head (force, camera, VRM)
//!   alone. Convoy analysis ("who else passed this camera within two
//!   minutes") costs a seek per target read, and no index of its own.
//! - `refs` finds a record from its reference (`day · seq`, what alerts,
//!   holds and the case register name).
//! - `alerts` is a log ordered by position: a subscriber resumes with one
//!   seek.
//! - `authorisations` start with the granting force: ids are one force's
//!   own (two forces may each have `AUTH-1`), and a lookup or a listing is
//!   one force's prefix. Stores from before held the id alone (no `0x00`,
//!   which no id contains): [`is_unscoped_authorisation_key`] tells those
//!   apart, and opening the store moves them to this layout.
//!
//! A store of the first layout (`reads`: `day · seq` to the record; `vrm`:
//! `vrm · 0x00 · observed_ms:u64 · seq` to the position; `camera`: `force ·
//! 0x00 · camera_id · 0x00 · observed_ms:u64 · seq` to the VRM) is moved to
//! this one when opened (`rocks::migrate`).

use nadc_core::{ForceId, Timestamp, Vrm};

/// Terminator after a text part of a key.
pub const SEP: u8 = 0x00;

/// In `meta`: reads held per capture day and owning force, each a
/// big-endian `u64` under this prefix, the day (big-endian `u32`) and the
/// force code; so a range of days is one range scan.
pub const DAY_COUNT_PREFIX: &[u8] = b"daycount/";

/// In `meta`: present once the day counts cover every read held (a store
/// from before them is counted once, when opened).
pub const DAY_COUNTS_COMPLETE: &[u8] = b"daycounts-complete";

/// The `meta` key of the reads of `force` captured on `day`.
pub fn day_count_key(day: u32, force: &ForceId) -> Vec<u8> {
    let mut k = DAY_COUNT_PREFIX.to_vec();
    k.extend_from_slice(&day.to_be_bytes());
    k.extend_from_slice(force.as_str().as_bytes());
    k
}

/// Where the day counts of `day` start.
pub fn day_count_start(day: u32) -> Vec<u8> {
    let mut k = DAY_COUNT_PREFIX.to_vec();
    k.extend_from_slice(&day.to_be_bytes());
    k
}

/// The day and force of a [`day_count_key`].
pub fn decode_day_count_key(k: &[u8]) -> Option<(u32, &str)> {
    let rest = k.strip_prefix(DAY_COUNT_PREFIX)?;
    let day = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    Some((day, std::str::from_utf8(&rest[4..]).ok()?))
}

/// In `meta`: how far each stream of the replicated log has been applied,
/// a big-endian `u64` (the stream's sequence number of the last message
/// applied) under this prefix and the stream's name. Written in the same
/// batch as what the message changed, so the store and its position never
/// disagree.
pub const LOG_POSITION_PREFIX: &[u8] = b"log/";

/// The `meta` key of the position applied of log stream `stream`.
pub fn log_position_key(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(LOG_POSITION_PREFIX.len() + stream.len());
    k.extend_from_slice(LOG_POSITION_PREFIX);
    k.extend_from_slice(stream.as_bytes());
    k
}

/// In `meta`: beside each stream's position, what it is a position in
/// (the log's identity and the subjects applied), UTF-8 under this prefix
/// and the stream's name, written with the position.
pub const LOG_SCOPE_PREFIX: &[u8] = b"logscope/";

/// The `meta` key of the scope of log stream `stream`'s position.
pub fn log_scope_key(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(LOG_SCOPE_PREFIX.len() + stream.len());
    k.extend_from_slice(LOG_SCOPE_PREFIX);
    k.extend_from_slice(stream.as_bytes());
    k
}

/// The stream of a [`log_position_key`].
pub fn decode_log_position_key(k: &[u8]) -> Option<&str> {
    std::str::from_utf8(k.strip_prefix(LOG_POSITION_PREFIX)?).ok()
}

/// In `meta`: each settled day's mark, a big-endian `u64` under this
/// prefix and the day (big-endian `u32`). A day's reads with sequence
/// numbers up to its mark are in the settled form (`geo`, `vrm_by_day`),
/// the others in the open form (`geo_open`, `vrm_open`); a day with no
/// mark has every read in the open form.
pub const SETTLED_PREFIX: &[u8] = b"settled/";

/// The `meta` key of `day`'s settled mark.
pub fn settled_key(day: u32) -> Vec<u8> {
    let mut k = SETTLED_PREFIX.to_vec();
    k.extend_from_slice(&day.to_be_bytes());
    k
}

/// The day of a [`settled_key`].
pub fn decode_settled_key(k: &[u8]) -> Option<u32> {
    be_u32(k.strip_prefix(SETTLED_PREFIX)?)
}

/// In `meta`: every coarse cell ([`nadc_core::geo::COARSE_RESOLUTION`])
/// that has held a read, each a big-endian `u32` under this prefix and
/// the cell (big-endian `u64`): the latest capture day of a read in it.
/// What a node tells its peers it can hold ([`coarse_key`]). Written in
/// the batch of the read that makes a cell's day later; a store of layout
/// 4, which had none, is scanned for them when opened.
pub const COARSE_PREFIX: &[u8] = b"coarse/";

/// The `meta` key of a coarse cell.
pub fn coarse_key(cell: u64) -> Vec<u8> {
    let mut k = COARSE_PREFIX.to_vec();
    k.extend_from_slice(&cell.to_be_bytes());
    k
}

/// The cell of a [`coarse_key`].
pub fn decode_coarse_key(k: &[u8]) -> Option<u64> {
    be_u64(k.strip_prefix(COARSE_PREFIX)?)
}

/// The first geographic key of `day` past every index cell within the
/// coarse cell `coarse` (an H3 cell at a resolution above the index's):
/// a scan for the coarse cells of a day seeks here after meeting one.
/// An H3 index holds a cell's digits from resolution 1 down, three bits
/// each, with every digit below its resolution set to 7; so the cells
/// within `coarse` are the indexes that differ from it only in the digits
/// below its resolution, and setting them all and adding one passes the
/// last of them.
pub fn geo_after_coarse(day: u32, coarse: u64) -> [u8; 24] {
    let res = (coarse >> 52) & 0xF;
    let below = (1u64 << (3 * (15 - res))) - 1;
    // The index cells have the index resolution in their mode bits, not
    // the coarse one's: set theirs.
    let index_res = u64::from(u8::from(nadc_core::geo::INDEX_RESOLUTION));
    let first = (coarse & !(0xF << 52)) | (index_res << 52);
    geo_key(day, (first | below).saturating_add(1), 0, 0)
}

/// The capture day and sequence number of a record key, in either form
/// (`geo`, `vrm_by_day` and their open forms all start with the day and
/// end with the sequence number).
pub fn record_key_day_seq(k: &[u8]) -> Option<(u32, u64)> {
    if k.len() < 12 {
        return None;
    }
    Some((be_u32(&k[..4])?, be_u64(&k[k.len() - 8..])?))
}

/// Key of a read record.
pub fn read_key(day: u32, seq: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&day.to_be_bytes());
    k[4..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a read record key into `(day, seq)`.
pub fn decode_read_key(k: &[u8]) -> Option<(u32, u64)> {
    let k: &[u8; 12] = k.try_into().ok()?;
    Some((be_u32(&k[..4])?, be_u64(&k[4..])?))
}

/// Key of an entry of the alerts-by-read index: the read's record key,
/// then the alert's position in the log. A day's entries are one range, so
/// expiry finds the alerts naming a day's reads without reading the log.
pub fn alert_read_key(day: u32, seq: u64, position: u64) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..12].copy_from_slice(&read_key(day, seq));
    k[12..].copy_from_slice(&position.to_be_bytes());
    k
}

/// Splits an alerts-by-read key into `(day, seq, position)`.
pub fn decode_alert_read_key(k: &[u8]) -> Option<(u32, u64, u64)> {
    let k: &[u8; 20] = k.try_into().ok()?;
    let (day, seq) = decode_read_key(&k[..12])?;
    Some((day, seq, be_u64(&k[12..])?))
}

/// The first key of a UTC day in a day-first column family: scans of one
/// day stop below `day_start(day + 1)`.
pub fn day_start(day: u32) -> [u8; 4] {
    day.to_be_bytes()
}

/// Key of a geographic index entry.
pub fn geo_key(day: u32, cell: u64, ms_of_day: u32, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..4].copy_from_slice(&day.to_be_bytes());
    k[4..12].copy_from_slice(&cell.to_be_bytes());
    k[12..16].copy_from_slice(&ms_of_day.to_be_bytes());
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// A decoded geographic index key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeoKey {
    /// UTC day of capture.
    pub day: u32,
    /// H3 cell at the index resolution.
    pub cell: u64,
    /// Milliseconds into the day.
    pub ms_of_day: u32,
    /// Sequence number of the read.
    pub seq: u64,
}

/// Decodes a geographic index key.
pub fn decode_geo_key(k: &[u8]) -> Option<GeoKey> {
    if k.len() != 24 {
        return None;
    }
    Some(GeoKey {
        day: be_u32(&k[..4])?,
        cell: be_u64(&k[4..12])?,
        ms_of_day: be_u32(&k[12..16])?,
        seq: be_u64(&k[16..])?,
    })
}

/// The prefix of every VRM index entry of `vrm` captured on `day`: `day ·
/// vrm · 0x00`.
pub fn vrm_prefix(day: u32, vrm: &Vrm) -> Vec<u8> {
    let mut k = Vec::with_capacity(vrm.as_str().len() + 17);
    push_vrm_prefix(&mut k, day, vrm);
    k
}

fn push_vrm_prefix(out: &mut Vec<u8>, day: u32, vrm: &Vrm) {
    out.extend_from_slice(&day.to_be_bytes());
    out.extend_from_slice(vrm.as_str().as_bytes());
    out.push(SEP);
}

/// Key of a VRM index entry: `day · vrm · 0x00 · ms_of_day:u32 · seq:u64`.
pub fn vrm_key(vrm: &Vrm, observed: Timestamp, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(vrm.as_str().len() + 17);
    push_vrm_key(&mut k, vrm, observed, seq);
    k
}

/// Appends [`vrm_key`] to `out`.
pub fn push_vrm_key(out: &mut Vec<u8>, vrm: &Vrm, observed: Timestamp, seq: u64) {
    push_vrm_prefix(out, observed.day(), vrm);
    push_ms_seq(out, observed, seq);
}

/// The key where entries of `vrm` at or after `t` (on `t`'s day) start.
pub fn vrm_bound(vrm: &Vrm, t: Timestamp) -> Vec<u8> {
    let mut k = vrm_prefix(t.day(), vrm);
    k.extend_from_slice(&t.ms_of_day().to_be_bytes());
    k
}

/// Splits a VRM index key into `(vrm text, observed, seq)`.
pub fn decode_vrm_key(k: &[u8]) -> Option<(&str, Timestamp, u64)> {
    let day = be_u32(k.get(..4)?)?;
    let rest = &k[4..];
    let sep = rest.iter().position(|b| *b == SEP)?;
    let text = std::str::from_utf8(&rest[..sep]).ok()?;
    if text.is_empty() {
        return None;
    }
    let (t, seq) = decode_ms_seq(day, &rest[sep + 1..])?;
    Some((text, t, seq))
}

/// The prefix of the cells of one camera on `day`: `day · force · 0x00 ·
/// camera_id · 0x00`.
pub fn camera_prefix(day: u32, force: &ForceId, camera_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(force.as_str().len() + camera_id.len() + 14);
    push_camera_prefix(&mut k, day, force, camera_id);
    k
}

fn push_camera_prefix(out: &mut Vec<u8>, day: u32, force: &ForceId, camera_id: &str) {
    out.extend_from_slice(&day.to_be_bytes());
    out.extend_from_slice(force.as_str().as_bytes());
    out.push(SEP);
    out.extend_from_slice(camera_id.as_bytes());
    out.push(SEP);
}

/// Key of a camera's cell on a day: [`camera_prefix`] `· cell:u64`, one
/// for each index cell the camera's reads of that day lie in (one for a
/// fixed camera; a mobile camera's reads carry their own positions).
pub fn camera_cell_key(day: u32, force: &ForceId, camera_id: &str, cell: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(force.as_str().len() + camera_id.len() + 14);
    push_camera_cell_key(&mut k, day, force, camera_id, cell);
    k
}

/// Appends [`camera_cell_key`] to `out`.
pub fn push_camera_cell_key(
    out: &mut Vec<u8>,
    day: u32,
    force: &ForceId,
    camera_id: &str,
    cell: u64,
) {
    push_camera_prefix(out, day, force, camera_id);
    out.extend_from_slice(&cell.to_be_bytes());
}

/// Splits a camera cell key into `(day, force, camera id, cell)`.
pub fn decode_camera_cell_key(k: &[u8]) -> Option<(u32, &str, &str, u64)> {
    let day = be_u32(k.get(..4)?)?;
    let (force, rest) = split_field(&k[4..])?;
    let (camera, rest) = split_field(rest)?;
    if rest.len() != 8 {
        return None;
    }
    Some((day, force, camera, be_u64(rest)?))
}

/// Value of a read's entry in `refs` (keyed by [`read_key`]): where its
/// record lies in `geo`, `cell:u64 · ms_of_day:u32`.
pub fn ref_value(cell: u64, ms_of_day: u32) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&cell.to_be_bytes());
    v[8..].copy_from_slice(&ms_of_day.to_be_bytes());
    v
}

/// Splits a `refs` value into `(cell, ms_of_day)`.
pub fn decode_ref_value(v: &[u8]) -> Option<(u64, u32)> {
    let v: &[u8; 12] = v.try_into().ok()?;
    Some((be_u64(&v[..8])?, be_u32(&v[8..])?))
}

/// A VRM dictionary value: the UTC capture days with reads of the VRM,
/// ascending, four big-endian bytes each (empty: none, and the entry
/// goes).
pub fn encode_days(days: &std::collections::BTreeSet<u32>) -> Vec<u8> {
    days.iter().flat_map(|d| d.to_be_bytes()).collect()
}

/// Decodes a VRM dictionary value.
pub fn decode_days(v: &[u8]) -> Option<std::collections::BTreeSet<u32>> {
    if !v.len().is_multiple_of(4) {
        return None;
    }
    v.chunks_exact(4).map(be_u32).collect()
}

/// A merge operand of the VRM dictionary: add `day` to the VRM's days.
/// The dictionary's merge operator takes the union; expiry rewrites a
/// value whole.
pub fn day_operand(day: u32) -> [u8; 4] {
    day.to_be_bytes()
}

/// Key of a de-duplication entry: one per (capture day, force, read id).
pub fn dedup_key(day: u32, force: &ForceId, read_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + force.as_str().len() + read_id.len());
    push_dedup_key(&mut k, day, force, read_id);
    k
}

/// Appends [`dedup_key`] to `out`.
pub fn push_dedup_key(out: &mut Vec<u8>, day: u32, force: &ForceId, read_id: &str) {
    out.extend_from_slice(&day.to_be_bytes());
    out.extend_from_slice(force.as_str().as_bytes());
    out.push(SEP);
    out.extend_from_slice(read_id.as_bytes());
}

/// Splits a de-duplication key into `(day, force, read id)`.
pub fn decode_dedup_key(k: &[u8]) -> Option<(u32, &str, &str)> {
    let day = be_u32(k.get(..4)?)?;
    let rest = &k[4..];
    let sep = rest.iter().position(|b| *b == SEP)?;
    Some((
        day,
        std::str::from_utf8(&rest[..sep]).ok()?,
        std::str::from_utf8(&rest[sep + 1..]).ok()?,
    ))
}

/// Key of a VRM dictionary entry: one per distinct VRM, ordered by its
/// confusable skeleton (see `nadc_core::vrm_match`), so that all VRMs that
/// differ only by confusable characters are one prefix scan, and a
/// wildcard's literal prefix is a prefix scan too (a skeleton is as long as
/// its VRM, character for character).
pub fn vrm_dict_key(skeleton: &str, vrm: &Vrm) -> Vec<u8> {
    let mut k = Vec::with_capacity(skeleton.len() * 2 + 1);
    push_vrm_dict_key(&mut k, skeleton, vrm);
    k
}

/// Appends [`vrm_dict_key`] to `out`.
pub fn push_vrm_dict_key(out: &mut Vec<u8>, skeleton: &str, vrm: &Vrm) {
    out.extend_from_slice(skeleton.as_bytes());
    out.push(SEP);
    out.extend_from_slice(vrm.as_str().as_bytes());
}

/// Splits a VRM dictionary key into `(skeleton, vrm)`.
pub fn decode_vrm_dict_key(k: &[u8]) -> Option<(&str, &str)> {
    let sep = k.iter().position(|b| *b == SEP)?;
    Some((
        std::str::from_utf8(&k[..sep]).ok()?,
        std::str::from_utf8(&k[sep + 1..]).ok()?,
    ))
}

/// Key of a registered camera.
pub fn cameras_key(force: &ForceId, camera_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(force.as_str().len() + camera_id.len() + 1);
    k.extend_from_slice(force.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(camera_id.as_bytes());
    k
}

/// Key of an authorisation: `force · 0x00 · id` (ids are scoped by the
/// granting force).
pub fn authorisation_key(force: &ForceId, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(force.as_str().len() + id.len() + 1);
    k.extend_from_slice(force.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits an authorisation key into `(force, id)`.
pub fn decode_authorisation_key(k: &[u8]) -> Option<(&str, &str)> {
    let sep = k.iter().position(|b| *b == SEP)?;
    let id = std::str::from_utf8(&k[sep + 1..]).ok()?;
    if id.is_empty() {
        return None;
    }
    Some((std::str::from_utf8(&k[..sep]).ok()?, id))
}

/// Whether an authorisations key is in the layout before ids were scoped
/// by force: the id alone, so no `0x00` (ids hold no control characters).
pub fn is_unscoped_authorisation_key(k: &[u8]) -> bool {
    !k.is_empty() && !k.contains(&SEP)
}

/// Key of a legal hold of `owner`'s case `case_ref` on a read.
pub fn hold_key(day: u32, seq: u64, owner: &ForceId, case_ref: &str) -> Vec<u8> {
    let mut k = read_key(day, seq).to_vec();
    k.extend_from_slice(owner.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(case_ref.as_bytes());
    k
}

/// Splits a hold key into `(day, seq, owner, case_ref)`; a hold written
/// before cases had owners has none.
pub fn decode_hold_key(k: &[u8]) -> Option<(u32, u64, Option<&str>, &str)> {
    let (day, seq) = decode_read_key(k.get(..12)?)?;
    let rest = &k[12..];
    Some(match rest.iter().position(|b| *b == SEP) {
        Some(sep) => (
            day,
            seq,
            Some(std::str::from_utf8(&rest[..sep]).ok()?),
            std::str::from_utf8(&rest[sep + 1..]).ok()?,
        ),
        None => (day, seq, None, std::str::from_utf8(rest).ok()?),
    })
}

/// Tag of a case register entry naming a read returned under the case.
pub const CASE_READ: u8 = b'R';
/// Tag of a case register entry marking a read as material.
pub const CASE_MATERIAL: u8 = b'M';
/// Tag of an owning agency's consultation status for a case.
pub const CASE_CONSULT: u8 = b'C';
/// Tag of the record of the search that opened a case.
pub const CASE_OPENED: u8 = b'O';
/// Tag of a force a case is shared with.
pub const CASE_SHARED: u8 = b'S';

/// The prefix of every case register entry with `tag` of `owner`'s case
/// `case_ref`: `tag · owner · 0x00 · case_ref · 0x00` (inside the registry
/// space `case`).
pub fn case_prefix(tag: u8, owner: &ForceId, case_ref: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.as_str().len() + case_ref.len() + 3);
    k.push(tag);
    k.extend_from_slice(owner.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(case_ref.as_bytes());
    k.push(SEP);
    k
}

/// Splits off a key's first text field, ended by `0x00`: `(field, rest
/// after the 0x00)`; `None` if there is no `0x00` or the field is not UTF-8.
fn split_field(k: &[u8]) -> Option<(&str, &[u8])> {
    let sep = k.iter().position(|b| *b == SEP)?;
    Some((std::str::from_utf8(&k[..sep]).ok()?, &k[sep + 1..]))
}

/// Splits a case register key into `(tag, owner, case_ref, rest)`.
pub fn decode_case_key(k: &[u8]) -> Option<(u8, &str, &str, &[u8])> {
    let (tag, rest) = k.split_first()?;
    let (owner, rest) = split_field(rest)?;
    let (case_ref, rest) = split_field(rest)?;
    Some((*tag, owner, case_ref, rest))
}

/// Key of a case register entry naming a read (`CASE_READ`, where the
/// store appends the search's audit sequence number, or `CASE_MATERIAL`):
/// [`case_prefix`] `· node · 0x00 · day:u32 · seq:u64`.
pub fn case_read_key(
    tag: u8,
    owner: &ForceId,
    case_ref: &str,
    node: &str,
    day: u32,
    seq: u64,
) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.as_str().len() + case_ref.len() + node.len() + 32);
    k.push(tag);
    k.extend_from_slice(owner.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(case_ref.as_bytes());
    k.push(SEP);
    k.extend_from_slice(node.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&read_key(day, seq));
    k
}

/// Splits the rest of a read's case register key (after [`case_prefix`])
/// into `(node, day, seq, audit_seq)`; the audit sequence number is there
/// for `CASE_READ` entries only.
pub fn decode_case_read_rest(rest: &[u8]) -> Option<(&str, u32, u64, Option<u64>)> {
    let (node, tail) = split_field(rest)?;
    let (day, seq) = decode_read_key(tail.get(..12)?)?;
    let audit = match tail.len() {
        12 => None,
        20 => Some(be_u64(&tail[12..])?),
        _ => return None,
    };
    Some((node, day, seq, audit))
}

/// Tag of a read returned under a case, written before cases had owners:
/// `r · case_ref · 0x00 · node · 0x00 · day:u32 · seq:u64 · audit_seq:u64`.
/// Such entries are not shown (their owner is unknown); retention still
/// deletes them with their reads.
pub const LEGACY_CASE_READ: u8 = b'r';
/// Tag of a material mark written before cases had owners: `m · case_ref
/// · 0x00 · node · 0x00 · day:u32 · seq:u64`.
pub const LEGACY_CASE_MATERIAL: u8 = b'm';

/// A decoded case register key written before cases had owners: `(tag,
/// case_ref, node, day, seq, audit_seq)`.
pub type LegacyCaseKey<'a> = (u8, &'a str, &'a str, u32, u64, Option<u64>);

/// Splits a case register key written before cases had owners.
pub fn decode_legacy_case_key(k: &[u8]) -> Option<LegacyCaseKey<'_>> {
    let (tag, rest) = k.split_first()?;
    let (case_ref, rest) = split_field(rest)?;
    let (node, day, seq, audit) = decode_case_read_rest(rest)?;
    Some((*tag, case_ref, node, day, seq, audit))
}

/// Key of a material mark written before cases had owners.
pub fn legacy_case_material_key(case_ref: &str, node: &str, day: u32, seq: u64) -> Vec<u8> {
    let mut k = vec![LEGACY_CASE_MATERIAL];
    k.extend_from_slice(case_ref.as_bytes());
    k.push(SEP);
    k.extend_from_slice(node.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&read_key(day, seq));
    k
}

/// Key of a force a case is shared with, without the audit sequence
/// number of the share (which the store appends): [`case_prefix`]
/// `· member · 0x00`.
pub fn case_share_key(owner: &ForceId, case_ref: &str, member: &ForceId) -> Vec<u8> {
    let mut k = case_prefix(CASE_SHARED, owner, case_ref);
    k.extend_from_slice(member.as_str().as_bytes());
    k.push(SEP);
    k
}

/// Tag of a hotlist definition key.
pub const HOTLIST_TAG: u8 = 0x01;
/// Tag of a hotlist entry key.
pub const HOTLIST_ENTRY_TAG: u8 = 0x02;

/// Key of a hotlist definition.
pub fn hotlist_key(owner: &ForceId, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.as_str().len() + name.len() + 2);
    k.push(HOTLIST_TAG);
    k.extend_from_slice(owner.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The prefix of every entry key of one hotlist.
pub fn hotlist_entries_prefix(owner: &ForceId, name: &str) -> Vec<u8> {
    let mut k = hotlist_key(owner, name);
    k[0] = HOTLIST_ENTRY_TAG;
    k.push(SEP);
    k
}

/// Key of a hotlist entry.
pub fn hotlist_entry_key(owner: &ForceId, name: &str, vrm: &Vrm) -> Vec<u8> {
    let mut k = hotlist_entries_prefix(owner, name);
    k.extend_from_slice(vrm.as_str().as_bytes());
    k
}

/// Splits a hotlist entry key into `(owner, name)`.
pub fn decode_hotlist_entry_key(k: &[u8]) -> Option<(&str, &str)> {
    let rest = k.strip_prefix(&[HOTLIST_ENTRY_TAG])?;
    let (owner, rest) = split_field(rest)?;
    let (name, _) = split_field(rest)?;
    Some((owner, name))
}

/// The smallest key strictly after every key starting with `prefix`, or
/// `None` if there is none (all bytes 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Overwrites the sequence number of a read, geographic, VRM or camera
/// index key: each of them ends in it, as eight big-endian bytes. A key
/// built with sequence number 0 away from the writer becomes the key of
/// the read the writer numbers. Keys shorter than eight bytes are left as
/// they are (no such key exists).
pub fn set_seq(key: &mut [u8], seq: u64) {
    if let Some(tail) = key.len().checked_sub(8).and_then(|at| key.get_mut(at..)) {
        tail.copy_from_slice(&seq.to_be_bytes());
    }
}

fn push_ms_seq(k: &mut Vec<u8>, t: Timestamp, seq: u64) {
    k.extend_from_slice(&t.ms_of_day().to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
}

/// Decodes the `ms_of_day:u32 · seq:u64` tail of a VRM or camera key of
/// `day`.
pub fn decode_ms_seq(day: u32, b: &[u8]) -> Option<(Timestamp, u64)> {
    if b.len() != 12 {
        return None;
    }
    let ms = be_u32(&b[..4])?;
    if u64::from(ms) >= nadc_core::time::MS_PER_DAY as u64 {
        return None;
    }
    Some((Timestamp::from_day_ms(day, ms), be_u64(&b[4..])?))
}

/// The time and sequence number at the end of a VRM or camera key.
pub fn decode_tail(k: &[u8]) -> Option<(Timestamp, u64)> {
    let day = be_u32(k.get(..4)?)?;
    decode_ms_seq(day, &k[k.len().checked_sub(12)?..])
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

/// Reads a big-endian `u64` from exactly 8 bytes.
pub fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests;
