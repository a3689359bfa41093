//! Settling a day: its records move once from the open form, where ingest
//! writes them, to the settled form, where they stay until retention.
//!
//! The open form's column families hold only the days still taking reads,
//! so their compaction costs what those days cost, whatever the history
//! held. A day settles once it has ended (by `StoreOptions::settle_after`)
//! and has been quiet (no read for `settle_quiet`):
//! 1. From one snapshot, each clustering's open entries of the day are read
//!    in key order (they already lie sorted) and written to sorted table
//!    files (zstd, as the bottom level is), rolling every
//!    [`SETTLE_FILE_BYTES`] of entries.
//! 2. The settled column families take the files in whole
//!    (`ingest_external_file`): a day's range there is empty, so they go to
//!    the bottom level, and compaction never rewrites them.
//! 3. The writer thread, in one synced batch, sets the day's mark (the
//!    highest sequence number moved) and deletes the moved open entries.
//!    Until then the settled copies lie beyond the day's mark, so no
//!    search sees them; from then, the open ones are deleted in the same
//!    snapshot that moves the mark (see `view`).
//!
//! A late read of a settled day lands in the open form, beyond the mark,
//! and settles with the next pass. A crash between 2 and 3 leaves settled
//! copies beyond the mark, unseen, which the next pass writes again (the
//! same keys and values). Settling and expiry exclude each other (the
//! maintenance lock), so a read expired meanwhile is never copied back.

#[cfg(test)]
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant, SystemTime};

use rocksdb::{IngestExternalFileOptions, SstFileWriter};

use super::*;

/// Bytes of entries (keys and values, before compression: about 40 % of
/// it once compressed) in one settled table file before the next begins.
const SETTLE_FILE_BYTES: u64 = 256 << 20;
/// How often the settling thread looks for days to settle, at most and at
/// least (between, as often as the quiet time).
const SETTLE_POLL: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(10));

/// One day settled ([`RocksStore::settle_day`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The UTC day of capture.
    pub day: u32,
    /// Reads moved to the settled form by this pass.
    pub reads: u64,
    /// The day's mark: its reads up to this sequence number are settled.
    pub mark: u64,
}

/// The writer thread's part of settling: the mark, and the open copies'
/// deletion.
pub(super) struct SettleStep {
    day: u32,
    mark: u64,
    /// The day's mark before this pass.
    from: u64,
}

/// What settles days: shared by the store and its settling thread.
pub(super) struct Settler {
    pub(super) db: Arc<DB>,
    /// The writer's queue (taken away when the store closes).
    pub(super) tx: RwLock<Option<SyncSender<AppendRequest>>>,
    /// Held while a day settles or expires: the two exclude each other.
    pub(super) maintenance: Mutex<()>,
    /// When each day last took a read ([`WriterState::activity`]).
    pub(super) activity: Arc<Mutex<HashMap<u32, Instant>>>,
    /// Where table files are written before the store takes them.
    pub(super) dir: PathBuf,
    pub(super) after: Duration,
    pub(super) quiet: Duration,
}

impl Settler {
    /// The days with reads in the open form, ascending: one seek a day.
    pub(super) fn open_days(&self) -> Result<Vec<u32>, StoreError> {
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_GEO_OPEN)?);
        let mut days = Vec::new();
        it.seek_to_first();
        while let Some(k) = it.key() {
            let (day, _) = keys::record_key_day_seq(k)
                .ok_or_else(|| read::corrupt(CF_GEO_OPEN, "undecodable key"))?;
            days.push(day);
            match day.checked_add(1) {
                Some(next) => it.seek(keys::day_start(next)),
                None => break,
            }
        }
        it.status().map_err(engine)?;
        Ok(days)
    }

    /// The open days that have ended by `after` and been quiet for
    /// `quiet`.
    pub(super) fn ready_days(&self) -> Result<Vec<u32>, StoreError> {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let after_ms = self.after.as_millis() as i64;
        let activity = self
            .activity
            .lock()
            .map_err(|_| StoreError::Engine("activity lock poisoned".into()))?
            .clone();
        Ok(self
            .open_days()?
            .into_iter()
            .filter(|day| {
                let end_ms = (i64::from(*day) + 1) * MS_PER_DAY;
                end_ms.saturating_add(after_ms) <= now_ms
                    && activity
                        .get(day)
                        .is_none_or(|last| last.elapsed() >= self.quiet)
            })
            .collect())
    }

    /// Settles what `day` holds in the open form now (see the module).
    /// `None`: nothing of it was open.
    pub(super) fn settle_day(&self, day: u32) -> Result<Option<Settled>, StoreError> {
        let _maintenance = self
            .maintenance
            .lock()
            .map_err(|_| StoreError::Engine("maintenance lock poisoned".into()))?;
        let started = Instant::now();
        let Some((step, reads)) = self.copy_day(day)? else {
            return Ok(None);
        };
        let mark = step.mark;
        // The open copies go with a range delete; the background compaction
        // drops them (a manual compaction of the day's range here also
        // rewrote the next day's newest files, which overlap it: 20 s of a
        // 10 M-read day's settling; see `options::cf_options` for the
        // bound on how long they may lie).
        self.submit(step)?;
        info!(
            day,
            reads,
            mark,
            secs = started.elapsed().as_secs_f64(),
            "day settled"
        );
        Ok(Some(Settled { day, reads, mark }))
    }

    /// Steps 1 and 2 of settling `day` (see the module): its open entries
    /// copied to the settled form, beyond its mark. Returns the last step,
    /// and how many reads were copied; `None`: nothing of it was open.
    fn copy_day(&self, day: u32) -> Result<Option<(SettleStep, u64)>, StoreError> {
        let view = View::new(&self.db);
        let from = view.mark(day)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| StoreError::Engine(format!("settle dir: {e}")))?;
        let mut files: Vec<(&'static str, Vec<PathBuf>)> = Vec::new();
        let (mut reads, mut mark) = (0u64, from);
        let outcome = (|| {
            for clustering in [Clustering::Place, Clustering::Vehicle] {
                let (settled, open) = clustering.cfs();
                let (n, top, written) = self.write_tables(&view, day, from, settled, open)?;
                if clustering == Clustering::Place {
                    reads = n;
                }
                mark = mark.max(top);
                files.push((settled, written));
            }
            if reads == 0 {
                return Ok(None);
            }
            // The snapshot goes before the files are taken in, and they
            // are taken in without snapshot consistency: so they keep
            // sequence number 0 at the bottom level (a file given a newer
            // one there is later rewritten whole by RocksDB to zero it:
            // measured, 420 s of compaction a column family over a
            // 100 M-read load). No search needs the consistency: copies
            // beyond its snapshot's mark are skipped.
            drop(view);
            let mut io = IngestExternalFileOptions::default();
            io.set_move_files(true);
            io.set_snapshot_consistency(false);
            for (settled, written) in &files {
                if !written.is_empty() {
                    self.db
                        .ingest_external_file_cf_opts(cf(&self.db, settled)?, &io, written.clone())
                        .map_err(engine)?;
                }
            }
            Ok(Some(()))
        })();
        for (_, written) in &files {
            for f in written {
                let _ = std::fs::remove_file(f);
            }
        }
        Ok(outcome?.map(|()| (SettleStep { day, mark, from }, reads)))
    }

    /// Writes the open entries of `day` in `open` beyond `from`, in key
    /// order, to table files for `settled`. Returns how many, the highest
    /// sequence number, and the files.
    fn write_tables(
        &self,
        view: &View<'_>,
        day: u32,
        from: u64,
        settled: &'static str,
        open: &'static str,
    ) -> Result<(u64, u64, Vec<PathBuf>), StoreError> {
        let mut ro = view.read_options();
        ro.set_iterate_upper_bound(keys::day_start(day.saturating_add(1)).to_vec());
        ro.fill_cache(false);
        ro.set_readahead_size(4 << 20);
        let mut it = self.db.raw_iterator_cf_opt(cf(&self.db, open)?, ro);
        it.seek(keys::day_start(day));
        let opts = options::settled_table_options(settled);
        let mut files = Vec::new();
        let mut writer: Option<SstFileWriter<'_>> = None;
        let (mut n, mut top, mut in_file) = (0u64, 0u64, 0u64);
        let result = (|| {
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let (_, seq) = keys::record_key_day_seq(k)
                    .ok_or_else(|| read::corrupt(open, "undecodable key"))?;
                if seq > from {
                    // (The writer knows its file's size only once finished.)
                    if writer.is_none() || in_file >= SETTLE_FILE_BYTES {
                        in_file = 0;
                        if let Some(mut w) = writer.take() {
                            w.finish().map_err(engine)?;
                        }
                        let path = self
                            .dir
                            .join(format!("{settled}-{day}-{}.sst", files.len()));
                        let _ = std::fs::remove_file(&path);
                        let w = SstFileWriter::create(&opts);
                        w.open(&path).map_err(engine)?;
                        files.push(path);
                        writer = Some(w);
                    }
                    if let Some(w) = writer.as_mut() {
                        w.put(k, v).map_err(engine)?;
                    }
                    in_file += (k.len() + v.len()) as u64;
                    n += 1;
                    top = top.max(seq);
                }
                it.next();
            }
            it.status().map_err(engine)?;
            if let Some(mut w) = writer.take() {
                w.finish().map_err(engine)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            for f in &files {
                let _ = std::fs::remove_file(f);
            }
            return Err(e);
        }
        Ok((n, top, files))
    }

    fn submit(&self, step: SettleStep) -> Result<(), StoreError> {
        submit_to(
            &self.tx,
            Job {
                settle: Some(step),
                ..Job::default()
            },
        )
        .map(|_| ())
    }

    /// The settling thread: every so often ([`SETTLE_POLL`]), settles the
    /// days ready, until `stop` is sent or dropped.
    pub(super) fn run(&self, stop: Receiver<()>) {
        let poll = self.quiet.clamp(SETTLE_POLL.0, SETTLE_POLL.1);
        loop {
            match stop.recv_timeout(poll) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let days = match self.ready_days() {
                Ok(d) => d,
                Err(e) => {
                    warn!(error = %e, "could not list the days to settle");
                    continue;
                }
            };
            for day in days {
                if let Err(e) = self.settle_day(day) {
                    warn!(day, error = %e, "settling a day failed; it stays open and is tried again");
                    break;
                }
                if matches!(
                    stop.try_recv(),
                    Ok(()) | Err(mpsc::TryRecvError::Disconnected)
                ) {
                    return;
                }
            }
        }
    }
}

impl WriterState {
    /// Settling's last step: the day's new mark, and the deletion of the
    /// open copies it covers, in one synced batch. Reads of the day beyond
    /// the mark (arrived while the day settled) keep their open copies.
    pub(super) fn settle_step(&mut self, step: &SettleStep) -> Result<(), StoreError> {
        let db = self.db.clone();
        let (meta, refs) = (cf(&db, CF_META)?, cf(&db, CF_REFS)?);
        let (lo, hi) = (
            keys::day_start(step.day),
            keys::day_start(step.day.saturating_add(1)),
        );
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, keys::settled_key(step.day), step.mark.to_be_bytes());
        // Any read of the day beyond the mark? (`refs` names every read.)
        let later = {
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(hi.to_vec());
            let mut it = db.raw_iterator_cf_opt(refs, ro);
            it.seek(keys::read_key(step.day, step.mark.saturating_add(1)));
            let later = it.valid();
            it.status().map_err(engine)?;
            later
        };
        for name in [CF_GEO_OPEN, CF_VRM_OPEN] {
            let open = cf(&db, name)?;
            if !later {
                batch.delete_range_cf(open, lo, hi);
                continue;
            }
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(hi.to_vec());
            let mut it = db.raw_iterator_cf_opt(open, ro);
            it.seek(lo);
            while let Some(k) = it.key() {
                let (_, seq) = keys::record_key_day_seq(k)
                    .ok_or_else(|| read::corrupt(name, "undecodable key"))?;
                if seq > step.from && seq <= step.mark {
                    batch.delete_cf(open, k);
                }
                it.next();
            }
            it.status().map_err(engine)?;
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        db.write_opt(batch, &wo).map_err(engine)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::NewRead;
    use nadc_core::read::ReadInput;

    fn reads(n: usize, day_ms: i64) -> Vec<NewRead> {
        (0..n)
            .map(|i| {
                let read = ReadInput {
                    read_id: format!("r{day_ms}-{i}"),
                    vrm: format!("AB{:02}CDE", i % 7),
                    observed_at: Some(Timestamp::from_millis(day_ms + i as i64 * 60_000)),
                    camera_id: "C1".into(),
                    lat: Some(51.5),
                    lon: Some(-2.5),
                    ..Default::default()
                }
                .validate()
                .unwrap();
                let position = read.position.unwrap();
                NewRead::new(read, position, Timestamp::from_millis(day_ms))
            })
            .collect()
    }

    /// Each search path's count of reads of `vrm`, and of all reads, each
    /// read counted once at most (a second meeting fails).
    fn counts(s: &RocksStore) -> (usize, usize, usize) {
        let mut seen = HashSet::new();
        s.scan_days(Timestamp::EPOCH, Timestamp::MAX, &mut |r| {
            assert!(seen.insert(r.seq), "seq {} met twice", r.seq);
            ControlFlow::Continue(())
        })
        .unwrap();
        let mut timeline = HashSet::new();
        let vrm = Vrm::normalise("AB03CDE").unwrap();
        s.vrm_timeline(&vrm, Timestamp::EPOCH, Timestamp::MAX, &mut |r| {
            assert!(timeline.insert(r.seq), "seq {} met twice", r.seq);
            ControlFlow::Continue(())
        })
        .unwrap();
        let mut camera = HashSet::new();
        let avon = ForceId::new("AVON").unwrap();
        s.camera_reads(&avon, "C1", Timestamp::EPOCH, Timestamp::MAX, &mut |r| {
            assert!(camera.insert(r.seq), "seq {} met twice", r.seq);
            ControlFlow::Continue(())
        })
        .unwrap();
        (seen.len(), timeline.len(), camera.len())
    }

    #[test]
    fn copies_left_beyond_the_mark_by_a_pass_cut_short_are_never_met_and_settle_again() {
        let dir = tempfile::tempdir().unwrap();
        let opts = || StoreOptions {
            sync: false,
            settle_in_background: false,
            ..Default::default()
        };
        let day = 20_000u32;
        let day_ms = i64::from(day) * MS_PER_DAY;
        let avon = ForceId::new("AVON").unwrap();
        {
            let s = RocksStore::open(dir.path(), opts()).unwrap();
            s.append(&avon, reads(700, day_ms)).unwrap();
            let before = counts(&s);
            assert_eq!(before, (700, 100, 700));
            // A pass cut short after its copies were taken in, before its
            // mark: the day's reads lie in both forms.
            let (step, copied) = s.settler.copy_day(day).unwrap().unwrap();
            assert_eq!((copied, step.from), (700, 0));
            assert_eq!(counts(&s), before);
            s.close().unwrap();
        }
        let s = RocksStore::open(dir.path(), opts()).unwrap();
        assert_eq!(counts(&s), (700, 100, 700));
        assert_eq!(s.open_days().unwrap(), [day]);
        // The next pass writes them again and settles the day.
        let settled = s.settle_day(day).unwrap().unwrap();
        assert_eq!(settled.reads, 700);
        assert!(s.open_days().unwrap().is_empty());
        assert_eq!(counts(&s), (700, 100, 700));
        // A day settled on an empty range lies at the bottom level, in
        // the files settling wrote, where compaction leaves it.
        let other = day + 3;
        s.append(&avon, reads(300, i64::from(other) * MS_PER_DAY))
            .unwrap();
        assert!(s.settle_day(other).unwrap().is_some());
        let files = s.db.live_files().unwrap();
        let settled: Vec<_> = files
            .iter()
            .filter(|f| matches!(f.column_family_name.as_str(), CF_GEO | CF_VRM))
            .filter(|f| {
                f.start_key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(&keys::day_start(other)))
            })
            .collect();
        assert_eq!(settled.len(), 2, "one file a clustering");
        assert!(settled.iter().all(|f| f.level == 6), "{settled:?}");
        assert!(settled.iter().all(|f| f.num_entries == 300));
    }
}
