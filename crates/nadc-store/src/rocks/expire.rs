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
        let (refs_cf, geo_cf, vrm_cf, cells_cf, dedup_cf, meta_cf, dict_cf) = (
            cf(&db, CF_REFS)?,
            cf(&db, CF_GEO)?,
            cf(&db, CF_VRM)?,
            cf(&db, CF_CAMERA)?,
            cf(&db, CF_DEDUP)?,
            cf(&db, CF_META)?,
            cf(&db, CF_VRM_DICT)?,
        );
        let (geo_open_cf, vrm_open_cf) = (cf(&db, CF_GEO_OPEN)?, cf(&db, CF_VRM_OPEN)?);
        // The step's reads, in sequence order, from `refs`.
        let mut refs = Vec::new();
        let mut out = Expired::default();
        {
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(keys::day_start(step.day.saturating_add(1)).to_vec());
            let mut it = db.raw_iterator_cf_opt(refs_cf, ro);
            it.seek(keys::read_key(step.day, step.from_seq));
            while let Some(k) = it.key() {
                let (day, seq) = keys::decode_read_key(k)
                    .ok_or_else(|| read::corrupt(CF_REFS, "undecodable key"))?;
                if refs.len() >= step.max.max(1) {
                    out.next_seq = Some(seq);
                    break;
                }
                refs.push(ReadRef { day, seq });
                it.next();
            }
            it.status().map_err(engine)?;
        }
        let mut batch = WriteBatch::default();
        let mut vrms = std::collections::BTreeSet::new();
        // The step's deleted reads, in ascending order.
        let mut deleted_seqs = Vec::new();
        // The whole day goes: its column families, all keyed by day first,
        // are dropped with one range delete each with its last step (and
        // compacted); nothing is deleted read by read.
        let whole_day = step.keep_forces.is_empty() && step.held.is_empty();
        // Expiry runs on the writer thread and never beside settling, so
        // each read is in the form the view names; it is deleted from both
        // all the same (a settling pass cut short leaves unseen copies).
        let view = View::new(&db);
        let _ = read::fetch_records(&view, &refs, &mut |place, r| {
            let seq = r.seq;
            if step.keep_forces.contains(&r.force) {
                return ControlFlow::Continue(());
            }
            if step.held.contains(&seq) {
                out.held += 1;
                return ControlFlow::Continue(());
            }
            if !whole_day {
                let t = r.read.observed_at;
                batch.delete_cf(refs_cf, keys::read_key(t.day(), seq));
                let vrm_key = keys::vrm_key(&r.read.vrm, t, seq);
                for (c, k) in [
                    (geo_cf, &place.key[..]),
                    (geo_open_cf, &place.key[..]),
                    (vrm_cf, &vrm_key[..]),
                    (vrm_open_cf, &vrm_key[..]),
                ] {
                    batch.delete_cf(c, k);
                }
                batch.delete_cf(
                    dedup_cf,
                    keys::dedup_key(t.day(), &r.force, &r.read.read_id),
                );
            }
            *out.deleted.entry(r.force).or_default() += 1;
            vrms.insert(r.read.vrm);
            deleted_seqs.push(seq);
            ControlFlow::Continue(())
        })?;
        let (day_lo, day_hi) = (
            keys::day_start(step.day),
            keys::day_start(step.day.saturating_add(1)),
        );
        let drop_day = whole_day && out.next_seq.is_none();
        let day_cfs = [
            refs_cf,
            geo_cf,
            vrm_cf,
            geo_open_cf,
            vrm_open_cf,
            cells_cf,
            dedup_cf,
        ];
        if drop_day {
            for c in day_cfs {
                batch.delete_range_cf(c, day_lo, day_hi);
            }
            batch.delete_cf(meta_cf, keys::settled_key(step.day));
        }
        if deleted_seqs.is_empty() && !drop_day {
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
        // The dictionary forgets the day for each VRM with no read of it
        // left (a whole day: every VRM read that day, step by step), and a
        // VRM with no day left goes.
        self.dict_written.clear();
        self.cells_written.clear();
        let groups = ConfusableGroups::default();
        let mut dict = WriteBatch::default();
        drop(view);
        let view = View::new(&db);
        let mut vit = view.records(Clustering::Vehicle, None)?;
        for vrm in &vrms {
            if !whole_day {
                let prefix = keys::vrm_prefix(step.day, vrm);
                vit.seek(&prefix);
                if vit.key().is_some_and(|k| k.starts_with(&prefix)) {
                    continue;
                }
                vit.status()?;
            }
            let key = keys::vrm_dict_key(&groups.skeleton(vrm.as_str()), vrm);
            let mut days = match db.get_pinned_cf(dict_cf, &key).map_err(engine)? {
                Some(v) => keys::decode_days(&v)
                    .ok_or_else(|| read::corrupt(CF_VRM_DICT, "value is not a set of days"))?,
                None => continue,
            };
            days.remove(&step.day);
            if days.is_empty() {
                dict.delete_cf(dict_cf, key);
            } else {
                dict.put_cf(dict_cf, key, keys::encode_days(&days));
            }
        }
        drop(vit);
        // The earliest capture time held, to the day: the first day left.
        let mut fit = db.raw_iterator_cf(refs_cf);
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
        drop(view);
        if drop_day {
            for c in day_cfs {
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
