//! Moving a store written by an earlier layout to this one, when it is
//! opened: each step finds what the earlier layout left and rewrites it.

use super::*;

/// Builds the alerts-by-read index of a store written before it existed:
/// one entry per read each logged alert names, written 64 Ki alerts at a
/// time.
pub(super) fn index_alerts_by_read(db: &DB) -> Result<u64, StoreError> {
    let by_read_cf = cf(db, CF_ALERT_READS)?;
    let mut it = db.raw_iterator_cf(cf(db, CF_ALERTS)?);
    it.seek_to_first();
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    let mut batch = WriteBatch::default();
    let mut n = 0;
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if n > 0 && n % 65_536 == 0 {
            db.write_opt(std::mem::take(&mut batch), &wo)
                .map_err(engine)?;
        }
        let position = keys::be_u64(k).ok_or_else(|| StoreError::Corrupt {
            what: "alerts",
            detail: "key is not 8 bytes".into(),
        })?;
        let alert: Alert = record::decode("alerts", v)?;
        for r in alert.reads() {
            batch.put_cf(by_read_cf, keys::alert_read_key(r.day, r.seq, position), []);
        }
        n += 1;
        it.next();
    }
    it.status().map_err(engine)?;
    db.write_opt(batch, &wo).map_err(engine)?;
    Ok(n)
}

/// Gives each hold written before cases had owners (`day · seq ·
/// case_ref`) an owner: the force that owns the held read, whose
/// supervisors and disclosure officers can then show and release it like
/// any hold of theirs (before, nobody could, and it kept its read for
/// ever). One synced batch, so a crash leaves either layout whole; a hold
/// whose read is gone holds nothing and is dropped. Returns how many were
/// rewritten or dropped.
pub(super) fn own_unowned_holds(db: &DB) -> Result<u64, StoreError> {
    let holds = cf(db, CF_HOLDS)?;
    let view = View::new(db);
    let mut it = db.raw_iterator_cf(holds);
    it.seek_to_first();
    let mut batch = WriteBatch::default();
    let mut n = 0;
    while let Some(k) = it.key() {
        if let Some((day, seq, None, case_ref)) = keys::decode_hold_key(k) {
            let place = read::record_places(&view, &[ReadRef { day, seq }])?;
            let found = match place.into_iter().next().flatten() {
                Some(p) => {
                    let v = view.get_placed(std::slice::from_ref(&p))?;
                    v.into_iter().next().flatten().map(|v| (p.at, v))
                }
                None => None,
            };
            if let Some((at, v)) = found {
                let read = record::decode_read(seq, at, &v)?;
                batch.put_cf(holds, keys::hold_key(day, seq, &read.force, case_ref), []);
            }
            batch.delete_cf(holds, k);
            n += 1;
        }
        it.next();
    }
    it.status().map_err(engine)?;
    drop(it);
    if n > 0 {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(batch, &wo).map_err(engine)?;
    }
    Ok(n)
}

/// Moves authorisations stored under their id alone (before ids were
/// scoped by force) to `force · 0x00 · id` keys, in one synced batch (so a
/// crash leaves either layout whole); returns how many moved.
pub(super) fn scope_authorisations_by_force(db: &DB) -> Result<u64, StoreError> {
    let cf = cf(db, CF_AUTHORISATIONS)?;
    let mut it = db.raw_iterator_cf(cf);
    it.seek_to_first();
    let mut batch = WriteBatch::default();
    let mut n = 0;
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if keys::is_unscoped_authorisation_key(k) {
            let a = record::decode_unscoped_authorisation(v)?;
            if a.id.as_bytes() != k {
                return Err(StoreError::Corrupt {
                    what: "authorisations",
                    detail: format!("authorisation {:?} under another id", a.id),
                });
            }
            batch.put_cf(
                cf,
                keys::authorisation_key(&a.force, &a.id),
                record::encode_authorisation(&a)?,
            );
            batch.delete_cf(cf, k);
            n += 1;
        }
        it.next();
    }
    it.status().map_err(engine)?;
    if n > 0 {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(batch, &wo).map_err(engine)?;
    }
    Ok(n)
}

/// The reads held per (capture day, owning force) as `meta` holds them;
/// a store from before day counts is counted first (once: every record
/// read), and the counts written with the mark that they are complete.
pub(super) fn load_day_counts(db: &DB) -> Result<HashMap<(u32, ForceId), u64>, StoreError> {
    let meta = cf(db, CF_META)?;
    let corrupt = |detail: &str| StoreError::Corrupt {
        what: "meta",
        detail: detail.into(),
    };
    if db
        .get_pinned_cf(meta, keys::DAY_COUNTS_COMPLETE)
        .map_err(engine)?
        .is_none()
    {
        let mut counts: HashMap<(u32, ForceId), u64> = HashMap::new();
        let view = View::new(db);
        let mut it = view.records(Clustering::Place, None)?;
        it.seek(keys::day_start(0));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let k = keys::decode_geo_key(k).ok_or_else(|| corrupt("geo key"))?;
            let read = record::decode_read(k.seq, Timestamp::from_day_ms(k.day, k.ms_of_day), v)?;
            *counts.entry((k.day, read.force)).or_default() += 1;
            it.next();
        }
        it.status()?;
        drop(it);
        drop(view);
        let mut batch = WriteBatch::default();
        for ((day, force), n) in &counts {
            put_day_count(&mut batch, meta, *day, force, *n);
        }
        batch.put_cf(meta, keys::DAY_COUNTS_COMPLETE, []);
        db.write(batch).map_err(engine)?;
        if !counts.is_empty() {
            info!(days = counts.len(), "reads held per day and force counted");
        }
        return Ok(counts);
    }
    let mut counts = HashMap::new();
    let mut it = db.raw_iterator_cf(meta);
    it.seek(keys::DAY_COUNT_PREFIX);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !k.starts_with(keys::DAY_COUNT_PREFIX) {
            break;
        }
        let (day, force) = keys::decode_day_count_key(k).ok_or_else(|| corrupt("day count key"))?;
        let force = ForceId::new(force).map_err(|_| corrupt("day count force"))?;
        counts.insert(
            (day, force),
            keys::be_u64(v).ok_or_else(|| corrupt("day count"))?,
        );
        it.next();
    }
    it.status().map_err(engine)?;
    Ok(counts)
}

/// Moves a store of layout 4 to layout 5: finds the coarse cells its
/// reads lie in ([`keys::coarse_key`]) and writes them, with the new
/// layout, in one synced batch. For each day, one seek per coarse cell
/// holding reads that day by H3's hierarchy ([`keys::geo_after_coarse`]),
/// not one step per read. The scan meets index cells, not positions, so it
/// takes every coarse cell a read there can lie in
/// ([`nadc_core::geo::coarse_cells_near`]): a few more than hold reads.
fn find_coarse_cells(db: &DB) -> Result<usize, StoreError> {
    let meta = cf(db, CF_META)?;
    let mut cells: HashMap<u64, u32> = HashMap::new();
    let view = View::new(db);
    let mut it = view.records(Clustering::Place, None)?;
    it.seek(keys::day_start(0));
    while let Some(k) = it.key() {
        let k = keys::decode_geo_key(k).ok_or_else(|| read::corrupt(CF_GEO, "undecodable key"))?;
        let parent = nadc_core::geo::coarse_parent(k.cell)
            .ok_or_else(|| read::corrupt(CF_GEO, "a key's cell is not an H3 cell"))?;
        for near in nadc_core::geo::coarse_cells_near(k.cell) {
            let latest = cells.entry(near).or_insert(k.day);
            *latest = (*latest).max(k.day);
        }
        it.seek(keys::geo_after_coarse(k.day, parent));
    }
    it.status()?;
    drop(it);
    drop(view);
    let mut batch = WriteBatch::default();
    for (cell, day) in &cells {
        batch.put_cf(meta, keys::coarse_key(*cell), day.to_be_bytes());
    }
    batch.put_cf(meta, META_LAYOUT, LAYOUT.to_be_bytes());
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo).map_err(engine)?;
    info!(
        cells = cells.len(),
        "the store is in layout 5 (the coarse cells holding reads found)"
    );
    Ok(cells.len())
}

/// Moves a store of layout 3 (every record in the settled form, no open
/// form) to layout 4: each day held gets the mark that settles every read
/// it holds, in one synced batch with layout 4. Returns the days.
fn settle_layout_3(db: &DB) -> Result<u64, StoreError> {
    let meta = cf(db, CF_META)?;
    let next_seq = db
        .get_pinned_cf(meta, META_NEXT_SEQ)
        .map_err(engine)?
        .and_then(|v| keys::be_u64(&v))
        .unwrap_or(1);
    let mark = next_seq.saturating_sub(1).to_be_bytes();
    let mut batch = WriteBatch::default();
    let mut days = 0u64;
    let mut it = db.raw_iterator_cf(cf(db, CF_GEO)?);
    it.seek_to_first();
    // One seek per day held.
    while let Some(k) = it.key() {
        let (day, _) =
            keys::record_key_day_seq(k).ok_or_else(|| read::corrupt(CF_GEO, "undecodable key"))?;
        batch.put_cf(meta, keys::settled_key(day), mark);
        days += 1;
        match day.checked_add(1) {
            Some(next) => it.seek(keys::day_start(next)),
            None => break,
        }
    }
    it.status().map_err(engine)?;
    drop(it);
    batch.put_cf(meta, META_LAYOUT, 4u64.to_be_bytes());
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo).map_err(engine)?;
    info!(days, "the store is in layout 4 (every day held settled)");
    Ok(days)
}

/// Where the move of a store of the first layout has reached: the last
/// record key (`day · seq`) moved, in `meta`.
const MIGRATE_CURSOR: &[u8] = b"migrate-layout-3/next";
/// Records moved per synced batch.
const MIGRATE_BATCH: usize = 16 * 1024;

/// Moves a store of the first layout (records in `reads` keyed by day and
/// sequence number; VRM and camera indexes keyed by subject first) to this
/// one, in place: each record is written where this layout keeps it (in
/// `geo`, over the position the first layout kept there, and in
/// `vrm_by_day`), with its camera's cell, its place in `refs` and its day
/// in the VRM dictionary; then the first layout's column families are
/// dropped. Batches are synced with a cursor, so a crash resumes where it
/// stopped; a store is not served before the move is whole. Returns how
/// many records moved.
pub(super) fn migrate_layout(db: &mut DB) -> Result<u64, StoreError> {
    let meta = cf(db, CF_META)?;
    let mut layout = db
        .get_pinned_cf(meta, META_LAYOUT)
        .map_err(engine)?
        .and_then(|v| keys::be_u64(&v));
    let mut moved = 0u64;
    if layout.is_none() && db.cf_handle(LEGACY_READS).is_some() {
        let cursor = db
            .get_pinned_cf(meta, MIGRATE_CURSOR)
            .map_err(engine)?
            .map(|v| v.to_vec());
        let reads = cf(db, LEGACY_READS)?;
        let total = db
            .property_int_value_cf(reads, "rocksdb.estimate-num-keys")
            .map_err(engine)?
            .unwrap_or(0);
        info!(
            records = total,
            "moving the store to layout 3, then 4 (records by place and by VRM, every index by day first)"
        );
        let (refs, geo, vrm, camera, dict) = (
            cf(db, CF_REFS)?,
            cf(db, CF_GEO)?,
            cf(db, CF_VRM)?,
            cf(db, CF_CAMERA)?,
            cf(db, CF_VRM_DICT)?,
        );
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut it = db.raw_iterator_cf(reads);
        match &cursor {
            Some(last) => {
                it.seek(last);
                if it.key() == Some(last.as_slice()) {
                    it.next();
                }
            }
            None => it.seek_to_first(),
        }
        let mut batch = WriteBatch::default();
        let mut in_batch = 0usize;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (_, seq) = keys::decode_read_key(k)
                .ok_or_else(|| read::corrupt(LEGACY_READS, "undecodable key"))?;
            // A record of the first layout holds its own capture time.
            let r = record::decode_read(seq, Timestamp::EPOCH, v)?;
            let force = r.force.clone();
            let mut one = [NewRead::new(r.read, r.position, r.received_at)];
            let p = PreparedReads::new(&force, &mut one)?;
            let PreparedReads {
                mut bytes,
                reads: prepared,
            } = p;
            for pr in &prepared {
                for key in [&pr.read_key, &pr.geo_key, &pr.vrm_key] {
                    keys::set_seq(&mut bytes[key.clone()], seq);
                }
                let part = |r: &std::ops::Range<usize>| &bytes[r.clone()];
                batch.put_cf(refs, part(&pr.read_key), pr.ref_value);
                batch.put_cf(geo, part(&pr.geo_key), part(&pr.record));
                batch.put_cf(vrm, part(&pr.vrm_key), part(&pr.record));
                batch.put_cf(camera, part(&pr.camera_cell), []);
                batch.merge_cf(
                    dict,
                    part(&pr.dict_key),
                    keys::day_operand(pr.observed_at.day()),
                );
            }
            in_batch += 1;
            moved += 1;
            if in_batch == MIGRATE_BATCH {
                batch.put_cf(meta, MIGRATE_CURSOR, k);
                db.write_opt(std::mem::take(&mut batch), &wo)
                    .map_err(engine)?;
                in_batch = 0;
                if moved % (1 << 20) < MIGRATE_BATCH as u64 {
                    info!(moved, of = total, "moving the store to layout 3");
                }
            }
            it.next();
        }
        it.status().map_err(engine)?;
        drop(it);
        batch.delete_cf(meta, MIGRATE_CURSOR);
        batch.put_cf(meta, META_LAYOUT, 3u64.to_be_bytes());
        db.write_opt(batch, &wo).map_err(engine)?;
        info!(moved, "the store is in layout 3");
        layout = Some(3);
    }
    // Each later layout's step, in turn.
    if layout == Some(3) {
        settle_layout_3(db)?;
        layout = Some(4);
    }
    if layout == Some(4) {
        find_coarse_cells(db)?;
        layout = Some(LAYOUT);
    }
    if layout.is_none() {
        // A new store.
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.put_cf_opt(meta, META_LAYOUT, LAYOUT.to_be_bytes(), &wo)
            .map_err(engine)?;
    } else if layout == Some(2) {
        return Err(StoreError::Corrupt {
            what: "meta",
            detail:
                "the store is in layout 2, a development draft of layout 3 that no release wrote: \
                     load its reads again into a new store"
                    .into(),
        });
    } else if layout != Some(LAYOUT) {
        return Err(StoreError::Corrupt {
            what: "meta",
            detail: format!(
                "the store is in layout {}, which this release does not know (it knows {LAYOUT}): open it with the release that wrote it",
                layout.unwrap_or_default()
            ),
        });
    }
    // The first layout's column families go once the move is whole (also
    // after a crash between the two).
    for name in LEGACY_CFS {
        if db.cf_handle(name).is_some() {
            db.drop_cf(name).map_err(engine)?;
        }
    }
    Ok(moved)
}
