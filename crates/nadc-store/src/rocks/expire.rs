//! Retention: deleting an expired day's reads a bounded step at a time,
//! from the records and every index, with every alert naming them.

use super::*;

/// Adds to `batch` the deletion of every logged alert that names one of
/// `seqs` (reads of `day` that `batch` deletes, ascending; `None`: every
/// read of the day), with its verification state and its alerts-by-read
/// entries, so that no alert outlives a read it names. Returns how many
/// alerts go.
pub(super) fn expire_alerts(
    db: &DB,
    batch: &mut WriteBatch,
    day: u32,
    seqs: Option<&[u64]>,
) -> Result<u64, StoreError> {
    let (first, end) = match seqs {
        None => (0, keys::alert_read_key(day.saturating_add(1), 0, 0)),
        Some(seqs) => match (seqs.first(), seqs.last()) {
            (Some(first), Some(last)) => {
                (*first, keys::alert_read_key(day, last.saturating_add(1), 0))
            }
            _ => return Ok(0),
        },
    };
    let (alerts_cf, state_cf, by_read_cf) = (
        cf(db, CF_ALERTS)?,
        cf(db, CF_ALERT_STATE)?,
        cf(db, CF_ALERT_READS)?,
    );
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(end.to_vec());
    let mut it = db.raw_iterator_cf_opt(by_read_cf, ro);
    it.seek(keys::alert_read_key(day, first, 0));
    let mut gone = std::collections::BTreeSet::new();
    while let Some(k) = it.key() {
        let (_, seq, position) =
            keys::decode_alert_read_key(k).ok_or_else(|| StoreError::Corrupt {
                what: "alert_reads",
                detail: "undecodable key".into(),
            })?;
        let deleted = seqs.is_none_or(|s| s.binary_search(&seq).is_ok());
        if deleted && gone.insert(position) {
            let key = position.to_be_bytes();
            // An alert naming two deleted reads is met twice: the first
            // time deletes every entry it has.
            if let Some(v) = db.get_pinned_cf(alerts_cf, key).map_err(engine)? {
                let alert: Alert = record::decode("alerts", &v)?;
                for r in alert.reads() {
                    batch.delete_cf(by_read_cf, keys::alert_read_key(r.day, r.seq, position));
                }
            }
            batch.delete_cf(alerts_cf, key);
            batch.delete_cf(state_cf, key);
        }
        it.next();
    }
    it.status().map_err(engine)?;
    Ok(gone.len() as u64)
}
impl WriterState {
    /// Deletes a bounded step of an expired day's reads (see
    /// [`Store::expire`]).
    pub(super) fn expire_step(&mut self, step: &ExpireDay) -> Result<Expired, StoreError> {
        let db = self.db.clone();
        let (reads_cf, geo_cf, vrm_cf, camera_cf, dedup_cf, meta_cf, dict_cf) = (
            cf(&db, CF_READS)?,
            cf(&db, CF_GEO)?,
            cf(&db, CF_VRM)?,
            cf(&db, CF_CAMERA)?,
            cf(&db, CF_DEDUP)?,
            cf(&db, CF_META)?,
            cf(&db, CF_VRM_DICT)?,
        );
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys::day_start(step.day.saturating_add(1)).to_vec());
        let mut it = db.raw_iterator_cf_opt(reads_cf, ro);
        it.seek(keys::read_key(step.day, step.from_seq));
        let mut batch = WriteBatch::default();
        let mut out = Expired::default();
        let mut vrms = std::collections::BTreeSet::new();
        // The step's deleted reads, in ascending order.
        let mut deleted_seqs = Vec::new();
        let mut n = 0usize;
        // The whole day goes: its day-first column families are dropped with
        // one range delete each (and compacted), and only the VRM and camera
        // entries, keyed by subject, are deleted one by one.
        let whole_day = step.keep_forces.is_empty() && step.held.is_empty();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let (_, seq) = keys::decode_read_key(k).ok_or_else(|| StoreError::Corrupt {
                what: "reads",
                detail: "undecodable key".into(),
            })?;
            if n >= step.max.max(1) {
                out.next_seq = Some(seq);
                break;
            }
            let r = record::decode_read(seq, v)?;
            if step.keep_forces.contains(&r.force) {
                it.next();
                continue;
            }
            if step.held.contains(&seq) {
                out.held += 1;
                it.next();
                continue;
            }
            let t = r.read.observed_at;
            if !whole_day {
                batch.delete_cf(reads_cf, k);
                batch.delete_cf(
                    geo_cf,
                    keys::geo_key(t.day(), r.position.index_cell(), t.ms_of_day(), seq),
                );
                batch.delete_cf(
                    dedup_cf,
                    keys::dedup_key(t.day(), &r.force, &r.read.read_id),
                );
            }
            batch.delete_cf(vrm_cf, keys::vrm_key(&r.read.vrm, t, seq));
            batch.delete_cf(
                camera_cf,
                keys::camera_key(&r.force, &r.read.camera_id, t, seq),
            );
            *out.deleted.entry(r.force.clone()).or_default() += 1;
            vrms.insert(r.read.vrm);
            deleted_seqs.push(seq);
            n += 1;
            it.next();
        }
        it.status().map_err(engine)?;
        drop(it);
        let (day_lo, day_hi) = (
            keys::day_start(step.day),
            keys::day_start(step.day.saturating_add(1)),
        );
        let drop_day = whole_day && out.next_seq.is_none();
        if drop_day {
            for c in [reads_cf, geo_cf, dedup_cf] {
                batch.delete_range_cf(c, day_lo, day_hi);
            }
        }
        if n == 0 && !drop_day {
            return Ok(out);
        }
        // Alerts go in the write that deletes the reads they name: a whole
        // day's reads (and so its alerts, even ones logged between its
        // steps) with its last step.
        out.alerts_deleted = if drop_day {
            expire_alerts(&db, &mut batch, step.day, None)?
        } else if whole_day {
            0
        } else {
            expire_alerts(&db, &mut batch, step.day, Some(&deleted_seqs))?
        };
        let mut stats = self.stats.clone();
        let mut day_counts = Vec::new();
        for (force, c) in &out.deleted {
            let e = stats.reads_by_force.entry(force.clone()).or_default();
            *e = e.saturating_sub(*c);
            let mut k = META_COUNT_PREFIX.to_vec();
            k.extend_from_slice(force.as_str().as_bytes());
            batch.put_cf(meta_cf, k, e.to_be_bytes());
            let key = (step.day, force.clone());
            let left = self
                .day_counts
                .get(&key)
                .copied()
                .unwrap_or_default()
                .saturating_sub(*c);
            put_day_count(&mut batch, meta_cf, step.day, force, left);
            day_counts.push((key, left));
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        db.write_opt(batch, &wo).map_err(engine)?;
        // A VRM with no read left leaves the dictionary too.
        self.dict_written.clear();
        let groups = ConfusableGroups::default();
        let mut dict = WriteBatch::default();
        let mut vit = db.raw_iterator_cf(vrm_cf);
        for vrm in &vrms {
            let prefix = keys::vrm_prefix(vrm);
            vit.seek(&prefix);
            let left = vit.valid() && vit.key().is_some_and(|k| k.starts_with(&prefix));
            if !left {
                dict.delete_cf(
                    dict_cf,
                    keys::vrm_dict_key(&groups.skeleton(vrm.as_str()), vrm),
                );
            }
        }
        vit.status().map_err(engine)?;
        drop(vit);
        // The earliest capture time held, to the day: the first day left.
        let mut fit = db.raw_iterator_cf(reads_cf);
        fit.seek_to_first();
        let first_day = fit.key().and_then(keys::decode_read_key).map(|(d, _)| d);
        fit.status().map_err(engine)?;
        drop(fit);
        if first_day.is_none() {
            stats.latest = None;
            dict.delete_cf(meta_cf, META_LATEST);
        }
        stats.earliest = match (first_day, stats.earliest) {
            (None, _) => None,
            (Some(d), Some(e)) if e.day() >= d => Some(e),
            (Some(d), _) => Some(Timestamp::from_day_ms(d, 0)),
        };
        match stats.earliest {
            Some(e) => dict.put_cf(meta_cf, META_EARLIEST, (e.millis() as u64).to_be_bytes()),
            None => dict.delete_cf(meta_cf, META_EARLIEST),
        }
        db.write_opt(dict, &wo).map_err(engine)?;
        if drop_day {
            for c in [reads_cf, geo_cf, dedup_cf] {
                db.compact_range_cf(c, Some(day_lo), Some(day_hi));
            }
        }
        self.stats = stats;
        for (key, left) in day_counts {
            self.day_counts.insert(key, left);
        }
        Ok(out)
    }
}
