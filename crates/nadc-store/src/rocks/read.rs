//! The read paths: index scans and record fetches, as the `Store` trait
//! asks for them (`mod.rs` delegates here).

use super::*;

impl RocksStore {
    pub(super) fn read_vrm_neighbours(
        &self,
        probes: &[(Vrm, Timestamp)],
        look_ms: i64,
    ) -> Result<Vec<VrmNeighbours>, StoreError> {
        let look_ms = look_ms.max(0);
        let mut it = self.db.raw_iterator_cf(self.cf(CF_VRM)?);
        let mut out = Vec::with_capacity(probes.len());
        for (vrm, at) in probes {
            let prefix = keys::vrm_prefix(vrm);
            // The entry under the iterator, if it is `vrm`'s and within
            // `look_ms` of `at`.
            let entry = |it: &rocksdb::DBRawIteratorWithThreadMode<'_, DB>| -> Result<Option<VrmEntry>, StoreError> {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    return Ok(None);
                };
                if !k.starts_with(&prefix) {
                    return Ok(None);
                }
                let corrupt = |detail: &str| StoreError::Corrupt {
                    what: "vrm",
                    detail: detail.into(),
                };
                let (_, observed_at, seq) =
                    keys::decode_vrm_key(k).ok_or_else(|| corrupt("undecodable key"))?;
                if (observed_at.millis() - at.millis()).abs() > look_ms {
                    return Ok(None);
                }
                let position = keys::decode_geo_value(v)
                    .and_then(|(lat, lon)| GeoPoint::from_micro(lat, lon).ok())
                    .ok_or_else(|| corrupt("value is not a position"))?;
                Ok(Some(VrmEntry {
                    observed_at,
                    seq,
                    position,
                }))
            };
            // Forward only (a reverse step on a merging iterator is costly):
            // from `at - look_ms`, the last entry at or before `at`, then
            // the first after it.
            it.seek(keys::vrm_bound(vrm, at.plus_millis(-look_ms)));
            let (mut earlier, mut later) = (None, None);
            while it.valid() {
                let Some(e) = entry(&it)? else { break };
                if e.observed_at <= *at {
                    earlier = Some(e);
                    it.next();
                } else {
                    later = Some(e);
                    break;
                }
            }
            out.push([earlier, later]);
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    pub(super) fn read_camera_entries(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(CameraEntry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from {
            return Ok(());
        }
        let cf = self.cf(CF_CAMERA)?;
        let prefix = keys::camera_prefix(force, camera_id);
        let bound = |t: Timestamp| {
            let mut k = prefix.clone();
            k.extend_from_slice(&(t.millis().max(0) as u64).to_be_bytes());
            k
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(bound(to.plus_millis(1)));
        let mut it = self.db.raw_iterator_cf_opt(cf, ro);
        it.seek(bound(from));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let corrupt = |detail: &str| StoreError::Corrupt {
                what: "camera",
                detail: detail.into(),
            };
            let (observed_at, seq) = k
                .len()
                .checked_sub(16)
                .and_then(|at| keys::decode_time_seq(&k[at..]))
                .ok_or_else(|| corrupt("undecodable key"))?;
            let vrm = std::str::from_utf8(v)
                .ok()
                .and_then(|s| Vrm::normalise(s).ok())
                .ok_or_else(|| corrupt("value is not a VRM"))?;
            if visit(CameraEntry {
                observed_at,
                seq,
                vrm,
            })
            .is_break()
            {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(engine)
    }

    pub(super) fn read_vrm_timeline(
        &self,
        vrm: &Vrm,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from {
            return Ok(());
        }
        self.index_then_fetch(
            CF_VRM,
            keys::vrm_bound(vrm, from),
            keys::vrm_bound(vrm, to.plus_millis(1)),
            visit,
        )
    }

    pub(super) fn read_geo_scan(
        &self,
        cells: &[CellRange],
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(GeoHit) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from || cells.is_empty() {
            return Ok(());
        }
        let cf = self.cf(CF_GEO)?;
        let corrupt = || StoreError::Corrupt {
            what: "geo index",
            detail: "undecodable entry".into(),
        };
        for day in from.day()..=to.day() {
            let lo = if day == from.day() {
                from.ms_of_day()
            } else {
                0
            };
            let hi = if day == to.day() {
                to.ms_of_day()
            } else {
                (MS_PER_DAY - 1) as u32
            };
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(keys::day_start(day.saturating_add(1)).to_vec());
            let mut it = self.db.raw_iterator_cf_opt(cf, ro);
            for range in cells {
                // Skip-scan: seek to (day, cell, lo); read the cell's entries
                // up to hi; then seek straight to the next cell.
                it.seek(keys::geo_key(day, range.start, lo, 0));
                while it.valid() {
                    let Some(key) = it.key() else { break };
                    let k = keys::decode_geo_key(key).ok_or_else(corrupt)?;
                    if k.day != day || k.cell > range.end {
                        break;
                    }
                    if k.ms_of_day < lo {
                        it.seek(keys::geo_key(day, k.cell, lo, 0));
                        continue;
                    }
                    if k.ms_of_day > hi {
                        match k.cell.checked_add(1) {
                            Some(next) if next <= range.end => {
                                it.seek(keys::geo_key(day, next, lo, 0));
                                continue;
                            }
                            _ => break,
                        }
                    }
                    let (lat, lon) = it
                        .value()
                        .and_then(keys::decode_geo_value)
                        .ok_or_else(corrupt)?;
                    let position = GeoPoint::from_micro(lat, lon).map_err(|_| corrupt())?;
                    let hit = GeoHit {
                        seq: k.seq,
                        observed_at: Timestamp::from_day_ms(day, k.ms_of_day),
                        position,
                    };
                    if visit(hit).is_break() {
                        return Ok(());
                    }
                    it.next();
                }
                it.status().map_err(engine)?;
            }
        }
        Ok(())
    }

    pub(super) fn read_camera_reads(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from {
            return Ok(());
        }
        let prefix = keys::camera_prefix(force, camera_id);
        let bound = |t: Timestamp| {
            let mut k = prefix.clone();
            k.extend_from_slice(&(t.millis().max(0) as u64).to_be_bytes());
            k
        };
        self.index_then_fetch(CF_CAMERA, bound(from), bound(to.plus_millis(1)), visit)
    }

    pub(super) fn read_vrm_dict(
        &self,
        skeleton_prefix: &str,
        whole: bool,
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_VRM_DICT)?;
        let mut prefix = skeleton_prefix.as_bytes().to_vec();
        if whole {
            prefix.push(keys::SEP);
        }
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::prefix_end(&prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, ro);
        it.seek(&prefix);
        while let Some(key) = it.key() {
            if visit(&dict_vrm(key)?).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(engine)
    }

    pub(super) fn read_vrm_dict_whole(
        &self,
        skeletons: &[String],
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_VRM_DICT)?;
        let mut sorted: Vec<&String> = skeletons.iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        // One iterator, seeking forward from probe to probe.
        let mut it = self.db.raw_iterator_cf(cf);
        for skeleton in sorted {
            let mut prefix = skeleton.as_bytes().to_vec();
            prefix.push(keys::SEP);
            it.seek(&prefix);
            while let Some(key) = it.key().filter(|k| k.starts_with(&prefix)) {
                if visit(&dict_vrm(key)?).is_break() {
                    return Ok(());
                }
                it.next();
            }
            it.status().map_err(engine)?;
        }
        Ok(())
    }

    pub(super) fn read_scan_days(
        &self,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from {
            return Ok(());
        }
        let cf = self.cf(CF_READS)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys::day_start(to.day().saturating_add(1)).to_vec());
        let mut it = self.db.raw_iterator_cf_opt(cf, ro);
        it.seek(keys::day_start(from.day()));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let (_, seq) = keys::decode_read_key(k).ok_or_else(|| StoreError::Corrupt {
                what: "reads",
                detail: "undecodable key".into(),
            })?;
            if visit(record::decode_read(seq, v)?).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(engine)
    }

    pub(super) fn read_get_reads(&self, refs: &[ReadRef]) -> Result<Vec<StoredRead>, StoreError> {
        let pairs: Vec<(u32, u64)> = refs.iter().map(|r| (r.day, r.seq)).collect();
        let mut out = Vec::with_capacity(refs.len());
        for chunk in pairs.chunks(SCAN_BATCH) {
            let _ = self.fetch_records(chunk, &mut |r| {
                out.push(r);
                ControlFlow::Continue(())
            })?;
        }
        Ok(out)
    }
}
