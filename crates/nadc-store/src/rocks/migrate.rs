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
    let reads = cf(db, CF_READS)?;
    let mut it = db.raw_iterator_cf(holds);
    it.seek_to_first();
    let mut batch = WriteBatch::default();
    let mut n = 0;
    while let Some(k) = it.key() {
        if let Some((day, seq, None, case_ref)) = keys::decode_hold_key(k) {
            if let Some(v) = db
                .get_pinned_cf(reads, keys::read_key(day, seq))
                .map_err(engine)?
            {
                let read = record::decode_read(seq, &v)?;
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
        let mut it = db.raw_iterator_cf(cf(db, CF_READS)?);
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (day, seq) = keys::decode_read_key(k).ok_or_else(|| corrupt("read key"))?;
            let read = record::decode_read(seq, v)?;
            *counts.entry((day, read.force)).or_default() += 1;
            it.next();
        }
        it.status().map_err(engine)?;
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
