//! The writer thread: every read, alert, audit entry and expiry goes
//! through it, committed in groups, one synced write each.

use super::*;
use nadc_core::alert::AlertDetail;

/// The writer thread's state: the next sequence number and the counters.
pub(super) struct WriterState {
    pub(super) db: Arc<DB>,
    pub(super) sync: bool,
    pub(super) next_seq: u64,
    pub(super) next_alert: u64,
    /// The next audit sequence number and the hash it links to.
    pub(super) audit_head: (u64, Digest),
    pub(super) stats: StoreStats,
    /// VRM dictionary keys, each followed by a capture day, the writer has
    /// added, so that the reads of a VRM on a day already in the
    /// dictionary cost no dictionary write (one memtable insert fewer per
    /// read; a national day's vehicles are read 16 times each). Only keys
    /// of committed batches go in, and expiry, the only thing that takes
    /// days out of the dictionary, empties it. At most
    /// [`DICT_WRITTEN_CAP`]: when full it starts again empty, which costs
    /// rewrites of keys already there, never a missed key.
    pub(super) dict_written: HashSet<Box<[u8]>>,
    /// Camera cell keys the writer has written, for the same reason (a
    /// fixed camera's reads of a day all name one cell). Expiry empties it.
    pub(super) cells_written: HashSet<Box<[u8]>>,
    /// Reads held per (capture day, owning force), as `meta` holds them.
    pub(super) day_counts: HashMap<(u32, ForceId), u64>,
    /// Every coarse cell that has held a read, with the latest capture
    /// day of a read in it, as `meta` holds them ([`keys::coarse_key`]):
    /// a read whose cell and day are already covered writes nothing.
    pub(super) coarse: HashMap<u64, u32>,
    /// When each capture day last took a read (since this process
    /// started): a day settles once it has been quiet a while.
    pub(super) activity: Arc<Mutex<HashMap<u32, std::time::Instant>>>,
}

/// Writes the count of reads of `force` captured on `day` (none: the key
/// goes).
pub(super) fn put_day_count(
    batch: &mut WriteBatch,
    meta: &rocksdb::ColumnFamily,
    day: u32,
    force: &ForceId,
    n: u64,
) {
    let k = keys::day_count_key(day, force);
    if n == 0 {
        batch.delete_cf(meta, k);
    } else {
        batch.put_cf(meta, k, n.to_be_bytes());
    }
}
/// The reads held per owning force, as `meta`'s counters say.
pub(super) fn force_counts(db: &DB) -> Result<BTreeMap<ForceId, u64>, StoreError> {
    let mut counts = BTreeMap::new();
    let mut it = db.raw_iterator_cf(cf(db, CF_META)?);
    it.seek(META_COUNT_PREFIX);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let Some(name) = k.strip_prefix(META_COUNT_PREFIX) else {
            break;
        };
        let force = std::str::from_utf8(name)
            .ok()
            .and_then(|s| ForceId::new(s).ok())
            .ok_or_else(|| StoreError::Corrupt {
                what: "meta",
                detail: "bad force in counter".into(),
            })?;
        let n = keys::be_u64(v).ok_or_else(|| StoreError::Corrupt {
            what: "meta",
            detail: "counter is not 8 bytes".into(),
        })?;
        counts.insert(force, n);
        it.next();
    }
    it.status().map_err(engine)?;
    Ok(counts)
}

/// Most keys in [`WriterState::dict_written`]: about 64 bytes each, some
/// 16 MiB when full.
pub(super) const DICT_WRITTEN_CAP: usize = 256 * 1024;

impl WriterState {
    pub(super) fn load(db: Arc<DB>, sync: bool) -> Result<(Self, StoreStats), StoreError> {
        let meta = cf(&db, CF_META)?;
        let get_u64 = |k: &[u8]| -> Result<Option<u64>, StoreError> {
            match db.get_pinned_cf(meta, k).map_err(engine)? {
                None => Ok(None),
                Some(v) => keys::be_u64(&v)
                    .map(Some)
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "meta",
                        detail: format!("{} is not 8 bytes", String::from_utf8_lossy(k)),
                    }),
            }
        };
        let next_seq = get_u64(META_NEXT_SEQ)?.unwrap_or(1);
        let next_alert = get_u64(META_NEXT_ALERT)?.unwrap_or(1);
        let audit_head = {
            let mut it = db.raw_iterator_cf(cf(&db, CF_AUDIT)?);
            it.seek_to_last();
            match it.value() {
                Some(v) => {
                    let last: ChainedEntry = record::decode("audit", v)?;
                    (last.seq + 1, last.hash)
                }
                None => {
                    it.status().map_err(engine)?;
                    (1, GENESIS)
                }
            }
        };
        let mut stats = StoreStats {
            earliest: get_u64(META_EARLIEST)?.map(|v| Timestamp::from_millis(v as i64)),
            latest: get_u64(META_LATEST)?.map(|v| Timestamp::from_millis(v as i64)),
            ..Default::default()
        };
        stats.reads_by_force = force_counts(&db)?;
        let day_counts = load_day_counts(&db)?;
        let coarse = read::coarse_cells(&db, ReadOptions::default())?
            .into_iter()
            .collect();
        debug!(next_seq, "store writer state loaded");
        let state = Self {
            db,
            sync,
            next_seq,
            next_alert,
            audit_head,
            stats: stats.clone(),
            dict_written: HashSet::new(),
            cells_written: HashSet::new(),
            day_counts,
            coarse,
            activity: Arc::default(),
        };
        Ok((state, stats))
    }

    pub(super) fn run(
        mut self,
        rx: Receiver<AppendRequest>,
        shared: &RwLock<StoreStats>,
        last_alert: &AtomicU64,
    ) {
        // A job that must run on its own (expiry, settling) met while
        // draining a group waits here for the group's commit.
        let mut held: Option<AppendRequest> = None;
        while let Some(first) = held.take().or_else(|| rx.recv().ok()) {
            if let Some(step) = &first.job.settle {
                let result = self.settle_step(step).map(|()| Committed::default());
                let _ = first.reply.send(result);
                continue;
            }
            if let Some(step) = &first.job.expire {
                let result = self.expire_step(step).map(|expired| Committed {
                    appended: Vec::new(),
                    alert_positions: Vec::new(),
                    audit: Vec::new(),
                    expired: Some(expired),
                    state_set: false,
                });
                if result.is_ok()
                    && let Ok(mut s) = shared.write()
                {
                    *s = self.stats.clone();
                }
                let _ = first.reply.send(result);
                continue;
            }
            let size = |j: &Job| j.reads.reads.len() + j.alerts.len() + j.audit.len();
            let mut n = size(&first.job);
            let mut group = vec![first];
            while n < MAX_GROUP_READS {
                match rx.try_recv() {
                    Ok(req) if req.job.on_its_own() => {
                        held = Some(req);
                        break;
                    }
                    Ok(req) => {
                        n += size(&req.job);
                        group.push(req);
                    }
                    Err(_) => break,
                }
            }
            match self.commit(&mut group) {
                Ok(outcomes) => {
                    if let Ok(mut s) = shared.write() {
                        *s = self.stats.clone();
                    }
                    last_alert.store(self.next_alert - 1, Ordering::Release);
                    for (req, out) in group.into_iter().zip(outcomes) {
                        let _ = req.reply.send(Ok(out));
                    }
                }
                Err(e) => {
                    warn!(error = %e, reads = n, "group commit failed; nothing in it acknowledged");
                    for req in group {
                        let _ = req.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Writes one group atomically. On error nothing is written and the
    /// in-memory state is left as it was.
    pub(super) fn commit(
        &mut self,
        group: &mut [AppendRequest],
    ) -> Result<Vec<Committed>, StoreError> {
        let db = self.db.clone();
        let (refs_cf, geo_cf, vrm_cf, camera_cf, dedup_cf, meta_cf) = (
            cf(&db, CF_REFS)?,
            cf(&db, CF_GEO_OPEN)?,
            cf(&db, CF_VRM_OPEN)?,
            cf(&db, CF_CAMERA)?,
            cf(&db, CF_DEDUP)?,
            cf(&db, CF_META)?,
        );
        let dict_cf = cf(&db, CF_VRM_DICT)?;
        let alerts_cf = cf(&db, CF_ALERTS)?;
        let alert_reads_cf = cf(&db, CF_ALERT_READS)?;
        let audit_cf = cf(&db, CF_AUDIT)?;
        let alert_state_cf = cf(&db, CF_ALERT_STATE)?;
        let mut audit_head = self.audit_head;
        let fates = prepare::dedup_plan(group.iter().map(|req| &req.job.reads), |keys| {
            db.batched_multi_get_cf(dedup_cf, keys.iter(), true)
                .into_iter()
                .map(|found| match found.map_err(engine)? {
                    None => Ok(None),
                    Some(v) => keys::be_u64(&v)
                        .map(Some)
                        .ok_or_else(|| StoreError::Corrupt {
                            what: "dedup",
                            detail: "value is not 8 bytes".into(),
                        }),
                })
                .collect()
        })?;

        let mut next_seq = self.next_seq;
        let mut next_alert = self.next_alert;
        // Logs `alert` if every read it names is stored, or stored by this
        // group (sequence numbers from `self.next_seq` on), and gives its
        // position. A clone's other read was found before this group: expiry
        // may have deleted it since, and an alert is logged only with every
        // read it names. (Expiry runs on this thread: what is stored now
        // stays until this group is written.)
        let first_new_seq = self.next_seq;
        let mut log_alert =
            |batch: &mut WriteBatch, alert: &Alert| -> Result<Option<u64>, StoreError> {
                for r in alert.reads() {
                    if r.seq < first_new_seq
                        && db
                            .get_pinned_cf(refs_cf, keys::read_key(r.day, r.seq))
                            .map_err(engine)?
                            .is_none()
                    {
                        return Ok(None);
                    }
                }
                let pos = next_alert;
                next_alert += 1;
                batch.put_cf(
                    alerts_cf,
                    pos.to_be_bytes(),
                    record::encode("alert", alert)?,
                );
                for r in alert.reads() {
                    batch.put_cf(alert_reads_cf, keys::alert_read_key(r.day, r.seq, pos), []);
                }
                Ok(Some(pos))
            };
        let mut stats = self.stats.clone();
        // Reads added per (capture day, owning force).
        let mut day_added: HashMap<(u32, ForceId), u64> = HashMap::new();
        // The sequence number of every read of the group, in arrival order.
        let mut seqs: Vec<u64> = Vec::with_capacity(fates.len());
        let mut new_dict_keys: Vec<Box<[u8]>> = Vec::new();
        let mut new_cells: Vec<Box<[u8]>> = Vec::new();
        // Coarse cells whose latest day this group moves on.
        let mut coarse: HashMap<u64, u32> = HashMap::new();
        let mut batch = WriteBatch::default();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut fates = fates.into_iter();
        for req in group.iter_mut() {
            let req = &mut req.job;
            let mut out = Vec::with_capacity(req.reads.reads.len());
            let mut alert_positions = Vec::new();
            let PreparedReads { bytes, reads } = &mut req.reads;
            // The number of each read of this append stored new here.
            let mut new_here: Vec<Option<u64>> = Vec::with_capacity(reads.len());
            for p in reads.iter() {
                let Some(force) = req.force.as_ref() else {
                    return Err(StoreError::Engine("reads appended without a force".into()));
                };
                let Some(fate) = fates.next() else {
                    return Err(StoreError::Engine("dedup lookup size mismatch".into()));
                };
                let earlier = match fate {
                    Fate::Store => None,
                    Fate::Stored(seq) => Some(seq),
                    Fate::SameAs(i) => Some(seqs.get(i).copied().ok_or_else(|| {
                        StoreError::Engine("dedup refers to a later read".into())
                    })?),
                };
                if let Some(seq) = earlier {
                    seqs.push(seq);
                    new_here.push(None);
                    out.push(Appended::Duplicate { seq });
                    continue;
                }
                let seq = next_seq;
                next_seq += 1;
                seqs.push(seq);
                for key in [&p.read_key, &p.geo_key, &p.vrm_key] {
                    keys::set_seq(&mut bytes[key.clone()], seq);
                }
                let part = |r: &std::ops::Range<usize>| &bytes[r.clone()];
                let t = p.observed_at;
                batch.put_cf(refs_cf, part(&p.read_key), p.ref_value);
                batch.put_cf(geo_cf, part(&p.geo_key), part(&p.record));
                batch.put_cf(vrm_cf, part(&p.vrm_key), part(&p.record));
                let camera_cell = part(&p.camera_cell);
                if !self.cells_written.contains(camera_cell) {
                    batch.put_cf(camera_cf, camera_cell, []);
                    new_cells.push(camera_cell.into());
                }
                let day = t.day();
                let latest = coarse.get(&p.coarse).or_else(|| self.coarse.get(&p.coarse));
                if latest.is_none_or(|d| *d < day) {
                    coarse.insert(p.coarse, day);
                }
                let dict_day = part(&p.dict_day);
                if !self.dict_written.contains(dict_day) {
                    batch.merge_cf(dict_cf, part(&p.dict_key), keys::day_operand(t.day()));
                    new_dict_keys.push(dict_day.into());
                }
                for detail in &p.alerts {
                    let alert = Alert {
                        raised_at: p.received_at,
                        read: ReadRef { day: t.day(), seq },
                        read_force: force.clone(),
                        detail: detail.clone(),
                    };
                    alert_positions.extend(log_alert(&mut batch, &alert)?);
                }
                new_here.push(Some(seq));
                batch.put_cf(dedup_cf, part(&p.dedup), seq.to_be_bytes());
                *stats.reads_by_force.entry(force.clone()).or_default() += 1;
                *day_added.entry((t.day(), force.clone())).or_default() += 1;
                stats.earliest = Some(stats.earliest.map_or(t, |e| e.min(t)));
                stats.latest = Some(stats.latest.map_or(t, |l| l.max(t)));
                out.push(Appended::Stored { seq });
            }
            // Clone flags within the append, once every read of it has its
            // number: each new read's with the nearest earlier read (in
            // capture time) of its VRM stored new here.
            for (p, seq) in reads.iter().zip(&new_here) {
                let Some(seq) = *seq else { continue };
                let nearest = p
                    .earlier_in_batch
                    .iter()
                    .find_map(|c| Some((c, new_here.get(c.earlier).copied().flatten()?)));
                let Some((c, other_seq)) = nearest else {
                    continue;
                };
                let (Some(flag), Some(other), Some(force)) =
                    (c.flag, reads.get(c.earlier), req.force.as_ref())
                else {
                    continue;
                };
                let alert = Alert {
                    raised_at: p.received_at,
                    read: ReadRef {
                        day: p.observed_at.day(),
                        seq,
                    },
                    read_force: force.clone(),
                    detail: AlertDetail::Clone {
                        other: ReadRef {
                            day: other.observed_at.day(),
                            seq: other_seq,
                        },
                        distance_m: flag.distance_m,
                        seconds: flag.seconds,
                        speed_kmh: flag.speed_kmh,
                    },
                };
                alert_positions.extend(log_alert(&mut batch, &alert)?);
            }
            for alert in &req.alerts {
                alert_positions.extend(log_alert(&mut batch, alert)?);
            }
            let mut state_set = false;
            if let Some((position, state)) = &req.alert_state {
                let key = position.to_be_bytes();
                if db.get_pinned_cf(alerts_cf, key).map_err(engine)?.is_some() {
                    batch.put_cf(alert_state_cf, key, record::encode("alert state", state)?);
                    state_set = true;
                } else {
                    for entry in &mut req.audit {
                        entry.outcome = Outcome::Refused(format!(
                            "no alert is logged at position {position} (never raised, or deleted by retention with its read)"
                        ));
                    }
                }
            }
            let mut audit = Vec::with_capacity(req.audit.len());
            for entry in &req.audit {
                let (seq, prev) = audit_head;
                let chained = ChainedEntry {
                    seq,
                    prev,
                    hash: entry.chain_hash(seq, &prev),
                    entry: entry.clone(),
                };
                batch.put_cf(
                    audit_cf,
                    seq.to_be_bytes(),
                    record::encode("audit", &chained)?,
                );
                audit_head = (seq + 1, chained.hash);
                audit.push(chained);
            }
            if let Some(last) = audit.last() {
                let registers_cf = cf(&db, CF_REGISTERS)?;
                for (k, v) in &req.registry {
                    let mut key = k.clone();
                    key.extend_from_slice(&last.seq.to_be_bytes());
                    batch.put_cf(registers_cf, key, v);
                }
            }
            outcomes.push(Committed {
                appended: out,
                alert_positions,
                audit,
                expired: None,
                state_set,
            });
        }
        let next_alert = next_alert;
        let positions: Vec<_> = group
            .iter()
            .filter_map(|req| req.job.log_position.as_ref())
            .collect();
        if next_seq == self.next_seq
            && next_alert == self.next_alert
            && audit_head == self.audit_head
            && positions.is_empty()
        {
            // Only duplicates: nothing to write.
            return Ok(outcomes);
        }
        batch.put_cf(meta_cf, META_NEXT_SEQ, next_seq.to_be_bytes());
        batch.put_cf(meta_cf, META_NEXT_ALERT, next_alert.to_be_bytes());
        for (force, n) in &stats.reads_by_force {
            let mut k = META_COUNT_PREFIX.to_vec();
            k.extend_from_slice(force.as_str().as_bytes());
            batch.put_cf(meta_cf, k, n.to_be_bytes());
        }
        for ((day, force), n) in day_added.iter_mut() {
            *n += self
                .day_counts
                .get(&(*day, force.clone()))
                .copied()
                .unwrap_or_default();
            put_day_count(&mut batch, meta_cf, *day, force, *n);
        }
        for (cell, day) in &coarse {
            batch.put_cf(meta_cf, keys::coarse_key(*cell), day.to_be_bytes());
        }
        if let (Some(e), Some(l)) = (stats.earliest, stats.latest) {
            batch.put_cf(meta_cf, META_EARLIEST, (e.millis() as u64).to_be_bytes());
            batch.put_cf(meta_cf, META_LATEST, (l.millis() as u64).to_be_bytes());
        }
        // Jobs are committed in the order they were submitted: the last
        // position of a stream in the group is the furthest.
        for at in positions {
            batch.put_cf(
                meta_cf,
                keys::log_position_key(&at.stream),
                at.seq.to_be_bytes(),
            );
            batch.put_cf(
                meta_cf,
                keys::log_scope_key(&at.stream),
                at.scope.as_bytes(),
            );
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        db.write_opt(batch, &wo).map_err(engine)?;
        if self.dict_written.len() + new_dict_keys.len() > DICT_WRITTEN_CAP {
            self.dict_written.clear();
        }
        self.dict_written.extend(new_dict_keys);
        if self.cells_written.len() + new_cells.len() > DICT_WRITTEN_CAP {
            self.cells_written.clear();
        }
        self.cells_written.extend(new_cells);
        self.next_seq = next_seq;
        self.next_alert = next_alert;
        self.audit_head = audit_head;
        self.stats = stats;
        if !day_added.is_empty()
            && let Ok(mut activity) = self.activity.lock()
        {
            let now = std::time::Instant::now();
            for (day, _) in day_added.keys() {
                activity.insert(*day, now);
            }
        }
        self.day_counts.extend(day_added);
        self.coarse.extend(coarse);
        Ok(outcomes)
    }
}
